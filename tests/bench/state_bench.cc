// State-store benchmarks: what recording every state change in SQLite
// (broker/state/sqlite_state_store.h) costs the broker. A plain program that
// prints three tables, each figure beside a floor measured in the same run:
//   1. commit cost per state change: ALLOC / SHARE / RETRIEVE / RELINQUISH /
//      RECLAIM / FREE cycles, each call timed alone (median, p99), by the
//      in-memory broker and by the broker over SQLite in /dev/shm (tmpfs,
//      like /run) and on the real disk (/var/tmp); floor: a bare SQLite
//      BEGIN; INSERT; COMMIT on the same directory;
//   2. restart with 100,000 live buffers (10% shared and retrieved): open
//      (with the integrity check), load, Broker::Create restoring them;
//      floors: filling the same state in memory, a bare scan of the tables;
//   3. reclaiming a dead guest owning 1,000 buffers (500 shared and
//      retrieved by a peer): TeardownVm with and without the store, with
//      counted and with real (memset) scrubbing; floor: memset of the same
//      ranges.
// Backends count calls (bench_backends.h) except the zeroing scrubber of 3.
// Figures are printed, never asserted.
#include <benchmark/benchmark.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "broker/broker.h"
#include "broker/check.h"
#include "broker/state/sqlite_state_store.h"
#include "tests/bench/bench_backends.h"

namespace rmem::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = uint64_t{1} << 20, kGiB = uint64_t{1} << 30;
constexpr VmId kOwner{1}, kPeer{2};
const PhysAddr kBase(0x100000000);
const Rights kPeerRights = Rights::Of(Rights::kRead | Rights::kCpuMap);

double NsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}
double Ms(double ns) { return ns / 1e6; }
double Us(double ns) { return ns / 1e3; }

// Median and p99 of samples (sorted in place).
struct Spread {
  double median = 0, p99 = 0;
};
Spread SpreadOf(std::vector<double>& ns) {
  RMEM_CHECK(!ns.empty());
  std::sort(ns.begin(), ns.end());
  return {ns[ns.size() / 2], ns[ns.size() * 99 / 100]};
}
double Median(std::vector<double> ns) { return SpreadOf(ns).median; }

// What one steady_clock::now() pair costs, subtracted from single-call
// samples.
double ClockCostNs() {
  std::vector<double> empty(20000);
  for (double& e : empty) {
    const auto a = Clock::now();
    const auto b = Clock::now();
    e = std::chrono::duration<double, std::nano>(b - a).count();
  }
  return Median(std::move(empty));
}

// A directory of our own under `parent`, removed with what it holds.
class TempDir {
 public:
  explicit TempDir(const std::string& parent) {
    std::string templ = parent + "/rmem-state-bench.XXXXXX";
    RMEM_CHECK(mkdtemp(templ.data()) != nullptr);
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string db() const { return path_ + "/state.db"; }

 private:
  std::string path_;
};

// The database and its WAL, in bytes.
uint64_t DbBytes(const std::string& db) {
  uint64_t total = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    const uintmax_t n = std::filesystem::file_size(db + suffix, ec);
    if (!ec) total += n;
  }
  return total;
}

// The platform of broker_bench.cc: one carve-out, an owner VM (read, write,
// cpu-map; a decoder initiator) and a peer (read, cpu-map; a display), one
// heap, no quotas.
struct Platform {
  std::vector<Carveout> carveouts;
  PolicyConfig policy;
};

Platform MakePlatform(uint64_t carveout_bytes) {
  Platform p;
  p.carveouts = {{"bench", kBase, carveout_bytes, "bench", 2 << 20}};
  p.policy.vms = {{kOwner, "owner", kUnlimited}, {kPeer, "peer", kUnlimited}};
  p.policy.initiators = {{InitiatorId(1), "decoder", kOwner}, {InitiatorId(2), "display", kPeer}};
  p.policy.heaps = {{"bench",
                     {"bench"},
                     true,
                     false,
                     kUnlimited,
                     {{kOwner, true, Rights::Of(Rights::kAllBits), kUnlimited},
                      {kPeer, false, kPeerRights, kUnlimited}}}};
  return p;
}

std::unique_ptr<Broker> MakeBroker(const Platform& p, Backends backends) {
  BrokerOptions options;
  options.buffer_id_key = IdKey{1, 2};
  options.handle_key = IdKey{3, 4};
  absl::StatusOr<std::unique_ptr<Broker>> b =
      Broker::Create(p.carveouts, p.policy, backends, options);
  RMEM_CHECK_OK(b);
  return *std::move(b);
}

std::unique_ptr<SqliteStateStore> OpenStore(const std::string& db, bool reset) {
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> s =
      SqliteStateStore::Open(db, {.reset = reset});
  RMEM_CHECK_OK(s);
  return *std::move(s);
}

BufferId Alloc(Broker& broker, uint64_t pages) {
  absl::StatusOr<Allocation> a = broker.Alloc(kOwner, "bench", pages * kPageSize, 0);
  RMEM_CHECK_OK(a);
  return a->id;
}

// SHARE to the peer and RETRIEVE by it.
void ShareRetrieved(Broker& broker, BufferId id) {
  const Offer o{kPeer, kPeerRights};
  absl::StatusOr<Handle> h = broker.Share(kOwner, id, {&o, 1});
  RMEM_CHECK_OK(h);
  RMEM_CHECK_OK(broker.Retrieve(kPeer, *h));
}

void DrainAll(Broker& broker) {
  while (!broker.DrainEvents(kOwner, 4096).empty()) {
  }
  while (!broker.DrainEvents(kPeer, 4096).empty()) {
  }
}

// ---- 1. Commit cost per state change ------------------------------------------

enum OpKind { kAlloc, kShare, kRetrieve, kRelinquish, kReclaim, kFree, kOpKinds };
constexpr std::array<const char*, kOpKinds> kOpNames = {"ALLOC",      "SHARE",   "RETRIEVE",
                                                         "RELINQUISH", "RECLAIM", "FREE"};
using OpSamples = std::array<std::vector<double>, kOpKinds>;

// `cycles` timed cycles (after a tenth as many untimed) beside `live` other
// buffers, over `state` (nullptr: in memory). The rng is seeded the same for
// every run, so every run does the same requests.
OpSamples RunCycles(StateStore* state, size_t cycles, size_t live, double clock_ns) {
  CountingBackends counting;
  Backends backends = counting.backends();
  backends.state = state;
  std::unique_ptr<Broker> broker = MakeBroker(MakePlatform(256 * kMiB), backends);
  std::mt19937_64 rng(42);
  for (size_t i = 0; i < live; ++i) Alloc(*broker, 1 + rng() % 4);
  OpSamples samples;
  for (auto& s : samples) s.reserve(cycles);
  const size_t warmup = cycles / 10;
  for (size_t i = 0; i < warmup + cycles; ++i) {
    const bool timed = i >= warmup;
    auto time = [&](OpKind op, auto&& call) {
      const auto t0 = Clock::now();
      call();
      const double ns = NsSince(t0) - clock_ns;
      if (timed) samples[op].push_back(ns);
    };
    const uint64_t pages = 1 + rng() % 4;
    BufferId id;
    Handle h;
    time(kAlloc, [&] {
      absl::StatusOr<Allocation> a = broker->Alloc(kOwner, "bench", pages * kPageSize, 0);
      RMEM_CHECK_OK(a);
      id = a->id;
    });
    const Offer o{kPeer, kPeerRights};
    time(kShare, [&] {
      absl::StatusOr<Handle> s = broker->Share(kOwner, id, {&o, 1});
      RMEM_CHECK_OK(s);
      h = *s;
    });
    time(kRetrieve, [&] { RMEM_CHECK_OK(broker->Retrieve(kPeer, h)); });
    time(kRelinquish, [&] { RMEM_CHECK_OK(broker->Relinquish(kPeer, h)); });
    time(kReclaim, [&] { RMEM_CHECK_OK(broker->Reclaim(kOwner, id)); });
    time(kFree, [&] { RMEM_CHECK_OK(broker->Free(kOwner, id)); });
    DrainAll(*broker);
  }
  return samples;
}

// The floor: one bare SQLite transaction of one row, BEGIN; INSERT INTO t
// VALUES(?); COMMIT, all three prepared, in WAL mode with
// synchronous=NORMAL (as the store), in `dir`.
std::vector<double> BareSqliteCommits(const std::string& dir, size_t n, double clock_ns) {
  const std::string path = dir + "/floor.db";
  sqlite3* db = nullptr;
  RMEM_CHECK(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                             nullptr) == SQLITE_OK);
  RMEM_CHECK(sqlite3_exec(db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "CREATE TABLE t(x INTEGER);",
                          nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_stmt *begin = nullptr, *insert = nullptr, *commit = nullptr;
  RMEM_CHECK(sqlite3_prepare_v2(db, "BEGIN", -1, &begin, nullptr) == SQLITE_OK);
  RMEM_CHECK(sqlite3_prepare_v2(db, "INSERT INTO t VALUES(?)", -1, &insert, nullptr) == SQLITE_OK);
  RMEM_CHECK(sqlite3_prepare_v2(db, "COMMIT", -1, &commit, nullptr) == SQLITE_OK);
  auto run = [](sqlite3_stmt* s) {
    RMEM_CHECK(sqlite3_step(s) == SQLITE_DONE);
    sqlite3_reset(s);
  };
  std::vector<double> ns;
  ns.reserve(n);
  const size_t warmup = n / 10;
  for (size_t i = 0; i < warmup + n; ++i) {
    const auto t0 = Clock::now();
    run(begin);
    sqlite3_bind_int64(insert, 1, static_cast<int64_t>(i));
    run(insert);
    run(commit);
    const double sample = NsSince(t0) - clock_ns;
    if (i >= warmup) ns.push_back(sample);
  }
  sqlite3_finalize(begin);
  sqlite3_finalize(insert);
  sqlite3_finalize(commit);
  sqlite3_close(db);
  return ns;
}

void PrintCommitTable(const char* title, OpSamples& memory, OpSamples& store, double floor_ns) {
  std::printf("\n  %s\n", title);
  std::printf("  %-11s %19s  %19s  %17s  %9s %7s\n", "", "in-memory", "with the store",
              "store/in-memory", "added", "added/");
  std::printf("  %-11s %9s %9s  %9s %9s  %8s %8s  %9s %7s\n", "op", "median", "p99", "median",
              "p99", "median", "p99", "median", "floor");
  std::vector<double> all_memory, all_store;
  auto row = [&](const char* name, std::vector<double>& m, std::vector<double>& s) {
    const Spread a = SpreadOf(m), b = SpreadOf(s);
    const double added = b.median - a.median;
    std::printf("  %-11s %9.2f %9.2f  %9.2f %9.2f  %7.1fx %7.1fx  %9.2f %6.2fx\n", name,
                Us(a.median), Us(a.p99), Us(b.median), Us(b.p99), b.median / a.median,
                b.p99 / a.p99, Us(added), added / floor_ns);
  };
  for (int op = 0; op < kOpKinds; ++op) {
    all_memory.insert(all_memory.end(), memory[op].begin(), memory[op].end());
    all_store.insert(all_store.end(), store[op].begin(), store[op].end());
    row(kOpNames[op], memory[op], store[op]);
  }
  row("all", all_memory, all_store);
}

void CommitCost(size_t cycles, size_t live, size_t floor_commits) {
  const double clock_ns = ClockCostNs();
  TempDir shm("/dev/shm"), disk("/var/tmp");
  std::printf(
      "1. Commit cost per state change\n"
      "   %zu cycles of ALLOC (1-4 pages) / SHARE / RETRIEVE / RELINQUISH / RECLAIM / FREE\n"
      "   beside %zu other live buffers (256 MiB carve-out, counting backends), after %zu\n"
      "   untimed; each call timed alone (clock cost %.0f ns subtracted); times in us\n",
      cycles, live, cycles / 10, clock_ns);
  OpSamples memory = RunCycles(nullptr, cycles, live, clock_ns);
  struct Where {
    const char* label;
    const TempDir* dir;
  };
  for (const Where& w : {Where{"tmpfs", &shm}, Where{"disk", &disk}}) {
    OpSamples store;
    {
      std::unique_ptr<SqliteStateStore> s = OpenStore(w.dir->db(), true);
      store = RunCycles(s.get(), cycles, live, clock_ns);
    }
    // The in-memory samples are sorted by the first table; sorting again is
    // harmless.
    std::vector<double> floor = BareSqliteCommits(w.dir->path(), floor_commits, clock_ns);
    const Spread f = SpreadOf(floor);
    char title[256];
    std::snprintf(title, sizeof(title), "SQLite store in %s (%s)", w.dir->path().c_str(), w.label);
    PrintCommitTable(title, memory, store, f.median);
    std::printf(
        "  floor: bare SQLite BEGIN; INSERT INTO t VALUES(?); COMMIT (prepared, WAL,\n"
        "  synchronous=NORMAL) in the same directory, %zu commits: median %.2f us, p99 %.2f us\n",
        floor_commits, Us(f.median), Us(f.p99));
  }
  std::printf(
      "  (added = store median - in-memory median; added/floor = that over the bare commit's "
      "median)\n");
}

// ---- 2. Restart --------------------------------------------------------------

// Serves the state read beforehand as the store's first Load, so that timing
// Broker::Create measures the broker's restore alone; the rest goes to the
// real store.
class LoadedStore : public StateStore {
 public:
  LoadedStore(StateStore* inner, std::optional<StoredState> loaded)
      : inner_(inner), loaded_(std::move(loaded)) {}
  absl::StatusOr<std::optional<StoredState>> Load() override {
    if (!served_) {
      served_ = true;
      return std::move(loaded_);
    }
    return inner_->Load();
  }
  absl::Status Commit(const StateDelta& delta, const StoredState* replace_first) override {
    return inner_->Commit(delta, replace_first);
  }
  absl::StatusOr<std::vector<AuditEntry>> ReadAudit(uint64_t after_seq, size_t max) override {
    return inner_->ReadAudit(after_seq, max);
  }

 private:
  StateStore* inner_;
  std::optional<StoredState> loaded_;
  bool served_ = false;
};

// `buffers` one-page buffers; every tenth shared with the peer and
// retrieved. Returns the time it took.
double Fill(Broker& broker, size_t buffers) {
  const auto t0 = Clock::now();
  std::vector<BufferId> ids;
  ids.reserve(buffers);
  for (size_t i = 0; i < buffers; ++i) {
    ids.push_back(Alloc(broker, 1));
    if (i % 4096 == 0) DrainAll(broker);
  }
  for (size_t i = 0; i < buffers; i += 10) {
    ShareRetrieved(broker, ids[i]);
    if (i % 4096 == 0) DrainAll(broker);
  }
  return NsSince(t0);
}

// The floor of Load: every row of the three tables Load reads, stepped
// through bare on a connection of our own, with the columns fetched.
double BareScan(const std::string& db_path) {
  sqlite3* db = nullptr;
  RMEM_CHECK(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  const auto t0 = Clock::now();
  int64_t sum = 0;
  for (const char* sql :
       {"SELECT id, owner, heap, carveout, first_pfn, pages, rights, state, txn, mapped_at "
        "FROM buffers",
        "SELECT handle, kind, buffer FROM txns",
        "SELECT handle, vm, rights, state, mapped_at FROM receivers ORDER BY handle, pos"}) {
    sqlite3_stmt* s = nullptr;
    RMEM_CHECK(sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(s); ++c) {
        if (sqlite3_column_type(s, c) == SQLITE_TEXT) {
          sum += sqlite3_column_bytes(s, c);
        } else {
          sum += sqlite3_column_int64(s, c);
        }
      }
    }
    sqlite3_finalize(s);
  }
  benchmark::DoNotOptimize(sum);
  const double ns = NsSince(t0);
  sqlite3_close(db);
  return ns;
}

void Restart(size_t buffers, int reps) {
  TempDir dir("/dev/shm");
  const Platform platform = MakePlatform(kGiB);
  std::printf(
      "\n2. Restart with %zu live buffers (one page each, owned by one VM; every tenth shared\n"
      "   with a second VM and retrieved: %zu transactions),\n   SQLite store in %s (tmpfs)\n",
      buffers, (buffers + 9) / 10, dir.path().c_str());

  double fill_memory_ns;
  {
    CountingBackends counting;
    std::unique_ptr<Broker> broker = MakeBroker(platform, counting.backends());
    fill_memory_ns = Fill(*broker, buffers);
  }
  double fill_store_ns;
  {
    std::unique_ptr<SqliteStateStore> store = OpenStore(dir.db(), true);
    CountingBackends counting;
    Backends backends = counting.backends();
    backends.state = store.get();
    std::unique_ptr<Broker> broker = MakeBroker(platform, backends);
    fill_store_ns = Fill(*broker, buffers);
  }  // broker, then store, gone: rmemd stopped
  const size_t requests = buffers + 2 * ((buffers + 9) / 10);
  std::printf(
      "  filling (%zu requests): %.0f ms with the store (%.1f us/request), %.0f ms in memory\n"
      "  (%.1fx); database + WAL %.1f MiB\n",
      requests, Ms(fill_store_ns), Us(fill_store_ns) / static_cast<double>(requests),
      Ms(fill_memory_ns), fill_store_ns / fill_memory_ns,
      static_cast<double>(DbBytes(dir.db())) / kMiB);

  std::vector<double> open_ns, load_ns, create_ns, total_ns, scan_ns;
  uint64_t grants = 0, maps = 0, scrubs = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    std::unique_ptr<SqliteStateStore> store = OpenStore(dir.db(), false);
    open_ns.push_back(NsSince(t0));
    t0 = Clock::now();
    absl::StatusOr<std::optional<StoredState>> loaded = store->Load();
    load_ns.push_back(NsSince(t0));
    RMEM_CHECK_OK(loaded);
    RMEM_CHECK(loaded->has_value() && (*loaded)->buffers.size() == buffers);
    LoadedStore replay(store.get(), *std::move(loaded));
    CountingBackends counting;
    Backends backends = counting.backends();
    backends.state = &replay;
    t0 = Clock::now();
    std::unique_ptr<Broker> broker = MakeBroker(platform, backends);
    create_ns.push_back(NsSince(t0));
    total_ns.push_back(open_ns.back() + load_ns.back() + create_ns.back());
    RMEM_CHECK(broker->ledger().buffer_count() == buffers);
    RMEM_CHECK(broker->ledger().txn_count() == (buffers + 9) / 10);
    grants = counting.grants;
    maps = counting.maps;
    scrubs = counting.scrubs;
    broker.reset();
    store.reset();
    scan_ns.push_back(BareScan(dir.db()));
  }
  const double n = static_cast<double>(buffers);
  auto line = [&](const char* what, const std::vector<double>& ns) {
    const double m = Median(ns);
    std::printf("  %-52s %9.1f ms %12.0f buffers/s\n", what, Ms(m), n / (m / 1e9));
  };
  std::printf("  median of %d restart%s:\n", reps, reps == 1 ? "" : "s");
  line("(a) SqliteStateStore::Open (with quick_check)", open_ns);
  line("(b) Load", load_ns);
  line("(c) Broker::Create restoring (counting backends)", create_ns);
  line("total (a + b + c)", total_ns);
  std::printf("  (c) made %llu firewall grants, %llu stage-2 maps, %llu scrubs of free runs\n",
              static_cast<unsigned long long>(grants), static_cast<unsigned long long>(maps),
              static_cast<unsigned long long>(scrubs));
  const double scan = Median(scan_ns);
  std::printf(
      "  floors: bare scan of the rows Load reads %.1f ms (Load = %.1fx it); filling the same\n"
      "  state in memory %.1f ms (restore (c) = %.2fx it, restart total = %.2fx it)\n",
      Ms(scan), Median(load_ns) / scan, Ms(fill_memory_ns), Median(create_ns) / fill_memory_ns,
      Median(total_ns) / fill_memory_ns);
}

// ---- 3. Reclaiming a dead guest ---------------------------------------------

// A zeroing scrubber over an anonymous mapping standing for the carve-out.
struct Arena {
  void* p;
  uint64_t bytes;
  explicit Arena(uint64_t size) : bytes(size) {
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    RMEM_CHECK(p != MAP_FAILED);
  }
  ~Arena() { munmap(p, bytes); }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
};

struct ZeroingBackends : CountingBackends {
  MemoryScrubber scrubber;
  explicit ZeroingBackends(const Arena& arena)
      : scrubber(arena.p, *PageRange::FromBytes(kBase, arena.bytes)) {}
  void Scrub(PageRange pages) override {
    ++scrubs;
    scrubber.Scrub(pages);
  }
};

void Teardown(size_t buffers, uint64_t buffer_pages, int reps) {
  const uint64_t carveout_bytes = 64 * kMiB;
  RMEM_CHECK(buffers * buffer_pages * kPageSize <= carveout_bytes);
  const Platform platform = MakePlatform(carveout_bytes);
  Arena arena(carveout_bytes);  // pages faulted in by every Create's scrub
  TempDir dir("/dev/shm");
  const uint64_t buffer_bytes = buffer_pages * kPageSize;
  const uint64_t total_bytes = buffers * buffer_bytes;
  std::printf(
      "\n3. Reclaiming a dead guest: TeardownVm(A), A owning %zu buffers of %llu KiB (%.1f MiB),\n"
      "   %zu of them shared with B and retrieved by B;\n   SQLite store in %s (tmpfs);"
      " median of %d teardowns, each on a fresh broker\n",
      buffers, static_cast<unsigned long long>(buffer_bytes / 1024),
      static_cast<double>(total_bytes) / kMiB, buffers / 2, dir.path().c_str(), reps);

  struct Variant {
    const char* name;
    bool store;
    bool zeroing;
    std::vector<double> ns;
  };
  std::vector<Variant> variants = {{"in-memory, scrub counted", false, false, {}},
                                   {"SQLite, scrub counted", true, false, {}},
                                   {"in-memory, scrub zeroes the arena", false, true, {}},
                                   {"SQLite, scrub zeroes the arena", true, true, {}}};
  std::vector<double> memset_ns;
  std::vector<PageRange> ranges;
  for (int r = 0; r < reps; ++r) {
    for (Variant& v : variants) {
      std::unique_ptr<SqliteStateStore> store;
      if (v.store) store = OpenStore(dir.db(), true);
      ZeroingBackends zeroing(arena);
      CountingBackends counting;
      Backends backends = v.zeroing ? zeroing.backends() : counting.backends();
      backends.state = store.get();
      std::unique_ptr<Broker> broker = MakeBroker(platform, backends);
      ranges.clear();
      for (size_t i = 0; i < buffers; ++i) {
        absl::StatusOr<Allocation> a = broker->Alloc(kOwner, "bench", buffer_bytes, 0);
        RMEM_CHECK_OK(a);
        RMEM_CHECK(a->pages.size_bytes() == buffer_bytes);
        ranges.push_back(a->pages);
        // The owner writes its buffers: the scrub finds dirty memory.
        std::memset(static_cast<char*>(arena.p) + (a->pages.base().value() - kBase.value()), 0xa5,
                    buffer_bytes);
        if (i % 2 == 0) ShareRetrieved(*broker, a->id);
      }
      DrainAll(*broker);
      const auto t0 = Clock::now();
      RMEM_CHECK_OK(broker->TeardownVm(kOwner));
      v.ns.push_back(NsSince(t0));
      RMEM_CHECK(broker->ledger().buffer_count() == 0);
    }
    // The floor: memset of the same ranges (dirtied again first).
    for (const PageRange& p : ranges) {
      std::memset(static_cast<char*>(arena.p) + (p.base().value() - kBase.value()), 0xa5,
                  buffer_bytes);
    }
    const auto t0 = Clock::now();
    for (const PageRange& p : ranges) {
      std::memset(static_cast<char*>(arena.p) + (p.base().value() - kBase.value()), 0,
                  buffer_bytes);
      benchmark::ClobberMemory();
    }
    memset_ns.push_back(NsSince(t0));
  }
  const double base = Median(variants[0].ns);
  std::printf("  %-36s %10s %11s %12s\n", "variant", "total ms", "us/buffer", "x in-memory");
  for (Variant& v : variants) {
    const double m = Median(v.ns);
    std::printf("  %-36s %10.2f %11.2f %11.1fx\n", v.name, Ms(m),
                Us(m) / static_cast<double>(buffers), m / base);
  }
  const double floor = Median(memset_ns);
  const double zero_memory = Median(variants[2].ns), zero_store = Median(variants[3].ns);
  std::printf(
      "  floor: memset of the same %zu ranges (%.1f MiB) %.2f ms (%.2f GiB/s)\n"
      "  scrub share: %.0f%% of the in-memory teardown, %.0f%% of the SQLite one (memset floor\n"
      "  over the zeroing teardown); the store's share of the zeroing SQLite teardown: %.0f%%\n",
      buffers, static_cast<double>(total_bytes) / kMiB, Ms(floor),
      static_cast<double>(total_bytes) / kGiB / (floor / 1e9), 100 * floor / zero_memory,
      100 * floor / zero_store, 100 * (zero_store - zero_memory) / zero_store);
}

void Usage(const char* argv0) {
  std::printf(
      "usage: %s [--quick]\n"
      "Prints what the SQLite state store costs the broker, beside floors measured in the\n"
      "same run: commit cost per state change (median, p99) against the in-memory broker\n"
      "(store in /dev/shm and in /var/tmp), restart with 100,000 live buffers, and tearing\n"
      "down a dead guest owning 1,000 buffers. Temporary databases go to /dev/shm and\n"
      "/var/tmp and are removed at exit.\n"
      "  --quick  small counts: a smoke run of a few seconds, figures not meaningful\n"
      "  --help   this text\n",
      argv0);
}

}  // namespace
}  // namespace rmem::bench

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      rmem::bench::Usage(argv[0]);
      return 0;
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s' (see --help)\n", argv[0], argv[i]);
      return 2;
    }
  }
  std::printf("rmem state_bench%s (SQLite %s)\n\n", quick ? " --quick" : "", sqlite3_libversion());
  rmem::bench::CommitCost(quick ? 500 : 20000, quick ? 100 : 1000, quick ? 1000 : 20000);
  rmem::bench::Restart(quick ? 2000 : 100000, quick ? 1 : 3);
  rmem::bench::Teardown(quick ? 100 : 1000, 4, quick ? 3 : 11);
  return 0;
}

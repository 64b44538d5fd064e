// Kill-and-restart: SIGKILL rmemd's broker at random instants of a long
// random workload and check what a restart finds.
//
// Each round forks a child that plays rmemd: it opens the SQLite state store
// (a real file), restores the broker from it (in-process backends: the fakes
// stand for stage-2 and the firewall) and serves a random workload from four
// VMs (allocations, shares, lends, donations, retrievals, relinquishes,
// reclaims, frees, VM teardowns) until the parent kills it with SIGKILL
// after a random delay. Before each request the child tells the parent
// what it is about to do, and after it succeeds what the guest was told
// (one small write to a pipe each, atomic). After each kill the parent
// restores a broker from the store itself and checks:
//  - the restore is accepted (the recorded state is consistent);
//  - conservation: per carve-out, free + allocated pages = total;
//  - every buffer whose allocation the guest saw, and that it was not told
//    is gone, exists with the owner the guest was last told; no other
//    buffer exists; only the one request in flight at the kill may have
//    gone either way (and a teardown all or nothing);
//  - ids: no buffer id or handle the guests saw is ever given out again,
//    across every restart;
//  - isolation: the access the restored broker programmed (stage-2 and
//    firewall) is exactly what its ownership state grants, for every VM's
//    CPUs and every device initiator on every carve-out page.
//
// CI runs 200 kill points (`kill_restart --kills 200`); the soak command
// (tools/kill-soak) runs 10,000.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/backend/fake_backends.h"
#include "broker/broker.h"
#include "broker/check.h"
#include "broker/state/sqlite_state_store.h"
#include "tests/broker/oracle/isolation_harness.h"
#include "tests/broker/oracle/test_platform.h"

namespace rmem::testing {
namespace {

// ---- The child: rmemd under a random workload --------------------------------

// One record to the parent; `kind`: B(egin) ack letters below, E(rror).
void Tell(int fd, const std::string& line) {
  const std::string l = line + "\n";
  RMEM_CHECK(l.size() < PIPE_BUF);
  RMEM_CHECK(write(fd, l.data(), l.size()) == static_cast<ssize_t>(l.size()));
}

template <typename Map>
auto PickFrom(const Map& m, uint64_t r) {
  auto it = m.begin();
  std::advance(it, r % m.size());
  return it;
}

[[noreturn]] void RunChild(const std::string& path, uint64_t seed, int out) {
  const TestPlatform platform = SmallPlatform();
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open(path, {});
  RMEM_CHECK_OK(store);
  FakeBackends fakes;
  BrokerOptions options;
  options.max_receivers = platform.max_receivers;
  absl::StatusOr<std::unique_ptr<Broker>> created = Broker::Create(
      platform.carveouts, platform.policy,
      Backends{&fakes.stage2, &fakes.firewall, &fakes.scrubber, store->get()}, options);
  RMEM_CHECK_OK(created);
  Broker& broker = **created;
  Tell(out, "R");

  const char* heaps[] = {"secure-video", "device-only", "general"};
  uint64_t x = seed | 1;
  for (;;) {
    const uint64_t w = NextWord(x);
    const VmId vm(1 + static_cast<uint32_t>(w % 4));
    const uint64_t r = w >> 8;
    const Ledger& ledger = broker.ledger();
    const int kind = static_cast<int>((w >> 3) % 20);
    if (kind < 6 || ledger.buffer_count() == 0) {  // ALLOC
      Tell(out, "B A");
      absl::StatusOr<Allocation> a =
          broker.Alloc(vm, heaps[r % 3], ((r >> 4) % 6 + 1) * kPageSize, 0);
      Tell(out, a.ok() ? absl::StrCat("A ", a->id.value(), " ", vm.value()) : "E");
      continue;
    }
    const Buffer& b = PickFrom(ledger.buffers(), r)->second;
    const BufferId id = b.id;
    const VmId owner = b.owner;
    const VmId other(1 + static_cast<uint32_t>((owner.value() + (r >> 20) % 3) % 4));
    if (kind < 9) {  // SHARE / LEND / DONATE
      const Offer offer{other, Rights::Of(static_cast<uint8_t>(
                                   Rights::kRead | ((r >> 24) % 2 ? Rights::kCpuMap : 0) |
                                   ((r >> 25) % 3 == 0 ? Rights::kWrite : 0)))};
      Tell(out, absl::StrCat("B H ", id.value()));
      absl::StatusOr<Handle> h = kind == 6   ? broker.Share(owner, id, {&offer, 1})
                                 : kind == 7 ? broker.Lend(owner, id, {&offer, 1})
                                             : broker.Donate(owner, id, other);
      Tell(out, h.ok() ? absl::StrCat("H ", h->value()) : "E");
      continue;
    }
    if (kind < 14 && b.txn) {  // RETRIEVE / RELINQUISH by a receiver
      const Transaction& t = *ledger.FindTxn(*b.txn);
      if (t.receivers.empty()) continue;
      const Receiver& rc = t.receivers[(r >> 30) % t.receivers.size()];
      const VmId receiver = rc.vm;
      const Handle handle = t.handle;
      Tell(out, absl::StrCat("B D ", id.value()));
      if (rc.state == ReceiverState::kOffered) {
        absl::StatusOr<Retrieval> got = broker.Retrieve(receiver, handle);
        Tell(out, !got.ok()      ? "E"
                  : got->buffer ? absl::StrCat("D ", id.value(), " ", receiver.value())
                                : "K");
      } else {
        Tell(out, broker.Relinquish(receiver, handle).ok() ? "K" : "E");
      }
      continue;
    }
    if (kind < 16) {  // RECLAIM
      Tell(out, absl::StrCat("B K ", id.value()));
      const ReclaimMode mode = (r >> 40) % 2 ? ReclaimMode::kRevoke : ReclaimMode::kWaitForBorrowers;
      Tell(out, broker.Reclaim(owner, id, mode).ok() ? "K" : "E");
      continue;
    }
    if (kind < 19) {  // FREE
      Tell(out, absl::StrCat("B F ", id.value()));
      Tell(out, broker.Free(owner, id).ok() ? absl::StrCat("F ", id.value()) : "E");
      continue;
    }
    // The VM dies.
    Tell(out, absl::StrCat("B T ", vm.value()));
    RMEM_CHECK_OK(broker.TeardownVm(vm));
    Tell(out, absl::StrCat("T ", vm.value()));
  }
}

// ---- The parent: kill, restore, check -----------------------------------------

struct Expectation {
  std::map<uint64_t, uint32_t> owners;  // buffer id -> owner, as the guests were told
  std::set<uint64_t> ids_seen;          // every buffer id and handle ever acknowledged
};

struct InFlight {
  char kind = 0;  // 0: none; A, H, D, K, F, T as in the child
  uint64_t arg = 0;
};

// Applies the child's records; "" or a violation.
std::string Apply(const std::string& records, Expectation& e, InFlight& in_flight,
                  uint64_t& acked) {
  size_t pos = 0;
  while (pos < records.size()) {
    const size_t nl = records.find('\n', pos);
    if (nl == std::string::npos) break;  // cut short by the kill: cannot be (atomic writes)
    const std::string line = records.substr(pos, nl - pos);
    pos = nl + 1;
    char kind = 0;
    uint64_t a = 0, b = 0;
    char sub = 0;
    if (line[0] == 'B') {
      const int n = std::sscanf(line.c_str(), "B %c %" SCNu64, &sub, &a);
      in_flight = InFlight{sub, n >= 2 ? a : 0};
      continue;
    }
    std::sscanf(line.c_str(), "%c %" SCNu64 " %" SCNu64, &kind, &a, &b);
    in_flight = InFlight{};
    ++acked;
    auto fresh = [&](uint64_t id) -> std::string {
      if (!e.ids_seen.insert(id).second) {
        return absl::StrCat("id ", Hex(id), " was given out a second time");
      }
      return "";
    };
    switch (kind) {
      case 'A':
        if (std::string v = fresh(a); !v.empty()) return v;
        e.owners[a] = static_cast<uint32_t>(b);
        break;
      case 'H':
        if (std::string v = fresh(a); !v.empty()) return v;
        break;
      case 'D':
        e.owners[a] = static_cast<uint32_t>(b);
        break;
      case 'F':
        e.owners.erase(a);
        break;
      case 'T':
        std::erase_if(e.owners, [&](const auto& kv) { return kv.second == a; });
        break;
      default:
        break;  // E, K, R
    }
  }
  return "";
}

// What the ownership state grants, programmed access included: "" or the
// first difference.
std::string CheckAccess(const Broker& broker, const FakeMemory& memory,
                        const TestPlatform& platform) {
  std::map<std::pair<Party, uint64_t>, Access> want;  // (party, pfn) -> access
  auto grant = [&](VmId vm, PageRange pages, Rights rights) {
    std::vector<std::pair<Party, Access>> parties;
    if (rights.cpu_access() != Access::kNone) parties.push_back({Party::Cpu(vm), rights.cpu_access()});
    for (InitiatorId ini : broker.policy().initiators_of(vm)) {
      const Access a = broker.policy().InitiatorAccess(ini, rights.access());
      if (a != Access::kNone) parties.push_back({Party::Device(ini), a});
    }
    for (const auto& [party, access] : parties) {
      for (uint64_t p = pages.first().value(); p < pages.end().value(); ++p) {
        want[{party, p}] = want[{party, p}] | access;
      }
    }
  };
  for (const auto& [id, b] : broker.ledger().buffers()) {
    if (b.owner_has_access()) grant(b.owner, b.pages, b.owner_rights);
  }
  for (const auto& [h, t] : broker.ledger().txns()) {
    const Buffer* b = broker.ledger().FindBuffer(t.buffer);
    for (const Receiver& r : t.receivers) {
      if (r.state == ReceiverState::kRetrieved) grant(r.vm, b->pages, r.rights);
    }
  }
  std::vector<Party> parties;
  for (const VmConfig& vm : platform.policy.vms) parties.push_back(Party::Cpu(vm.id));
  for (const InitiatorConfig& ini : platform.policy.initiators) {
    parties.push_back(Party::Device(ini.id));
  }
  for (const Carveout& c : platform.carveouts) {
    const PageRange range = *PageRange::FromBytes(c.base, c.size);
    for (uint64_t p = range.first().value(); p < range.end().value(); ++p) {
      for (const Party& party : parties) {
        auto it = want.find({party, p});
        const Access w = it == want.end() ? Access::kNone : it->second;
        const Access got = memory.AccessOf(party, Pfn(p));
        if (w != got) {
          return absl::StrCat(party.ToString(), " may ", AccessName(got), " page ",
                              Pfn(p).addr().ToString(), " after the restart; its state grants ",
                              AccessName(w));
        }
      }
    }
  }
  return "";
}

std::string CheckRestart(const std::string& path, Expectation& e, const InFlight& in_flight) {
  const TestPlatform platform = SmallPlatform();
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open(path, {});
  if (!store.ok()) return absl::StrCat("the store does not open: ", store.status().ToString());
  FakeBackends fakes;
  BrokerOptions options;
  options.max_receivers = platform.max_receivers;
  absl::StatusOr<std::unique_ptr<Broker>> broker = Broker::Create(
      platform.carveouts, platform.policy,
      Backends{&fakes.stage2, &fakes.firewall, &fakes.scrubber, store->get()}, options);
  if (!broker.ok()) return absl::StrCat("the restore is refused: ", broker.status().ToString());
  const Broker& restored = **broker;

  // Conservation.
  std::vector<uint64_t> allocated(platform.carveouts.size(), 0);
  for (const auto& [id, b] : restored.ledger().buffers()) allocated[b.carveout] += b.pages.count().value();
  const std::vector<PoolStats> pools = restored.pool_stats();
  for (size_t i = 0; i < pools.size(); ++i) {
    const PoolStats& pool = pools[i];
    if (pool.stats.free.value() + allocated[i] != pool.stats.total.value()) {
      return absl::StrCat("carve-out ", pool.carveout, ": ", pool.stats.free.value(), " free + ",
                          allocated[i], " allocated != ", pool.stats.total.value(), " pages");
    }
  }

  // Ownership: what the guests were told, up to the request in flight.
  std::map<uint64_t, uint32_t> found;
  for (const auto& [id, b] : restored.ledger().buffers()) found[id.value()] = b.owner.value();
  auto same_except = [&](auto&& exempt) {
    for (const auto& [id, owner] : e.owners) {
      auto it = found.find(id);
      if (exempt(id, it == found.end() ? 0 : it->second)) continue;
      if (it == found.end()) return absl::StrCat(BufferName(BufferId(id)), " of vm ", owner, " is lost");
      if (it->second != owner) {
        return absl::StrCat(BufferName(BufferId(id)), " belongs to vm ", it->second,
                            ", but vm ", owner, " was told it owns it");
      }
    }
    for (const auto& [id, owner] : found) {
      if (e.owners.contains(id) || exempt(id, owner)) continue;
      return absl::StrCat(BufferName(BufferId(id)), " of vm ", owner, " appeared from nowhere");
    }
    return std::string();
  };
  std::string violation;
  switch (in_flight.kind) {
    case 'A':  // one new buffer may exist
      violation = same_except([&](uint64_t id, uint32_t) { return !e.owners.contains(id); });
      break;
    case 'F':  // that buffer may be gone
    case 'D':  // that buffer may have a new owner (a donation retrieved)
      violation = same_except([&](uint64_t id, uint32_t) { return id == in_flight.arg; });
      break;
    case 'T': {  // all of the VM's buffers, or none, are gone
      size_t left = 0, had = 0;
      for (const auto& [id, owner] : e.owners) {
        if (owner != in_flight.arg) continue;
        ++had;
        left += found.contains(id);
      }
      if (left != 0 && left != had) {
        return absl::StrCat("the teardown of vm ", in_flight.arg, " was recorded in part: ",
                            left, " of ", had, " buffers left");
      }
      violation = same_except([&](uint64_t id, uint32_t owner) {
        auto told = e.owners.find(id);
        return owner == in_flight.arg ||
               (told != e.owners.end() && told->second == in_flight.arg);
      });
      break;
    }
    default:
      violation = same_except([](uint64_t, uint32_t) { return false; });
  }
  if (!violation.empty()) {
    return absl::StrCat(violation, " (in flight at the kill: ",
                        in_flight.kind == 0 ? std::string("nothing")
                                            : absl::StrCat(std::string(1, in_flight.kind), " ",
                                                           Hex(in_flight.arg)),
                        ")");
  }
  // The restored state is now what the guests may rely on; ids it holds
  // that no guest saw (the request in flight) must never come again either.
  e.owners = found;
  for (const auto& [id, owner] : found) e.ids_seen.insert(id);
  for (const auto& [h, t] : restored.ledger().txns()) e.ids_seen.insert(h.value());

  return CheckAccess(restored, fakes.memory, platform);
}

int Main(int argc, char** argv) {
  uint64_t kills = 200, seed = 1;
  uint64_t max_delay_us = 20000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf(
          "usage: kill_restart [--kills N] [--seed S] [--max-delay-us U]\n"
          "  SIGKILLs a broker child serving a random workload at N random instants\n"
          "  (0..U microseconds after it restored), restores from its SQLite store\n"
          "  after each kill and checks ownership, conservation, ids and isolation.\n"
          "  Defaults: --kills 200 --seed 1 --max-delay-us 20000.\n");
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "kill_restart: %s needs a value (see --help)\n", a.c_str());
      return 2;
    }
    char* end = nullptr;
    const uint64_t v = std::strtoull(argv[++i], &end, 0);
    if (*end != '\0') {
      std::fprintf(stderr, "kill_restart: %s: not a number: %s\n", a.c_str(), argv[i]);
      return 2;
    }
    if (a == "--kills") {
      kills = v;
    } else if (a == "--seed") {
      seed = v;
    } else if (a == "--max-delay-us") {
      max_delay_us = v;
    } else {
      std::fprintf(stderr, "kill_restart: unknown option %s (see --help)\n", a.c_str());
      return 2;
    }
  }
  const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  std::string dir = absl::StrCat(base, "/rmem-kill-XXXXXX");
  RMEM_CHECK(mkdtemp(dir.data()) != nullptr);
  const std::string path = dir + "/state.db";

  Expectation expect;
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL | 1;
  uint64_t acked = 0, max_buffers = 0;
  std::map<char, uint64_t> landed;  // what was in flight at each kill ('-': nothing)
  const auto start = std::chrono::steady_clock::now();
  std::string violation;
  uint64_t k = 0;
  for (; k < kills && violation.empty(); ++k) {
    int fds[2];
    RMEM_CHECK(pipe(fds) == 0);
    const uint64_t child_seed = NextWord(x);
    const pid_t pid = fork();
    RMEM_CHECK(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      RunChild(path, child_seed, fds[1]);
    }
    close(fds[1]);
    // Wait until it has restored, then let it run for a random while.
    std::string records;
    char buf[65536];
    while (records.find("R\n") == std::string::npos) {
      const ssize_t n = read(fds[0], buf, sizeof(buf));
      if (n <= 0) break;
      records.append(buf, static_cast<size_t>(n));
    }
    if (records.find("R\n") == std::string::npos) {
      int status = 0;
      waitpid(pid, &status, 0);
      violation = absl::StrCat("the broker did not start (wait status ", status, ")");
      break;
    }
    // Keep draining the pipe meanwhile, so the child never waits on it.
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::microseconds(NextWord(x) % (max_delay_us + 1));
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd pfd{fds[0], POLLIN, 0};
      if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
      const ssize_t n = read(fds[0], buf, sizeof(buf));
      if (n <= 0) break;
      records.append(buf, static_cast<size_t>(n));
    }
    kill(pid, SIGKILL);
    for (;;) {
      const ssize_t n = read(fds[0], buf, sizeof(buf));
      if (n <= 0) break;
      records.append(buf, static_cast<size_t>(n));
    }
    close(fds[0]);
    int status = 0;
    RMEM_CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
      violation = absl::StrCat("the broker ended on its own (wait status ", status,
                               "): a CHECK failed in it?");
      break;
    }
    InFlight in_flight;
    violation = Apply(records, expect, in_flight, acked);
    ++landed[in_flight.kind == 0 ? '-' : in_flight.kind];
    if (violation.empty()) violation = CheckRestart(path, expect, in_flight);
    max_buffers = std::max<uint64_t>(max_buffers, expect.owners.size());
    if ((k + 1) % 1000 == 0) {
      std::printf("kill_restart: %" PRIu64 " kill points, %" PRIu64 " requests acknowledged\n",
                  k + 1, acked);
      std::fflush(stdout);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const char* f : {"/state.db", "/state.db-wal", "/state.db-shm", "/state.db.lock"}) {
    unlink((dir + f).c_str());
  }
  rmdir(dir.c_str());
  if (!violation.empty()) {
    std::printf("kill_restart: VIOLATION at kill point %" PRIu64 " (seed %" PRIu64 "): %s\n", k,
                seed, violation.c_str());
    return 1;
  }
  std::string where;
  const std::map<char, const char*> names = {{'-', "between requests"}, {'A', "alloc"},
                                             {'H', "share/lend/donate"},
                                             {'D', "retrieve/relinquish"}, {'K', "reclaim"},
                                             {'F', "free"}, {'T', "teardown"}};
  for (const auto& [kind, n] : landed) {
    absl::StrAppend(&where, where.empty() ? "" : ", ", names.at(kind), " ", n);
  }
  std::printf("kill_restart: %" PRIu64 " kill points, %" PRIu64
              " requests acknowledged, up to %" PRIu64 " live buffers, %" PRIu64
              " ids checked, 0 violations, %.1f s\nkill_restart: killed during: %s\n",
              k, acked, max_buffers, static_cast<uint64_t>(expect.ids_seen.size()), seconds,
              where.c_str());
  return 0;
}

}  // namespace
}  // namespace rmem::testing

int main(int argc, char** argv) { return rmem::testing::Main(argc, argv); }

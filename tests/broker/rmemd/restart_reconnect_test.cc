// rmemd SIGKILLed under connected guests and started again: the guests'
// VMMs reconnect and carry on where they were.
//
// The real rmemd binary (RMEMD, set by meson) serves the documented example
// configuration, its sockets in a scratch directory, on the memfd
// STAND-IN, with its state in an SQLite file there. The guests are rmem-vmm's
// own VhostUserFrontend (reconnect on, as rmem-vmm runs it) and ShmWindows,
// their drivers played by FakeDrivers (service_guest.h).
//
// What it shows: when rmemd dies, every guest loses its shared memory
// mappings at once (nothing a dead broker granted stays reachable); a
// request posted while rmemd is down is answered once it is back; the
// restarted rmemd maps exactly what its state says each guest holds, at
// the same offsets with the same rights, before the guest's queue runs
// again; ids go on without reuse; a restart that discards the state
// (--reset-state) leaves the guests connected with nothing mapped and their
// old ids unknown.
//
// Not here: the bytes in the buffers. The memfd stand-in dies with rmemd;
// over real carve-outs they survive, and the test SoC checks that
// (images/rmem_driver.sh, step 6).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/broker/rmemd/service_guest.h"

namespace rmem::rmemd {
namespace {

using ::testing::HasSubstr;
using virtio_rmem::ReadWire;

constexpr absl::Duration kReconnect = absl::Seconds(30);

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Waits for `done` (a hang guard, not a timing assertion).
template <typename F>
bool Eventually(F done, absl::Duration guard = kGuard) {
  const absl::Time deadline = absl::Now() + guard;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// rmemd as a child process, its output in a log file.
class RmemdProcess {
 public:
  explicit RmemdProcess(std::string dir) : dir_(std::move(dir)) {}
  ~RmemdProcess() { Kill(); }

  void Start(const std::vector<std::string>& extra) {
    ASSERT_EQ(pid_, 0);
    const char* rmemd = std::getenv("RMEMD");
    ASSERT_NE(rmemd, nullptr) << "RMEMD is set by meson";
    std::vector<std::string> args = {rmemd,        "--config", dir_ + "/rmemd.toml", "--memory",
                                     "standin",    "--state",  dir_ + "/state.db"};
    args.insert(args.end(), extra.begin(), extra.end());
    ++starts_;
    const std::string log = dir_ + "/rmemd." + std::to_string(starts_) + ".log";
    std::fflush(stdout);  // the child would write what is buffered again
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      FILE* out = std::freopen(log.c_str(), "w", stdout);
      if (out == nullptr || dup2(fileno(stdout), 2) < 0) _exit(126);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    last_log_ = log;
  }
  // SIGKILL, as a crash: nothing is torn down, the state file stays.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = 0;
  }
  std::string log() const { return ReadAll(last_log_); }

 private:
  std::string dir_;
  pid_t pid_ = 0;
  int starts_ = 0;
  std::string last_log_;
};

class RestartReconnectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/rmemd-restart-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    const char* example = std::getenv("RMEMD_EXAMPLE_CONFIG");
    ASSERT_NE(example, nullptr) << "RMEMD_EXAMPLE_CONFIG is set by meson";
    const std::string text = absl::StrReplaceAll(ReadAll(example), {{"/run/rmemd", dir_}});
    std::ofstream(dir_ + "/rmemd.toml") << text;
    absl::StatusOr<RmemdConfig> config = ParseConfig(text, example);
    ASSERT_TRUE(config.ok()) << config.status();
    rmemd_ = std::make_unique<RmemdProcess>(dir_);
    rmemd_->Start({});
    for (const char* name : {"decrypt", "display", "infotainment"}) {
      std::string socket;
      for (const GuestConfig& g : config->guests) {
        if (g.name == name) socket = g.socket;
      }
      guests_.push_back(std::make_unique<Guest>(name, socket));
      guests_.back()->set_reconnect_timeout(kReconnect);
      const absl::Status connected = guests_.back()->Connect();
      ASSERT_TRUE(connected.ok()) << connected << "\n" << rmemd_->log();
    }
  }
  void TearDown() override {
    // rmemd first: it kills a VMM that hangs up holding buffers (here, us).
    rmemd_.reset();
    guests_.clear();
    std::system(("rm -rf " + dir_).c_str());
  }
  Guest& decrypt() { return *guests_[0]; }
  Guest& display() { return *guests_[1]; }
  Guest& info() { return *guests_[2]; }

  // Kills rmemd and waits until every guest's mappings are gone.
  void Kill() {
    rmemd_->Kill();
    for (const std::unique_ptr<Guest>& g : guests_) {
      EXPECT_TRUE(Eventually([&] { return g->reach().count() == 0; }))
          << g->name() << " still maps " << g->reach().count()
          << " pieces of a dead broker";
    }
  }
  // Kill, then posts `while_down` from decrypt (unanswered yet: nobody
  // serves the queue).
  void Crash(const std::vector<uint8_t>& while_down) {
    Kill();
    decrypt().Post(while_down);
  }
  // Starts rmemd again and waits for every guest to be reconnected.
  void Restart(const std::vector<std::string>& extra) {
    rmemd_->Start(extra);
    ++restarts_;
    for (const std::unique_ptr<Guest>& g : guests_) {
      EXPECT_TRUE(Eventually([&] { return g->reconnects() == restarts_; }))
          << g->name() << " did not reconnect\n"
          << rmemd_->log();
    }
  }

  std::string dir_;
  std::unique_ptr<RmemdProcess> rmemd_;
  std::vector<std::unique_ptr<Guest>> guests_;
  int restarts_ = 0;
};

TEST_F(RestartReconnectTest, Killed_GuestsReconnectWithExactlyTheirMappings_AndWorkOn) {
  const virtio_rmem_resp_alloc frame = Alloc(decrypt(), 1 << 20);
  const virtio_rmem_resp_alloc spare = Alloc(decrypt(), 64 << 10);
  const std::vector<uint8_t> offer = Offer(decrypt(), VIRTIO_RMEM_REQ_SHARE, frame.buffer,
                                           kDisplay, VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_EQ(StatusOf(offer), VIRTIO_RMEM_S_OK);
  const uint64_t handle = ReadWire<virtio_rmem_resp_offer>(offer).handle;
  const std::vector<uint8_t> got = ByHandle(display(), VIRTIO_RMEM_REQ_RETRIEVE, handle);
  ASSERT_EQ(StatusOf(got), VIRTIO_RMEM_S_OK);
  const virtio_rmem_resp_retrieve retrieved = ReadWire<virtio_rmem_resp_retrieve>(got);
  ASSERT_EQ(decrypt().reach().count(), 2u);
  ASSERT_EQ(display().reach().count(), 1u);

  Crash(GetHeapRequest(kHeapVideo));
  Restart({});

  // The request posted while rmemd was down has its answer.
  ASSERT_TRUE(decrypt().WaitForAnswered(decrypt().posted()));
  // Exactly what the state says each guest holds, where it was, as it was.
  EXPECT_EQ(decrypt().reach().count(), 2u);
  EXPECT_EQ(display().reach().count(), 1u);
  EXPECT_EQ(info().reach().count(), 0u);
  const std::optional<RecordingGuest::Piece> own = decrypt().reach().At(frame.shm_offset);
  const std::optional<RecordingGuest::Piece> own_spare = decrypt().reach().At(spare.shm_offset);
  const std::optional<RecordingGuest::Piece> seen = display().reach().At(retrieved.shm_offset);
  ASSERT_TRUE(own.has_value() && own_spare.has_value() && seen.has_value());
  EXPECT_EQ(own->len, uint64_t{1} << 20);
  EXPECT_TRUE(own->writable);
  EXPECT_EQ(own_spare->len, uint64_t{64} << 10);
  EXPECT_EQ(seen->len, uint64_t{1} << 20);
  EXPECT_FALSE(seen->writable) << "shared read-only before the crash, so after it";
  EXPECT_THAT(rmemd_->log(), HasSubstr("vm 1: its VMM is back: 2 restored mappings"));

  // And everyone works on: the borrower gives the frame back, the owner
  // reclaims and frees it, allocates again (an id never given out before),
  // and shares it (a handle never given out before).
  EXPECT_EQ(StatusOf(ByHandle(display(), VIRTIO_RMEM_REQ_RELINQUISH, handle)), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(display().reach().count(), 0u);
  EXPECT_EQ(StatusOf(Reclaim(decrypt(), frame.buffer)), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(StatusOf(ByBuffer(decrypt(), VIRTIO_RMEM_REQ_FREE, frame.buffer)), VIRTIO_RMEM_S_OK);
  EXPECT_FALSE(decrypt().reach().At(frame.shm_offset).has_value());
  const virtio_rmem_resp_alloc next = Alloc(decrypt(), 1 << 20);
  EXPECT_NE(next.buffer, frame.buffer);  // ids are unguessable, not increasing: never reused
  EXPECT_NE(next.buffer, spare.buffer);
  const std::vector<uint8_t> again = Offer(decrypt(), VIRTIO_RMEM_REQ_SHARE, next.buffer, kDisplay,
                                           VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_EQ(StatusOf(again), VIRTIO_RMEM_S_OK);
  EXPECT_NE(ReadWire<virtio_rmem_resp_offer>(again).handle, handle);
  EXPECT_EQ(StatusOf(TryAlloc(info(), 64 << 10, kHeapUi)), VIRTIO_RMEM_S_OK);
}

TEST_F(RestartReconnectTest, RestartedWithoutItsState_GuestsReconnectWithNothingMapped) {
  const virtio_rmem_resp_alloc frame = Alloc(decrypt(), 1 << 20);
  ASSERT_EQ(decrypt().reach().count(), 1u);

  Crash(GetHeapRequest(kHeapVideo));
  Restart({"--reset-state"});

  ASSERT_TRUE(decrypt().WaitForAnswered(decrypt().posted()));
  EXPECT_EQ(decrypt().reach().count(), 0u) << "the state that granted it was discarded";
  EXPECT_NE(StatusOf(ByBuffer(decrypt(), VIRTIO_RMEM_REQ_FREE, frame.buffer)), VIRTIO_RMEM_S_OK)
      << "an id of the discarded state";
  const virtio_rmem_resp_alloc next = Alloc(decrypt(), 1 << 20);
  EXPECT_TRUE(decrypt().reach().At(next.shm_offset).has_value());
}

// The random workload's model of what each guest holds, built only from the
// answers the guests got.
struct Owned {
  enum State { kIdle, kOffered, kRetrieved, kRelinquished };
  uint64_t offset = 0, len = 0;
  State state = kIdle;
  // The open share's handle; nullopt while kIdle, or when the SHARE that
  // opened it ran twice (in flight at a kill) and the guest heard BUSY.
  std::optional<uint64_t> handle;
};
struct Held {  // a share display retrieved
  uint64_t buffer = 0;  // decrypt's id
  uint64_t offset = 0, len = 0;
};
struct Model {
  std::array<std::map<uint64_t, Owned>, 3> owned;  // per guest, by buffer id
  std::map<uint64_t, Held> held;                   // display's, by handle
  // Pieces a guest reaches but never heard of: an ALLOC in flight at a kill
  // that both the dead rmemd and the new one ran (no INFLIGHT_FD).
  std::array<size_t, 3> extras = {};
  std::set<uint64_t> ids_seen;  // buffer ids are never reused
};

enum class OpKind { kAlloc, kFree, kShare, kReclaim, kRetrieve, kRelinquish, kFreeOffered };
struct Op {
  int guest = 0;  // 0 decrypt, 1 display, 2 infotainment
  OpKind kind = OpKind::kAlloc;
  uint64_t buffer = 0, handle = 0, size = 0;
  std::vector<uint8_t> request;
  std::string name() const {
    static constexpr const char* kNames[] = {"ALLOC", "FREE", "SHARE", "RECLAIM",
                                             "RETRIEVE", "RELINQUISH", "FREE(offered)"};
    return absl::StrCat(kNames[static_cast<int>(kind)], " by guest ", guest, " buffer ", buffer,
                        " handle ", handle, " size ", size);
  }
};

// What GET_HEAP says is free in `heap` (0 if it fails).
uint64_t HeapFreeBytes(Guest& g, uint32_t heap) {
  const std::vector<uint8_t> r = g.Request(GetHeapRequest(heap));
  if (r.size() != sizeof(virtio_rmem_resp_get_heap)) return 0;
  return ReadWire<virtio_rmem_resp_get_heap>(r).free_bytes;
}

// The example platform's TZC-400 has 8 regions for rmemd to grant with.
constexpr size_t kTzcGrantRegions = 8;

// A random key of `map` whose value satisfies `pred`.
template <typename Map, typename Pred>
std::optional<uint64_t> PickKey(std::mt19937_64& rng, const Map& map, Pred pred) {
  std::vector<uint64_t> keys;
  for (const auto& [key, value] : map) {
    if (pred(value)) keys.push_back(key);
  }
  if (keys.empty()) return std::nullopt;
  return keys[rng() % keys.size()];
}

// A random request that is valid in `m` (or, for kFreeOffered, refused
// with BUSY and changing nothing); nullopt if the pick does not fit `m`.
std::optional<Op> PickOp(std::mt19937_64& rng, const Model& m) {
  Op op;
  const auto alloc = [&](int guest, uint32_t heap, uint64_t max_pages, size_t cap) -> bool {
    if (m.owned[guest].size() >= cap) return false;
    op.guest = guest;
    op.kind = OpKind::kAlloc;
    op.size = 4096 * (1 + rng() % max_pages);
    op.request = AllocRequest(op.size, heap);
    return true;
  };
  const auto release = [&](int guest, OpKind kind) -> bool {
    const std::optional<uint64_t> b = PickKey(rng, m.owned[guest], [&](const Owned& o) {
      return (o.state == Owned::kIdle) == (kind == OpKind::kFree);
    });
    if (!b) return false;
    op.guest = guest;
    op.kind = kind;
    op.buffer = *b;
    op.request = BufferRequest(VIRTIO_RMEM_REQ_FREE, *b);
    return true;
  };
  const auto by_handle = [&](OpKind kind, uint32_t type, Owned::State state) -> bool {
    const std::optional<uint64_t> b = PickKey(rng, m.owned[0], [&](const Owned& o) {
      return o.state == state && o.handle.has_value();
    });
    if (!b) return false;
    op.guest = 1;
    op.kind = kind;
    op.buffer = *b;
    op.handle = *m.owned[0].at(*b).handle;
    op.request = HandleRequest(type, op.handle);
    return true;
  };
  bool fits = false;
  switch (rng() % 11) {
    case 0:
    case 1:  // decrypt: 4 KiB .. 256 KiB on secure-video
      // Each secure-video buffer takes one of the TZC-400's 8 grant
      // regions (for the decoder): buffers an in-flight ALLOC left behind
      // hold theirs too.
      fits = alloc(0, kHeapVideo, 64,
                   m.extras[0] < kTzcGrantRegions ? kTzcGrantRegions - m.extras[0] : 0);
      break;
    case 2:
      fits = release(0, OpKind::kFree);
      break;
    case 3: {  // decrypt shares a frame read-only with display
      const std::optional<uint64_t> b =
          PickKey(rng, m.owned[0], [](const Owned& o) { return o.state == Owned::kIdle; });
      if (!b) break;
      op.guest = 0;
      op.kind = OpKind::kShare;
      op.buffer = *b;
      op.request = OfferRequest(VIRTIO_RMEM_REQ_SHARE, *b, kDisplay,
                                VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
      fits = true;
      break;
    }
    case 4: {  // decrypt closes a share nobody holds
      const std::optional<uint64_t> b = PickKey(rng, m.owned[0], [](const Owned& o) {
        return o.state == Owned::kOffered || o.state == Owned::kRelinquished;
      });
      if (!b) break;
      op.guest = 0;
      op.kind = OpKind::kReclaim;
      op.buffer = *b;
      op.request = ReclaimRequest(*b);
      fits = true;
      break;
    }
    case 5:
      fits = by_handle(OpKind::kRetrieve, VIRTIO_RMEM_REQ_RETRIEVE, Owned::kOffered);
      break;
    case 6:
      fits = by_handle(OpKind::kRelinquish, VIRTIO_RMEM_REQ_RELINQUISH, Owned::kRetrieved);
      break;
    case 7:  // display: 4 KiB .. 128 KiB on secure-ui (quota 8 MiB)
      fits = rng() % 2 ? alloc(1, kHeapUi, 32, 6) : release(1, OpKind::kFree);
      break;
    case 8:  // infotainment: 4 KiB .. 64 KiB on secure-ui (quota 2 MiB)
      fits = rng() % 2 ? alloc(2, kHeapUi, 16, 4) : release(2, OpKind::kFree);
      break;
    case 9:
      fits = release(0, OpKind::kFreeOffered);
      break;
    case 10:
      fits = release(1, OpKind::kFree);
      break;
  }
  if (!fits) return std::nullopt;
  return op;
}

// Updates `m` from the answer to `op`. `in_flight`: the request was posted
// when rmemd was killed, so the dead rmemd may have run it already and the
// new one runs it again; then the answer may be the one to a repeat.
// Returns a description of what is wrong, "" if nothing.
std::string Apply(const Op& op, const std::vector<uint8_t>& response, bool in_flight, Model& m,
                  const Guest& display) {
  const uint32_t status = StatusOf(response);
  const auto want = [&](std::initializer_list<uint32_t> ok) -> std::string {
    for (uint32_t s : ok) {
      if (s == status) return "";
    }
    return absl::StrCat(op.name(), (in_flight ? " (in flight at the kill)" : ""),
                        ": status ", status);
  };
  std::map<uint64_t, Owned>& owned = m.owned[op.guest];
  switch (op.kind) {
    case OpKind::kAlloc: {
      if (std::string e = want({VIRTIO_RMEM_S_OK}); !e.empty()) return e;
      if (response.size() != sizeof(virtio_rmem_resp_alloc)) return op.name() + ": short answer";
      const auto r = ReadWire<virtio_rmem_resp_alloc>(response);
      if (r.size != op.size || r.shm_offset == VIRTIO_RMEM_NO_OFFSET)
        return absl::StrCat(op.name(), ": size ", r.size, " offset ", r.shm_offset);
      if (r.buffer == 0 || !m.ids_seen.insert(r.buffer).second)
        return absl::StrCat(op.name(), ": id ", r.buffer, " given out before");
      owned[r.buffer] = Owned{.offset = r.shm_offset, .len = r.size};
      return "";
    }
    case OpKind::kFree:
      if (std::string e = in_flight ? want({VIRTIO_RMEM_S_OK, VIRTIO_RMEM_S_NOT_FOUND})
                                    : want({VIRTIO_RMEM_S_OK});
          !e.empty())
        return e;
      owned.erase(op.buffer);
      return "";
    case OpKind::kFreeOffered:
      return want({VIRTIO_RMEM_S_BUSY});
    case OpKind::kShare: {
      if (std::string e = in_flight ? want({VIRTIO_RMEM_S_OK, VIRTIO_RMEM_S_BUSY})
                                    : want({VIRTIO_RMEM_S_OK});
          !e.empty())
        return e;
      Owned& o = owned.at(op.buffer);
      o.state = Owned::kOffered;
      o.handle.reset();
      if (status == VIRTIO_RMEM_S_OK) o.handle = ReadWire<virtio_rmem_resp_offer>(response).handle;
      return "";
    }
    case OpKind::kReclaim: {
      if (std::string e = in_flight ? want({VIRTIO_RMEM_S_OK, VIRTIO_RMEM_S_BUSY})
                                    : want({VIRTIO_RMEM_S_OK});
          !e.empty())
        return e;
      Owned& o = owned.at(op.buffer);
      if (status == VIRTIO_RMEM_S_OK) {
        const auto r = ReadWire<virtio_rmem_resp_reclaim>(response);
        if (r.shm_offset != o.offset)
          return absl::StrCat(op.name(), ": the owner's view moved to ", r.shm_offset);
      }
      o.state = Owned::kIdle;
      o.handle.reset();
      return "";
    }
    case OpKind::kRetrieve: {
      if (std::string e = in_flight ? want({VIRTIO_RMEM_S_OK, VIRTIO_RMEM_S_BUSY})
                                    : want({VIRTIO_RMEM_S_OK});
          !e.empty())
        return e;
      Owned& o = m.owned[0].at(op.buffer);
      o.state = Owned::kRetrieved;
      Held h{.buffer = op.buffer, .len = o.len};
      if (status == VIRTIO_RMEM_S_OK) {
        const auto r = ReadWire<virtio_rmem_resp_retrieve>(response);
        if (r.size != o.len || r.owner != kDecrypt.value() || r.kind != VIRTIO_RMEM_KIND_SHARE ||
            r.rights != (VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP))
          return absl::StrCat(op.name(), ": size ", r.size, " owner ", r.owner, " kind ", r.kind,
                              " rights ", r.rights);
        h.offset = r.shm_offset;
      } else {
        // Retrieved by the dead rmemd: the restored mapping is the one
        // read-only piece of that size display never heard of.
        bool found = false;
        for (const RecordingGuest::Piece& p : display.reach().All()) {
          const uint64_t offset = p.guest.value() - kRegionBase.value();
          bool known = false;
          for (const auto& [handle, held] : m.held) known |= held.offset == offset;
          if (!p.writable && !known && p.len == o.len) {
            h.offset = offset;
            found = true;
          }
        }
        if (!found) return op.name() + ": BUSY, yet display does not hold it";
      }
      m.held[op.handle] = h;
      return "";
    }
    case OpKind::kRelinquish:
      if (std::string e = in_flight ? want({VIRTIO_RMEM_S_OK, VIRTIO_RMEM_S_BUSY})
                                    : want({VIRTIO_RMEM_S_OK});
          !e.empty())
        return e;
      m.held.erase(op.handle);
      m.owned[0].at(op.buffer).state = Owned::kRelinquished;
      return "";
  }
  return "unknown op";
}

// Checks that every guest reaches every piece of `m` at its offset, with its
// length and rights, and returns how many more pieces each reaches.
std::array<size_t, 3> CheckHoldings(const Model& m, const std::vector<Guest*>& guests,
                                    const std::string& when) {
  std::array<size_t, 3> extras = {};
  for (int g = 0; g < 3; ++g) {
    struct Want {
      uint64_t offset, len;
      bool writable;
    };
    std::vector<Want> wants;
    for (const auto& [buffer, o] : m.owned[g]) wants.push_back({o.offset, o.len, true});
    if (g == 1) {
      for (const auto& [handle, h] : m.held) wants.push_back({h.offset, h.len, false});
    }
    const RecordingGuest& reach = guests[g]->reach();
    for (const Want& w : wants) {
      const std::optional<RecordingGuest::Piece> p = reach.At(w.offset);
      if (!p.has_value()) {
        ADD_FAILURE() << when << ": " << guests[g]->name() << " does not reach its piece at "
                      << w.offset;
        continue;
      }
      EXPECT_EQ(p->len, w.len) << when << ": " << guests[g]->name() << " at " << w.offset;
      EXPECT_EQ(p->writable, w.writable) << when << ": " << guests[g]->name() << " at " << w.offset;
    }
    const size_t count = reach.count();
    EXPECT_GE(count, wants.size()) << when << ": " << guests[g]->name();
    extras[g] = count >= wants.size() ? count - wants.size() : 0;
  }
  return extras;
}

// A seeded random workload (RMEM_SEED, default 1) from all three guests,
// with rmemd SIGKILLed between bursts and sometimes with a request in
// flight. After every restart each guest reaches exactly what the answers
// it got say it holds, plus at most one piece per ALLOC in flight at a kill
// (run by both rmemds), and every guest is served again.
TEST_F(RestartReconnectTest, RandomKills_GuestsAlwaysReconnectToWhatTheyHold) {
  const char* env_seed = std::getenv("RMEM_SEED");
  const uint64_t seed = env_seed != nullptr ? std::strtoull(env_seed, nullptr, 0) : 1;
  std::printf("RandomKills: seed %llu (RMEM_SEED)\n", static_cast<unsigned long long>(seed));
  std::fflush(stdout);  // before rmemd is forked: its child would write it again
  SCOPED_TRACE(absl::StrCat("RMEM_SEED=", seed));
  // The plan (burst lengths, which kills have a request in flight, when
  // they land) draws from its own stream, so it is the same for a seed
  // however the in-flight requests turn out; the requests draw from `rng`
  // and follow the model, which does depend on that.
  std::mt19937_64 plan(seed), rng(seed ^ 0x9e3779b97f4a7c15);
  constexpr int kKills = 25;
  const std::vector<Guest*> guests = {&decrypt(), &display(), &info()};
  Model m;
  int acknowledged = 0, in_flight_at_kill = 0, repeated_answers = 0;
  size_t extra_pieces = 0;

  const auto drain_events = [&] {
    for (Guest* g : guests) {
      while (g->EventPending()) g->NextEvent();
    }
  };
  const auto pick = [&]() -> Op {
    for (;;) {
      if (std::optional<Op> op = PickOp(rng, m)) return *std::move(op);
    }
  };

  for (int kill = 1; kill <= kKills; ++kill) {
    const std::string at = absl::StrCat("kill ", kill);
    const int burst = static_cast<int>(plan() % 16);
    for (int i = 0; i < burst; ++i) {
      const Op op = pick();
      const std::vector<uint8_t> response = guests[op.guest]->Request(op.request);
      ASSERT_EQ(Apply(op, response, /*in_flight=*/false, m, display()), "")
          << at << "; the guest owns " << m.owned[op.guest].size() << " buffers in the model, "
          << guests[op.guest]->reach().count() << " pieces; the secure-video heap has "
          << HeapFreeBytes(*guests[op.guest], kHeapVideo) << " bytes free\n"
          << rmemd_->log();
      ++acknowledged;
      drain_events();
    }
    EXPECT_EQ(CheckHoldings(m, guests, at + ", before it"), m.extras);
    ASSERT_FALSE(HasFailure());

    std::optional<Op> pending;
    if (plan() % 2) {
      pending = pick();
      guests[pending->guest]->Post(pending->request);
      // Kill before rmemd reads it, while it serves it, or after it answered.
      static constexpr int kDelayUs[] = {0, 0, 50, 200, 1000};
      absl::SleepFor(absl::Microseconds(kDelayUs[plan() % std::size(kDelayUs)]));
      ++in_flight_at_kill;
    }
    Kill();
    ASSERT_FALSE(HasFailure()) << at;
    Restart({});
    ASSERT_FALSE(HasFailure()) << at << ": rmemd did not come back\n" << rmemd_->log();

    if (pending.has_value()) {
      Guest& g = *guests[pending->guest];
      ASSERT_TRUE(g.WaitForAnswered(g.posted())) << at << ": " << pending->name();
      const std::vector<uint8_t> answer = g.LastAnswer();
      if (pending->kind != OpKind::kFreeOffered && StatusOf(answer) != VIRTIO_RMEM_S_OK)
        ++repeated_answers;
      ASSERT_EQ(Apply(*pending, answer, /*in_flight=*/true, m, display()), "") << at;
      ++acknowledged;
    }
    const std::array<size_t, 3> extras = CheckHoldings(m, guests, at + ", after the restart");
    for (int g = 0; g < 3; ++g) {
      const size_t may_add =
          pending.has_value() && pending->guest == g && pending->kind == OpKind::kAlloc ? 1 : 0;
      EXPECT_GE(extras[g], m.extras[g]) << at << ": " << guests[g]->name();
      EXPECT_LE(extras[g], m.extras[g] + may_add)
          << at << ": " << guests[g]->name() << " reaches pieces it never heard of"
          << (pending.has_value() ? ", in flight: " + pending->name() : "");
      if (extras[g] > m.extras[g]) extra_pieces += extras[g] - m.extras[g];
    }
    m.extras = extras;
    ASSERT_FALSE(HasFailure()) << rmemd_->log();

    // Everyone is served again.
    for (int g = 0; g < 3; ++g) {
      EXPECT_EQ(StatusOf(guests[g]->Request(GetHeapRequest(g == 2 ? kHeapUi : kHeapVideo))),
                VIRTIO_RMEM_S_OK)
          << at << ": " << guests[g]->name();
      ++acknowledged;
    }
    drain_events();
    ASSERT_FALSE(HasFailure());
  }
  std::printf(
      "RandomKills: seed %llu: %d kills, %d requests acknowledged, %d in flight at a kill (%d "
      "answered as a repeat), %zu extra pieces seen\n",
      static_cast<unsigned long long>(seed), kKills, acknowledged, in_flight_at_kill,
      repeated_answers, extra_pieces);
}

}  // namespace
}  // namespace rmem::rmemd

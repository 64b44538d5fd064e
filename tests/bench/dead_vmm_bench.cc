// How long a dead guest holds memory: rmemd's service in one process (as in
// tests/broker/rmemd/service_test.cc, over vhost-user, guests played by
// rmem-vmm's front-end and a FakeDriver), display owning N buffers of 4 KiB
// on the example's secure-ui heap (behind the block-granular firewall
// model: the TZC-400 in front of secure-video has 8 grant regions, too few
// for 1,000 buffers), half of them shared with infotainment and retrieved
// by it; then display's VMM hangs up (its socket closes, as when the
// process dies) and we time, from the hang-up:
//   - until infotainment has received REVOKED for every buffer it held (its
//     mappings are gone before each event);
//   - until every page is back in the heap (GET_HEAP from infotainment);
// with the SQLite state store (in /dev/shm, like /run) and without it.
// Floor, same run: memset of the same number of bytes (the scrub the
// teardown must do). Figures are printed, never asserted.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "broker/state/sqlite_state_store.h"
#include "tests/broker/rmemd/service_guest.h"
#include "virtio_rmem/uapi/virtio_rmem.h"
#include "virtio_rmem/vhost_user/log.h"

namespace rmem::rmemd {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kBufferBytes = 4 << 10;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Result {
  double revoked_ms = 0;  // hang-up -> the last REVOKED at the borrower
  double back_ms = 0;     // hang-up -> every page back in the heap
};

uint64_t HeapFree(Guest& g) {
  const std::vector<uint8_t> r = g.Request(GetHeapRequest(kHeapUi));
  if (StatusOf(r) != VIRTIO_RMEM_S_OK || r.size() != sizeof(virtio_rmem_resp_get_heap)) return 0;
  return virtio_rmem::ReadWire<virtio_rmem_resp_get_heap>(r).free_bytes;
}

absl::StatusOr<Result> Run(const std::string& config, int buffers, bool with_store) {
  std::string dir;
  std::unique_ptr<StateStore> store;
  if (with_store) {
    char tmpl[] = "/dev/shm/rmem-dead-vmm-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
    dir = tmpl;
    absl::StatusOr<std::unique_ptr<SqliteStateStore>> s =
        SqliteStateStore::Open(dir + "/state.db", {});
    if (!s.ok()) return s.status();
    store = *std::move(s);
  }
  Result out;
  {
    absl::StatusOr<std::unique_ptr<InProcessService>> rmemd =
        InProcessService::Start(config, std::move(store));
    if (!rmemd.ok()) return rmemd.status();
    Guest owner("display", (*rmemd)->socket("display"));
    Guest borrower("infotainment", (*rmemd)->socket("infotainment"));
    for (Guest* g : {&owner, &borrower}) {
      if (absl::Status s = g->Connect(); !s.ok()) return s;
    }
    const uint64_t free_before = HeapFree(borrower);
    int held = 0;
    for (int i = 0; i < buffers; ++i) {
      virtio_rmem_req_alloc a{};
      a.hdr.type = VIRTIO_RMEM_REQ_ALLOC;
      a.heap = kHeapUi;
      a.size = kBufferBytes;
      const std::vector<uint8_t> got = owner.Request(Bytes(a));
      if (StatusOf(got) != VIRTIO_RMEM_S_OK) {
        return absl::InternalError(absl::StrCat("ALLOC ", i, ": status ", StatusOf(got)));
      }
      if (i % 2 != 0) continue;
      virtio_rmem_req_share share{};
      share.hdr.type = VIRTIO_RMEM_REQ_SHARE;
      share.buffer = virtio_rmem::ReadWire<virtio_rmem_resp_alloc>(got).buffer;
      share.num_receivers = 1;
      std::vector<uint8_t> req = Bytes(share);
      virtio_rmem::AppendWire(req, virtio_rmem_receiver{kInfotainment.value(),
                                                        VIRTIO_RMEM_RIGHT_READ |
                                                            VIRTIO_RMEM_RIGHT_CPU_MAP});
      const std::vector<uint8_t> offered = owner.Request(req);
      if (StatusOf(offered) != VIRTIO_RMEM_S_OK) return absl::InternalError("SHARE refused");
      virtio_rmem_req_handle retrieve{};
      retrieve.hdr.type = VIRTIO_RMEM_REQ_RETRIEVE;
      retrieve.handle = virtio_rmem::ReadWire<virtio_rmem_resp_offer>(offered).handle;
      if (StatusOf(borrower.Request(Bytes(retrieve))) != VIRTIO_RMEM_S_OK) {
        return absl::InternalError("RETRIEVE refused");
      }
      ++held;
    }
    // The borrower's OFFERED events so far are not what is measured.
    while (borrower.EventPending()) (void)borrower.NextEvent();

    const Clock::time_point t0 = Clock::now();
    owner.Hangup();
    int revoked = 0;
    while (revoked < held) {
      std::optional<virtio_rmem_event> e = borrower.NextEvent();
      if (!e) return absl::DeadlineExceededError("the borrower waits for REVOKED in vain");
      if (e->type == VIRTIO_RMEM_EVENT_REVOKED) ++revoked;
    }
    out.revoked_ms = MsSince(t0);
    while (HeapFree(borrower) != free_before) {
    }
    out.back_ms = MsSince(t0);
  }
  if (!dir.empty()) std::filesystem::remove_all(dir);
  return out;
}

double MemsetMs(uint64_t bytes) {
  std::vector<uint8_t> arena(bytes, 1);
  double best = 1e9;
  for (int i = 0; i < 5; ++i) {
    const Clock::time_point t0 = Clock::now();
    std::memset(arena.data(), 0, bytes);
    benchmark::ClobberMemory();
    best = std::min(best, MsSince(t0));
  }
  return best;
}

int Main(int argc, char** argv) {
  std::string config = RMEMD_EXAMPLE_CONFIG;
  int buffers = 1000;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf(
          "usage: dead_vmm_bench [--quick] [--config FILE]\n"
          "  times how long rmemd takes, after a guest's VMM hangs up, to revoke its\n"
          "  1,000 buffers (4 KiB; half retrieved by another guest) from the borrower\n"
          "  and return every page, with and without the SQLite state store; floor:\n"
          "  memset of the same bytes. --quick: 100 buffers.\n");
      return 0;
    } else if (arg == "--quick") {
      buffers = 100;
    } else if (arg == "--config" && i + 1 < argc) {
      config = argv[++i];
    } else {
      std::fprintf(stderr, "dead_vmm_bench: unknown argument %s (see --help)\n", arg.c_str());
      return 2;
    }
  }
  virtio_rmem::SetLogSink([](absl::string_view) {});
  constexpr int kRounds = 3;
  std::printf("dead_vmm_bench: display owns %d buffers of 4 KiB (secure-ui), %d retrieved by\n"
              "infotainment; display's VMM hangs up; median of %d rounds, from the hang-up (ms):\n",
              buffers, buffers / 2, kRounds);
  std::printf("  %-34s %12s %14s %12s\n", "", "last REVOKED", "pages all back", "per buffer");
  for (bool with_store : {false, true}) {
    std::vector<Result> rounds;
    for (int r = 0; r < kRounds; ++r) {
      absl::StatusOr<Result> got = Run(config, buffers, with_store);
      if (!got.ok()) {
        std::fprintf(stderr, "dead_vmm_bench: %s\n", got.status().ToString().c_str());
        return 1;
      }
      rounds.push_back(*got);
    }
    std::sort(rounds.begin(), rounds.end(),
              [](const Result& a, const Result& b) { return a.back_ms < b.back_ms; });
    const Result& m = rounds[kRounds / 2];
    std::printf("  %-34s %12.2f %14.2f %12.3f\n",
                with_store ? "with the SQLite store (/dev/shm)" : "state in memory only",
                m.revoked_ms, m.back_ms, m.back_ms / buffers);
  }
  const uint64_t bytes = static_cast<uint64_t>(buffers) * kBufferBytes;
  std::printf("  floor: memset of the same %.1f MiB: %.2f ms\n",
              static_cast<double>(bytes) / (1 << 20), MemsetMs(bytes));
  return 0;
}

}  // namespace
}  // namespace rmem::rmemd

int main(int argc, char** argv) { return rmem::rmemd::Main(argc, argv); }

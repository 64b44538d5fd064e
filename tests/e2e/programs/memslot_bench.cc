// rmem-memslot-bench: what installing and revoking a shared memory piece
// costs inside the VMM, against the floor of a bare KVM memslot update, in
// the same run. Runs in the test SoC's host (L1, real arm64 KVM); the full
// path through vhost-user is measured by rmem-shmem-test-backend --bench.
//
//   bare_slot        KVM_SET_USER_MEMORY_REGION add + delete of a 64 KiB slot
//                    over an already mapped host range (the floor)
//   rmem_piece       ShmWindows::Map + Unmap through KvmSlotMapper: checks,
//                    host mmap of the fd piece, memslot add; memslot delete,
//                    munmap (what rmem-vmm does per SHMEM_MAP/UNMAP)
//   window_grant     the alternative design: one memslot over the whole
//                    region, a piece granted by mmap(MAP_FIXED) of the fd
//                    into its host range and revoked by mapping PROT_NONE
//                    back (KVM's MMU notifier drops stage-2)
//   socket_rtt       an 8-byte round trip over a Unix socket pair to a thread
//   rtt_plus_map     the floor of a broker request that maps a buffer: one
//                    socket round trip plus one memslot add of 8 MiB (the
//                    delete is not timed); the guest benchmark of virtio-rmem
//                    (rmemtool bench) is compared with it
// No vCPU touches the memory, so stage-2 holds nothing to tear down: revoke
// figures are lower bounds. Prints median and p99 per operation in µs and
// the ratio to the floor.
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "vmm/kvm/kvm.h"
#include "vmm/kvm/kvm_slot_mapper.h"
#include "vmm/memory/shm_window.h"

namespace rmem::vmm {
namespace {

constexpr uint64_t kPiece = 64 * 1024;
constexpr uint64_t kRegion = 8 << 20;  // also the floor's buffer size
constexpr uint64_t kRegionGuest = uint64_t{1} << 39;

struct Figures {
  double median_us = 0, p99_us = 0;
};

Figures Time(int rounds, const std::function<void()>& op) {
  std::vector<double> us;
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    op();
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[us.size() * 99 / 100]};
}

void Print(const char* name, Figures f, double floor) {
  std::printf("RMEM-BENCH %-14s median_us=%.1f p99_us=%.1f ratio_to_bare_slot=%.2f\n", name,
              f.median_us, f.p99_us, f.median_us / floor);
}

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "rmem-memslot-bench: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

int Main(int argc, char** argv) {
  int rounds = 500;
  if (argc > 1 && (!absl::SimpleAtoi(argv[1], &rounds) || rounds < 10)) {
    std::fprintf(stderr, "usage: rmem-memslot-bench [ROUNDS >= 10] (default 500)\n");
    return 2;
  }
  absl::StatusOr<KvmVm> kvm = KvmVm::Create();
  Check(kvm.status(), "creating a KVM VM");
  const int fd = memfd_create("rmem-memslot-bench", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, kRegion) != 0) return 1;
  void* host = mmap(nullptr, kRegion, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (host == MAP_FAILED) return 1;

  // The floor: a slot over memory that is already mapped.
  const Figures bare = Time(rounds, [&] {
    Check(kvm->SetMemorySlot(1, GuestAddr(kRegionGuest), kPiece, host, false), "slot add");
    Check(kvm->SetMemorySlot(1, GuestAddr(kRegionGuest), 0, nullptr, false), "slot delete");
  });
  Print("bare_slot", bare, bare.median_us);

  // What rmem-vmm does per SHMEM_MAP + SHMEM_UNMAP.
  KvmSlotMapper slots(&*kvm, 1);
  ShmWindows windows("bench", &slots);
  windows.SetRegions({{.id = 0, .base = GuestAddr(kRegionGuest), .size = kRegion}});
  Print("rmem_piece", Time(rounds, [&] {
          Check(windows.Map(0, fd, 0, 0, kPiece, false), "map");
          Check(windows.Unmap(0, 0, kPiece), "unmap");
        }),
        bare.median_us);

  // The alternative: one slot over a reserved range, pieces mmap'ed into it.
  void* window = mmap(nullptr, kRegion, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (window == MAP_FAILED) return 1;
  Check(kvm->SetMemorySlot(2, GuestAddr(kRegionGuest + kRegion), kRegion, window, false),
        "window slot");
  Print("window_grant", Time(rounds, [&] {
          if (mmap(window, kPiece, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED ||
              mmap(window, kPiece, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
                  MAP_FAILED) {
            std::exit(1);
          }
        }),
        bare.median_us);
  // A request's floor: a socket round trip, then a buffer-sized slot add.
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return 1;
  std::thread echo([fd = pair[1]] {
    uint64_t v;
    while (read(fd, &v, sizeof(v)) == sizeof(v)) {
      if (write(fd, &v, sizeof(v)) != sizeof(v)) return;
    }
  });
  auto round_trip = [&] {
    uint64_t v = 42;
    if (write(pair[0], &v, sizeof(v)) != sizeof(v) || read(pair[0], &v, sizeof(v)) != sizeof(v)) {
      std::exit(1);
    }
  };
  Print("socket_rtt", Time(rounds, round_trip), bare.median_us);
  std::vector<double> floor_us;
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    round_trip();
    Check(kvm->SetMemorySlot(3, GuestAddr(kRegionGuest + 2 * kRegion), kRegion, host, false),
          "slot add");
    floor_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    Check(kvm->SetMemorySlot(3, GuestAddr(kRegionGuest + 2 * kRegion), 0, nullptr, false),
          "slot delete");
  }
  std::sort(floor_us.begin(), floor_us.end());
  Print("rtt_plus_map", {floor_us[floor_us.size() / 2], floor_us[floor_us.size() * 99 / 100]},
        bare.median_us);
  shutdown(pair[0], SHUT_RDWR);
  echo.join();
  std::printf("RMEM-BENCH rounds=%d piece_bytes=%llu\n", rounds,
              static_cast<unsigned long long>(kPiece));
  return 0;
}

}  // namespace
}  // namespace rmem::vmm

int main(int argc, char** argv) { return rmem::vmm::Main(argc, argv); }

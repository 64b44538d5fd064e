// The VIRTIO shared memory regions of a device, as guest memory: what a
// vhost-user backend's SHMEM_MAP / SHMEM_UNMAP requests change. Each mapped
// piece becomes its own guest mapping (a KVM memslot in the VMM) with exactly
// the granted rights: read-only pieces are read-only memslots, so a guest
// write exits to the VMM instead of changing memory, and an access to a part
// of the region with no piece has no memslot at all and exits too. Both are
// reported with their guest physical address (Classify) — docs/vmm.md has
// the policy and the measurements behind one-memslot-per-piece.
//
// While the device's back-end is away (the frontend reconnects: Suspend to
// Resume) the regions are empty and "in doubt": a guest access to them is
// no violation yet. The vCPU waits (AwaitSettled) and then performs the
// access if the back-end that came back mapped the page again (Access), or
// reports the violation as usual if it did not.
//
// Validation, in this order, each a specific error for the backend's reply:
// unknown shmid; zero length, offsets or length not page aligned; a piece
// outside the region (overflow-safe); overlap with a mapped piece; for unmap,
// a range that is not exactly one earlier map.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "broker/types.h"
#include "vmm/vhost_user/shmem_mapper.h"
#include "vmm/virtio/virtio_mmio.h"

namespace rmem::vmm {

// Makes a host range guest memory and takes it away again.
class GuestMapper {
 public:
  virtual ~GuestMapper() = default;
  // Returns a token for Remove.
  virtual absl::StatusOr<uint32_t> Install(GuestAddr guest, uint8_t* host, uint64_t len,
                                           bool writable) = 0;
  // When it returns, the guest can no longer reach the range.
  virtual absl::Status Remove(uint32_t token) = 0;
};

class ShmWindows final : public ShmemMapper {
 public:
  ShmWindows(std::string device, GuestMapper* mapper)
      : device_(std::move(device)), mapper_(mapper) {}
  // Where the regions are in guest physical space. Known only once the
  // backend has told their sizes, so set after construction, once, before
  // the guest runs; until then every map is refused ("no such region").
  void SetRegions(std::vector<ShmPlacement> regions);
  ~ShmWindows() override;  // removes every piece, guest mapping first

  absl::Status Map(uint8_t shmid, int fd, uint64_t fd_offset, uint64_t shm_offset, uint64_t len,
                   bool writable) override;
  absl::Status Unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len) override;
  // Removes every piece (guest mapping first) and puts the regions in doubt.
  void Suspend() override;
  void Resume() override;

  // If `addr` lies in one of these regions while they are in doubt, waits
  // until they are settled or `slice` has passed. Returns whether `addr`
  // is in doubt (still, after the slice): the caller checks whether it
  // should stop and calls again.
  bool AwaitSettled(GuestAddr addr, absl::Duration slice) const;
  // Performs a guest load (into `data`) or store (from it) of up to 8 bytes
  // at `addr` on the piece that maps it, as the guest would have through
  // its mapping; false if no piece maps it with that right.
  bool Access(GuestAddr addr, std::span<uint8_t> data, bool is_write);
  // The bytes Access has loaded or stored for the guest so far: the only
  // guest data in these regions that rmem-vmm itself ever touches (every
  // other access goes through the guest's own mapping, never the VMM).
  uint64_t bytes_accessed() const;

  // If a guest access that exited to the VMM at `addr` lies in one of these
  // regions, what it violated ("write to read-only piece ..." or "access to
  // unmapped ..."), else nullopt.
  std::optional<std::string> Classify(GuestAddr addr, bool is_write) const;

  size_t mapped_pieces() const;

  // Counts every change of the pieces (map, unmap, suspend, resume). A
  // piece its back-end revoked (host_driver/rmem_carveout: rmemd exited)
  // makes KVM_RUN fail with EFAULT until the piece is removed here; the
  // vCPU waits for the next change and runs again (Vm::VcpuLoop).
  uint64_t changes() const { return changes_.load(std::memory_order_acquire); }
  // Waits until changes() differs from `since` or `slice` has passed;
  // returns whether it differs.
  bool AwaitChange(uint64_t since, absl::Duration slice) const;

 private:
  struct Piece {
    uint64_t len = 0;
    bool writable = false;
    uint8_t* host = nullptr;
    uint32_t token = 0;
  };
  struct Region {
    std::map<uint64_t, Piece> pieces;  // by offset in the region
  };
  const ShmPlacement* FindLocked(uint8_t shmid) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The region `addr` lies in, or null.
  const ShmPlacement* ContainingLocked(GuestAddr addr) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Removes one piece: the guest's mapping, then the host's.
  absl::Status RemoveLocked(Piece& piece) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Bad(uint8_t shmid, uint64_t offset, uint64_t len, absl::string_view why) const;

  const std::string device_;
  GuestMapper* const mapper_;

  mutable absl::Mutex mu_;
  std::vector<ShmPlacement> regions_ ABSL_GUARDED_BY(mu_);
  std::map<uint8_t, Region> state_ ABSL_GUARDED_BY(mu_);
  bool in_doubt_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t bytes_accessed_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> changes_{0};  // written under mu_, read without it
};

}  // namespace rmem::vmm

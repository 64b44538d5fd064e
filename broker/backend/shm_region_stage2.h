// ShmRegionStage2: the Stage2 backend for guests served over vhost-user. A
// guest sees a buffer inside its device's VIRTIO shared memory region: the
// backend picks a free offset in that VM's region and asks the VM's VMM to
// map the carve-out piece there (vhost-user SHMEM_MAP with the carve-out's
// fd; read-only unless write is granted). The VMM turns that into a KVM
// memory slot, so stage 2 enforces it. Map returns the region offset as the
// GuestAddr: where in the region the guest finds the buffer (the VMM alone
// knows the region's guest-physical base).
//
// The fd a VMM gets is a piece (CarveoutMemory::Issue): a file for the
// mapping's pages alone, read-only unless write is granted, so a VMM that
// ignores SHMEM_MAP's length or flags still reaches nothing else. The piece
// is revoked as the mapping ends - after the VMM's unmap, at Detach, when an
// attach fails - so a VMM that kept its own mapping (or the fd) loses it
// then too.
//
// A VM is mappable only while its VMM is attached. Detach (the VMM went
// away) forgets its mappings, which went with the VMM's process, and
// revokes their pieces. An unmap
// the VMM does not confirm cannot be tolerated (Stage2::Unmap cannot fail,
// and the broker scrubs and reuses the pages next): the backend then calls
// the VM's `sever` callback, which must make the mapping unreachable before
// it returns - rmemd kills the VMM (SIGKILL through a pidfd of the peer of
// its socket) and waits for it to exit - and must not call into the broker
// (the broker is mid-request); the VM's teardown follows from the event
// loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "broker/backend/carveout_memory.h"
#include "broker/backend/stage2.h"
#include "broker/carveout/page_allocator.h"

namespace rmem {

// What a VM's VMM connection does for the backend (SHMEM_MAP / SHMEM_UNMAP).
class ShmRegionMapper {
 public:
  virtual ~ShmRegionMapper() = default;
  virtual absl::Status Map(uint64_t region_offset, int fd, uint64_t fd_offset, uint64_t length,
                           bool writable) = 0;
  virtual absl::Status Unmap(uint64_t region_offset, uint64_t length) = 0;
};

class ShmRegionStage2 : public Stage2 {
 public:
  // Offsets of pieces of at least this size are aligned to it, so that the
  // VMM's mapping can use 2 MiB stage-2 blocks.
  static constexpr uint64_t kBlockSize = uint64_t{2} << 20;

  explicit ShmRegionStage2(const CarveoutMemory& memory) : memory_(memory) {}

  // The VM's VMM connected: its region is `region_size` bytes (a multiple
  // of 4 KiB); `mapper` and `sever` stay valid until Detach. Mappings
  // restored while it was away (MapAt) are made now, at their offsets.
  // InvalidArgument for a bad size; FailedPrecondition if already attached;
  // a restored mapping that no longer fits the region, or that the VMM
  // refuses, fails the attach (nothing stays mapped, the VM stays detached).
  absl::Status Attach(VmId vm, uint64_t region_size, ShmRegionMapper* mapper,
                      std::function<void()> sever);
  // The VM's VMM is gone: its mappings went with it; their pieces are
  // revoked. Idempotent.
  void Detach(VmId vm);
  bool attached(VmId vm) const { return vms_.contains(vm); }
  // Bytes of the VM's region in use (0 when not attached).
  uint64_t mapped_bytes(VmId vm) const;
  // Buffers mapped in the VM's region now (0 when not attached).
  size_t mapping_count(VmId vm) const;

  // Unavailable when the VM's VMM is not attached; ResourceExhausted when
  // its region has no room; the VMM's error when it refuses the map.
  absl::StatusOr<GuestAddr> Map(VmId vm, PageRange pages, Access access) override;
  // At region offset `at`. A VM not attached (rmemd restarted; its VMM has
  // not reconnected yet) keeps it until Attach.
  absl::Status MapAt(VmId vm, PageRange pages, Access access, GuestAddr at) override;
  // A kept mapping of a VM that is not attached is simply dropped.
  void Unmap(VmId vm, PageRange pages) override;
  // Restored mappings waiting for the VM's VMM.
  size_t waiting(VmId vm) const;

 private:
  struct Mapping {
    uint64_t offset;
    PageRange slot;  // the offsets it occupies, as pages from offset 0
    std::unique_ptr<CarveoutMemory::PieceFile> piece;  // revoked with the mapping
  };
  struct AttachedVm {
    ShmRegionMapper* mapper;
    std::function<void()> sever;
    std::unique_ptr<PageAllocator> offsets;  // the region's offsets, as pages
    absl::flat_hash_map<uint64_t, Mapping> by_first_pfn;  // host pfn -> mapping
  };

  struct Waiting {
    PageRange pages;
    Access access;
    uint64_t offset;
  };
  // Maps `pages` at `slot` (reserved in v.offsets); frees the slot on error.
  absl::Status MapInto(AttachedVm& v, PageRange pages, Access access, PageRange slot);
  absl::StatusOr<PageRange> ReserveAt(VmId vm, AttachedVm& v, PageRange pages, uint64_t offset);

  const CarveoutMemory& memory_;
  absl::flat_hash_map<VmId, AttachedVm> vms_;
  absl::flat_hash_map<VmId, absl::flat_hash_map<uint64_t, Waiting>> waiting_;  // by host pfn
};

}  // namespace rmem

// The guest memory a front-end shared with SET_MEM_TABLE, mapped into this
// process: one mapping per region, unmapped when the table is replaced or
// the connection ends. Translates guest addresses (descriptor buffers, via
// guest()) and front-end addresses (ring addresses) to host spans.
//
// A region's fd must be a memfd sealed against shrinking (F_SEAL_SHRINK), at
// least mmap_offset + size bytes long: a front-end that could shrink the
// file under us would turn our next access into SIGBUS, killing every
// guest's service. (QEMU's memory-backend-memfd seals by default; rmem-vmm
// seals its RAM.)
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "base/fd.h"
#include "virtio_rmem/vhost_user/request.h"
#include "virtio_rmem/virtqueue/guest_memory_map.h"

namespace rmem::virtio_rmem {

class MemoryTable {
 public:
  // Maps every region of a decoded SET_MEM_TABLE (`fds[i]` backs
  // `regions[i]`); all or nothing. InvalidArgument naming the region for an
  // fd that is not a shrink-sealed memfd or is too short; Internal (errno
  // text) if mmap fails.
  static absl::StatusOr<std::unique_ptr<MemoryTable>> Map(const std::vector<MemRegionSpec>& regions,
                                                          std::span<const Fd> fds);
  ~MemoryTable();
  MemoryTable(const MemoryTable&) = delete;
  MemoryTable& operator=(const MemoryTable&) = delete;

  const GuestMemoryMap& guest() const { return guest_; }
  // The host view of [addr, addr + len) of front-end memory; InvalidArgument
  // unless it lies inside one region.
  absl::StatusOr<std::span<uint8_t>> TranslateFrontend(FrontendVa addr, uint64_t len) const;

 private:
  struct Mapping {
    void* base;
    size_t length;
  };
  struct UserRegion {
    FrontendVa user;
    uint64_t size;
    uint8_t* host;
  };
  MemoryTable() = default;

  std::vector<Mapping> mappings_;
  std::vector<UserRegion> user_regions_;
  GuestMemoryMap guest_;
};

}  // namespace rmem::virtio_rmem

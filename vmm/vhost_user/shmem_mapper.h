// Where a vhost-user back-end's SHMEM_MAP / SHMEM_UNMAP requests land: the
// VMM side that owns the VIRTIO shared memory regions' guest mappings. The
// frontend calls it from its back-end request thread.
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace rmem::vmm {

class ShmemMapper {
 public:
  virtual ~ShmemMapper() = default;
  // Maps [fd_offset, fd_offset + len) of `fd` at `shm_offset` in shared memory
  // region `shmid`. The fd is only borrowed for the call (dup it to keep it).
  virtual absl::Status Map(uint8_t shmid, int fd, uint64_t fd_offset, uint64_t shm_offset,
                           uint64_t len, bool writable) = 0;
  virtual absl::Status Unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len) = 0;
};

}  // namespace rmem::vmm

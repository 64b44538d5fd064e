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
  // The back-end hung up and the frontend reconnects: every piece goes
  // now, and the regions are "in doubt" until Resume (a guest access to
  // them meanwhile waits rather than fault: vmm/memory/shm_window.h). Maps
  // from the back-end that came back arrive in between.
  virtual void Suspend() {}
  virtual void Resume() {}
};

}  // namespace rmem::vmm

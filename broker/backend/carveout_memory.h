// CarveoutMemory: where carve-out pages can be reached as an mmap-able file
// descriptor. The vhost-user stage-2 backend hands (fd, offset) pieces to
// VMMs (SHMEM_MAP needs an fd) and the scrubber maps pages on demand to zero
// them; neither keeps carve-out memory mapped in rmemd.
// Implementations:
//   DeviceCarveoutMemory - real carve-outs through the host module's
//       /dev/rmem-carveout (host_driver/rmem_carveout; offset = physical
//       address);
//   MemfdCarveoutMemory  - a STAND-IN: one memfd per carve-out (offset =
//       physical address - base) for host-only tests and hosts without the
//       module. Ordinary host memory, not restricted memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/carveout/carveout.h"
#include "broker/types.h"

namespace rmem {

class CarveoutMemory {
 public:
  struct Piece {
    int fd = -1;          // owned by the CarveoutMemory; valid while it lives
    uint64_t offset = 0;  // mmap offset of the range's first byte
  };
  virtual ~CarveoutMemory() = default;
  // `pages` must lie inside one carve-out; InvalidArgument otherwise.
  virtual absl::StatusOr<Piece> Locate(PageRange pages) const = 0;
  // "the memfd stand-in", "/dev/rmem-carveout": for logs and status.
  virtual std::string Describe() const = 0;
};

// NotFound / PermissionDenied when the device cannot be opened (no module,
// not root); FailedPrecondition when a carve-out of `carveouts` is not one
// the module serves (base and size must match a line of its listing).
absl::StatusOr<std::unique_ptr<CarveoutMemory>> OpenDeviceCarveoutMemory(
    const std::string& device_path, const std::vector<Carveout>& carveouts);

// Internal when a memfd cannot be made.
absl::StatusOr<std::unique_ptr<CarveoutMemory>> MakeMemfdCarveoutMemory(
    const std::vector<Carveout>& carveouts);

}  // namespace rmem

// CarveoutMemory: where carve-out pages can be reached as mmap-able file
// descriptors. rmemd's scrubber maps pages on demand to zero them (Locate:
// rmemd's own access to every carve-out page); the vhost-user stage-2
// backend hands VMMs pieces (Issue: SHMEM_MAP needs an fd), each a file of
// its own for exactly one range with exactly one right, revoked when rmemd
// takes the grant back. Neither keeps carve-out memory mapped in rmemd.
// Implementations:
//   DeviceCarveoutMemory - real carve-outs through the host module's
//       /dev/rmem-carveout (host_driver/rmem_carveout; Locate offset =
//       physical address; Issue = RMEM_CARVEOUT_IOC_PIECE, confined and
//       revocable);
//   MemfdCarveoutMemory  - a STAND-IN: one memfd per carve-out (offset =
//       physical address - base) for host-only tests and hosts without the
//       module. Ordinary host memory, not restricted memory, and its pieces
//       are the whole memfd: neither confined to the range nor revocable.
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
  // A file a VMM may map for one piece (SHMEM_MAP's fd and fd offset).
  // Destroying it revokes it: every mapping of it, in every process, is torn
  // down (where the implementation can; confined() says whether).
  class PieceFile {
   public:
    virtual ~PieceFile() = default;
    virtual int fd() const = 0;
    virtual uint64_t offset() const = 0;  // mmap offset of the piece's first byte
  };

  virtual ~CarveoutMemory() = default;
  // `pages` must lie inside one carve-out; InvalidArgument otherwise.
  virtual absl::StatusOr<Piece> Locate(PageRange pages) const = 0;
  // A file for `pages` alone, writable only if `writable`. InvalidArgument
  // when `pages` is not inside one carve-out; the host's error otherwise.
  virtual absl::StatusOr<std::unique_ptr<PieceFile>> Issue(PageRange pages,
                                                           bool writable) const = 0;
  // Whether Issue's files reach their pages alone, with their right alone,
  // and die with their revocation (the device: yes; the stand-in: no).
  virtual bool confined() const = 0;
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

// The guest's memory as a device process sees it: regions of guest physical
// space, each mapped at some host address. Every guest address the driver
// hands the device (descriptor buffers) becomes a host span only here, and
// only if the whole range lies inside one region. The map does not own the
// mappings (virtio_rmem/vhost_user/memory_table.h does, for vhost-user).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/types.h"

namespace rmem::virtio_rmem {

struct GuestRegion {
  GuestAddr base;
  uint64_t size = 0;
  uint8_t* host = nullptr;  // host address of `base`
};

class GuestMemoryMap {
 public:
  GuestMemoryMap() = default;  // no memory: every translation fails

  // InvalidArgument (naming the region) for an empty region, one whose end
  // passes 2^64, a null host address, or regions that overlap.
  static absl::StatusOr<GuestMemoryMap> Create(std::vector<GuestRegion> regions);

  // The host view of [addr, addr + len). InvalidArgument naming the range if
  // any byte of it is outside every region, or the range straddles two
  // regions (even adjacent ones: their host mappings need not be), or
  // addr + len overflows. A zero-length range must still start inside a
  // region.
  absl::StatusOr<std::span<uint8_t>> Translate(GuestAddr addr, uint64_t len) const;

  const std::vector<GuestRegion>& regions() const { return regions_; }

 private:
  explicit GuestMemoryMap(std::vector<GuestRegion> regions) : regions_(std::move(regions)) {}
  std::vector<GuestRegion> regions_;  // sorted by base, disjoint
};

}  // namespace rmem::virtio_rmem

#include "virtio_rmem/virtqueue/guest_memory_map.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace rmem::virtio_rmem {

absl::StatusOr<GuestMemoryMap> GuestMemoryMap::Create(std::vector<GuestRegion> regions) {
  std::sort(regions.begin(), regions.end(),
            [](const GuestRegion& a, const GuestRegion& b) { return a.base < b.base; });
  for (size_t i = 0; i < regions.size(); ++i) {
    const GuestRegion& r = regions[i];
    const std::string name =
        absl::StrCat("guest memory region at ", r.base.ToString(), " of ", Hex(r.size), " bytes");
    if (r.size == 0 || r.host == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": empty or not mapped"));
    }
    // The last byte must be addressable: base + size may equal 2^64 exactly.
    if (r.size - 1 > UINT64_MAX - r.base.value()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ends past 2^64"));
    }
    if (i > 0) {
      const GuestRegion& p = regions[i - 1];
      if (r.base.value() <= p.base.value() + (p.size - 1)) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ": overlaps the region at ", p.base.ToString(), " of ", Hex(p.size), " bytes"));
      }
    }
  }
  return GuestMemoryMap(std::move(regions));
}

absl::StatusOr<std::span<uint8_t>> GuestMemoryMap::Translate(GuestAddr addr, uint64_t len) const {
  // The last region whose base is <= addr is the only one that can hold it.
  auto it = std::upper_bound(regions_.begin(), regions_.end(), addr,
                             [](GuestAddr a, const GuestRegion& r) { return a < r.base; });
  if (it != regions_.begin()) {
    const GuestRegion& r = *std::prev(it);
    const uint64_t offset = addr.value() - r.base.value();
    if (offset < r.size && len <= r.size - offset) {
      return std::span<uint8_t>(r.host + offset, len);
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("guest range ", addr.ToString(), " + ", Hex(len),
                                                 " is not inside one region of guest memory"));
}

}  // namespace rmem::virtio_rmem

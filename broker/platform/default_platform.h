// rmemd's embedded default platform (default_platform.dts, compiled by dtc
// and embedded at build time): the device tree rmemd reads when it is given
// no --fdt or --transfer-list.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace rmem::platform {

extern const uint8_t kDefaultPlatformDtb[];
extern const size_t kDefaultPlatformDtb_size;

inline std::span<const uint8_t> DefaultPlatformDtb() {
  return {kDefaultPlatformDtb, kDefaultPlatformDtb_size};
}

}  // namespace rmem::platform

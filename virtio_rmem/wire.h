// The C++ side of virtio_rmem/uapi/virtio_rmem.h: the layouts are
// little-endian and so is every host we build for (checked here), so a
// structure is read or written with one memcpy and its fields used as they
// are. Only the decoder and the encoder use these.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "broker/rights.h"
#include "virtio_rmem/uapi/virtio_rmem.h"

namespace rmem::virtio_rmem {

static_assert(std::endian::native == std::endian::little,
              "virtio-rmem layouts are little-endian: add byte swaps for this host");
// The wire's rights bits are the broker's.
static_assert(VIRTIO_RMEM_RIGHT_READ == Rights::kRead);
static_assert(VIRTIO_RMEM_RIGHT_WRITE == Rights::kWrite);
static_assert(VIRTIO_RMEM_RIGHT_CPU_MAP == Rights::kCpuMap);
static_assert(VIRTIO_RMEM_RIGHTS_ALL == Rights::kAllBits);

// `bytes` must hold at least sizeof(T) bytes (callers check lengths first).
template <typename T>
T ReadWire(std::span<const uint8_t> bytes) {
  T value;
  std::memcpy(&value, bytes.data(), sizeof(T));
  return value;
}

template <typename T>
void AppendWire(std::vector<uint8_t>& out, const T& value) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));  // (insert of a byte range trips GCC 12's -Wstringop-overflow)
  std::memcpy(out.data() + at, &value, sizeof(T));
}

}  // namespace rmem::virtio_rmem

// A descriptor chain of a split virtqueue, walked and validated in one
// place (the driver is hostile), and what the device gets from it: the
// device-readable bytes copied out of guest memory once, and the
// device-writable part as host spans it writes its reply into.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "virtio_rmem/virtqueue/guest_memory_map.h"

namespace rmem::virtio_rmem {

// The most bytes one chain may describe, readable and writable together.
// virtio-rmem's requests and replies are a few hundred bytes; the bound
// keeps a hostile driver from making us copy or scan much for one chain.
inline constexpr uint64_t kMaxChainBytes = 1 << 20;

class DescriptorChain {
 public:
  uint16_t head() const { return head_; }
  // The device-readable part, copied out of guest memory: the driver cannot
  // change it under the device.
  std::span<const uint8_t> readable() const { return readable_; }
  // Total bytes of the device-writable part.
  uint32_t writable_size() const { return writable_size_; }
  // Writes `bytes` into the writable part at `offset` (across descriptors as
  // needed). False, and nothing written, if it does not fit.
  bool Write(uint32_t offset, std::span<const uint8_t> bytes) const;
  // Descriptors in the chain (for tests and statistics).
  int descriptor_count() const { return descriptors_; }

 private:
  friend absl::StatusOr<DescriptorChain> WalkChain(std::span<const uint8_t>, uint16_t, uint16_t,
                                                   const GuestMemoryMap&);
  uint16_t head_ = 0;
  int descriptors_ = 0;
  std::vector<uint8_t> readable_;
  std::vector<std::span<uint8_t>> writable_;
  uint32_t writable_size_ = 0;
};

// Walks the chain that starts at descriptor `head` of `table` (the host view
// of a descriptor table of `queue_size` entries). Each descriptor is copied
// once before it is looked at. Rejects, with InvalidArgument naming the
// descriptor (its index and position in the chain) and the rule:
//   - an index (head or next) that is not below the queue size;
//   - a chain of more descriptors than the queue size (which is how a loop
//     ends);
//   - VIRTQ_DESC_F_INDIRECT (VIRTIO_F_INDIRECT_DESC is never offered) and
//     unknown flag bits;
//   - a device-readable descriptor after a device-writable one;
//   - more than kMaxChainBytes in total;
//   - a buffer that is not inside one region of `memory`.
// Zero-length descriptors are allowed and touch no memory.
absl::StatusOr<DescriptorChain> WalkChain(std::span<const uint8_t> table, uint16_t queue_size,
                                          uint16_t head, const GuestMemoryMap& memory);

}  // namespace rmem::virtio_rmem

#include "virtio_rmem/virtqueue/descriptor_chain.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "broker/check.h"
#include "virtio_rmem/virtqueue/split_ring.h"

namespace rmem::virtio_rmem {

bool DescriptorChain::Write(uint32_t offset, std::span<const uint8_t> bytes) const {
  if (offset > writable_size_ || bytes.size() > writable_size_ - offset) return false;
  uint64_t skip = offset;
  for (std::span<uint8_t> part : writable_) {
    if (bytes.empty()) break;
    if (skip >= part.size()) {
      skip -= part.size();
      continue;
    }
    const size_t n = std::min<size_t>(part.size() - skip, bytes.size());
    std::memcpy(part.data() + skip, bytes.data(), n);
    bytes = bytes.subspan(n);
    skip = 0;
  }
  return true;
}

absl::StatusOr<DescriptorChain> WalkChain(std::span<const uint8_t> table, uint16_t queue_size,
                                          uint16_t head, const GuestMemoryMap& memory) {
  RMEM_CHECK(table.size() == DescTableBytes(queue_size));
  DescriptorChain chain;
  chain.head_ = head;
  uint64_t total = 0;
  uint64_t writable = 0;
  bool seen_writable = false;
  std::vector<std::span<const uint8_t>> readable;
  uint32_t index = head;
  for (int position = 1;; ++position) {
    auto reject = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("descriptor ", index, " (number ", position,
                                                     " of the chain at head ", head, "): ", why));
    };
    if (index >= queue_size) {
      return reject(absl::StrCat("index is not below the queue size ", queue_size));
    }
    if (position > queue_size) {
      return reject(
          absl::StrCat("the chain is longer than the queue size ", queue_size, " (a loop?)"));
    }
    VirtqDesc d;  // copied once: the driver may change the table meanwhile
    std::memcpy(&d, table.data() + size_t{index} * sizeof(VirtqDesc), sizeof(d));
    if (d.flags & kDescFIndirect) {
      return reject("INDIRECT flag set, but VIRTIO_F_INDIRECT_DESC was not offered");
    }
    if (d.flags & ~(kDescFNext | kDescFWrite)) {
      return reject(absl::StrCat("unknown flag bits 0x", absl::Hex(d.flags)));
    }
    const bool is_writable = (d.flags & kDescFWrite) != 0;
    if (!is_writable && seen_writable) {
      return reject("device-readable after device-writable descriptors");
    }
    seen_writable |= is_writable;
    total += d.len;  // at most 2^16 * 2^32: no overflow
    if (total > kMaxChainBytes) {
      return reject(absl::StrCat("the chain describes more than ", kMaxChainBytes, " bytes"));
    }
    if (d.len > 0) {
      absl::StatusOr<std::span<uint8_t>> host = memory.Translate(GuestAddr(d.addr), d.len);
      if (!host.ok()) return reject(host.status().message());
      if (is_writable) {
        chain.writable_.push_back(*host);
        writable += d.len;
      } else {
        readable.push_back(*host);
      }
    }
    chain.descriptors_ = position;
    if ((d.flags & kDescFNext) == 0) break;
    index = d.next;
  }
  chain.writable_size_ = static_cast<uint32_t>(writable);
  size_t readable_size = 0;
  for (std::span<const uint8_t> part : readable) readable_size += part.size();
  chain.readable_.resize(readable_size);
  size_t at = 0;
  for (std::span<const uint8_t> part : readable) {
    std::memcpy(chain.readable_.data() + at, part.data(), part.size());
    at += part.size();
  }
  return chain;
}

}  // namespace rmem::virtio_rmem

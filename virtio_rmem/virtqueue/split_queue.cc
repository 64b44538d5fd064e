#include "virtio_rmem/virtqueue/split_queue.h"

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "broker/types.h"
#include "virtio_rmem/virtqueue/split_ring.h"

namespace rmem::virtio_rmem {
namespace {

static_assert(std::atomic_ref<uint16_t>::is_always_lock_free);

// A 16-bit field of a ring shared with the driver.
std::atomic_ref<uint16_t> Field16(std::span<uint8_t> part, size_t offset) {
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(part.data() + offset));
}

}  // namespace

absl::StatusOr<SplitQueue> SplitQueue::Create(uint16_t size, SplitQueueMemory memory,
                                              uint16_t next_avail) {
  if (!IsPowerOfTwo(size) || size > kSplitQueueSizeLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue size ", size, " is not a power of two up to ", kSplitQueueSizeLimit));
  }
  const struct {
    const char* name;
    std::span<uint8_t> part;
    uint64_t bytes;
    uint64_t align;
  } parts[] = {
      {"descriptor table", memory.desc, DescTableBytes(size), kDescTableAlign},
      {"available ring", memory.avail, AvailRingBytes(size), kAvailRingAlign},
      {"used ring", memory.used, UsedRingBytes(size), kUsedRingAlign},
  };
  for (const auto& p : parts) {
    if (p.part.size() < p.bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          p.name, ": ", p.part.size(), " bytes, a queue of ", size, " needs ", p.bytes));
    }
    if (reinterpret_cast<uintptr_t>(p.part.data()) % p.align != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(p.name, ": not aligned to ", p.align, " bytes"));
    }
  }
  memory.desc = memory.desc.first(DescTableBytes(size));
  return SplitQueue(size, memory, next_avail);
}

uint16_t SplitQueue::AvailIdx() const {
  return Field16(memory_.avail, kAvailIdxOffset).load(std::memory_order_acquire);
}

bool SplitQueue::HasAvailable() const { return AvailIdx() != next_avail_; }

absl::StatusOr<std::optional<SplitQueue::Popped>> SplitQueue::Pop(const GuestMemoryMap& memory) {
  const uint16_t avail_idx = AvailIdx();
  const uint16_t pending = static_cast<uint16_t>(avail_idx - next_avail_);
  if (pending == 0) return std::nullopt;
  if (pending > size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("the driver moved the available index to ", avail_idx, " with ", next_avail_,
                     " taken: ", pending, " entries, more than the queue size ", size_));
  }
  const size_t slot = next_avail_ & (size_ - 1);
  uint16_t head;
  std::memcpy(&head, memory_.avail.data() + kAvailRingOffset + 2 * slot, sizeof(head));
  if (head >= size_) {
    return absl::InvalidArgumentError(absl::StrCat("available ring entry ", next_avail_,
                                                   " names descriptor ", head,
                                                   ", not below the queue size ", size_));
  }
  ++next_avail_;
  return Popped{head, WalkChain(memory_.desc, size_, head, memory)};
}

void SplitQueue::PushUsed(uint16_t head, uint32_t written) {
  const VirtqUsedElem elem{head, written};
  const size_t slot = next_used_ & (size_ - 1);
  std::memcpy(memory_.used.data() + kUsedRingOffset + sizeof(elem) * slot, &elem, sizeof(elem));
  ++next_used_;
  // The element is visible before the index that covers it.
  Field16(memory_.used, kUsedIdxOffset).store(next_used_, std::memory_order_release);
}

bool SplitQueue::ShouldNotify() const {
  // The used index must be visible before we read the driver's flag, or we
  // could miss a driver that just re-enabled interrupts (§2.7.7.2).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t flags = Field16(memory_.avail, kAvailFlagsOffset).load(std::memory_order_relaxed);
  return (flags & kAvailFNoInterrupt) == 0;
}

}  // namespace rmem::virtio_rmem

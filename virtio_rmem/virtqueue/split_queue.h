// The device side of one split virtqueue (VIRTIO 1.2 §2.7) whose driver is
// hostile: takes available chains (validated by WalkChain), returns used
// ones, and says whether the driver wants a notification. No event index
// and no indirect descriptors (neither is offered).
//
// Two kinds of driver fault, handled differently (docs/vhost-user-backend.md):
//   - a malformed chain (its head is a valid index): Pop returns it with the
//     reason; the caller gives it back used with 0 bytes written, so the
//     driver gets its descriptors back and only that request fails;
//   - a corrupt ring (the available index moved by more than the queue size,
//     or a head index out of range): no used element can name the buffer,
//     so Pop fails and the queue must not be used again (the device needs a
//     reset).
//
// Memory ordering: the available index is read with acquire before the
// entries it covers; a used element is written before the used index is
// published with release; a full fence separates publishing from reading
// the driver's NO_INTERRUPT flag (§2.7.7).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "absl/status/statusor.h"
#include "virtio_rmem/virtqueue/descriptor_chain.h"
#include "virtio_rmem/virtqueue/guest_memory_map.h"

namespace rmem::virtio_rmem {

// Host views of a queue's three parts in guest memory.
struct SplitQueueMemory {
  std::span<uint8_t> desc;
  std::span<uint8_t> avail;
  std::span<uint8_t> used;
};

class SplitQueue {
 public:
  // `size` entries (a power of two up to kSplitQueueSizeLimit), parts of at
  // least the spec's sizes at the spec's alignments (checked on the host
  // addresses, which the atomic index accesses need); `next_avail` is where
  // the driver's available ring is read from (and the used index starts:
  // nothing is in flight). InvalidArgument naming the part otherwise.
  static absl::StatusOr<SplitQueue> Create(uint16_t size, SplitQueueMemory memory,
                                           uint16_t next_avail);

  struct Popped {
    uint16_t head;
    // The validated chain, or why it was rejected (give it back with 0).
    absl::StatusOr<DescriptorChain> chain;
  };
  // The next available chain; nullopt if the driver has posted none.
  // InvalidArgument for a corrupt ring (see above): the queue is then dead.
  absl::StatusOr<std::optional<Popped>> Pop(const GuestMemoryMap& memory);

  // Whether the driver has posted a chain we have not taken (no side effect).
  bool HasAvailable() const;

  // Returns chain `head` to the driver with `written` bytes in its writable
  // part (the device wrote them before this call).
  void PushUsed(uint16_t head, uint32_t written);

  // After PushUsed: whether to signal the driver (it did not set
  // VIRTQ_AVAIL_F_NO_INTERRUPT).
  bool ShouldNotify() const;

  uint16_t size() const { return size_; }
  // What GET_VRING_BASE reports: the next available entry we would read.
  uint16_t next_avail() const { return next_avail_; }
  uint16_t next_used() const { return next_used_; }

 private:
  SplitQueue(uint16_t size, SplitQueueMemory memory, uint16_t next)
      : size_(size), memory_(memory), next_avail_(next), next_used_(next) {}
  uint16_t AvailIdx() const;

  uint16_t size_;
  SplitQueueMemory memory_;
  uint16_t next_avail_;
  uint16_t next_used_;
};

}  // namespace rmem::virtio_rmem

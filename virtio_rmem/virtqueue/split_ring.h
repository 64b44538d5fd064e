// The split virtqueue's memory layout (VIRTIO 1.2 §2.7): descriptor table,
// available (driver) ring and used (device) ring, as the driver lays them
// out in guest memory, with the sizes, alignments and flag bits the device
// side needs. Little-endian like every modern virtio structure; we only run
// on little-endian hosts (vhost_user/protocol.h asserts it).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rmem::virtio_rmem {

// Transport feature bits (VIRTIO 1.2 §6) the device side cares about.
inline constexpr int kVirtioFIndirectDesc = 28;
inline constexpr int kVirtioFEventIdx = 29;
inline constexpr int kVirtioFVersion1 = 32;
inline constexpr int kVirtioFAccessPlatform = 33;
inline constexpr int kVirtioFRingPacked = 34;

// The spec's upper bound for a split queue's size; queues are powers of two.
inline constexpr uint32_t kSplitQueueSizeLimit = 32768;

struct VirtqDesc {
  uint64_t addr;  // guest physical
  uint32_t len;
  uint16_t flags;  // kDesc*
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);
static_assert(offsetof(VirtqDesc, len) == 8);
static_assert(offsetof(VirtqDesc, flags) == 12);
static_assert(offsetof(VirtqDesc, next) == 14);

inline constexpr uint16_t kDescFNext = 1;
inline constexpr uint16_t kDescFWrite = 2;
inline constexpr uint16_t kDescFIndirect = 4;

// Available ring: le16 flags, le16 idx, le16 ring[n], le16 used_event.
inline constexpr size_t kAvailFlagsOffset = 0;
inline constexpr size_t kAvailIdxOffset = 2;
inline constexpr size_t kAvailRingOffset = 4;
inline constexpr uint16_t kAvailFNoInterrupt = 1;

// Used ring: le16 flags, le16 idx, {le32 id, le32 len} ring[n], le16 avail_event.
inline constexpr size_t kUsedIdxOffset = 2;
inline constexpr size_t kUsedRingOffset = 4;
struct VirtqUsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(VirtqUsedElem) == 8);

// Bytes and alignment of each part for a queue of n entries (§2.7).
constexpr uint64_t DescTableBytes(uint64_t n) { return 16 * n; }
constexpr uint64_t AvailRingBytes(uint64_t n) { return 6 + 2 * n; }
constexpr uint64_t UsedRingBytes(uint64_t n) { return 6 + 8 * n; }
inline constexpr uint64_t kDescTableAlign = 16;
inline constexpr uint64_t kAvailRingAlign = 2;
inline constexpr uint64_t kUsedRingAlign = 4;

}  // namespace rmem::virtio_rmem

// Every bound the vhost-user back-end enforces, in one place
// (docs/vhost-user-backend.md lists them with their reasons).
#pragma once

#include <cstdint>

#include "absl/time/time.h"

namespace rmem::virtio_rmem {

// Queues per device: SET_VRING_KICK/CALL/ERR carry the index in 8 bits.
inline constexpr int kMaxQueues = 256;
// The largest ring we accept (QEMU's VIRTQUEUE_MAX_SIZE, what front-ends
// assume back-ends take). With kMaxChainsPerIteration it bounds the work one
// guest can cause per loop iteration: 64 chains of at most 1024 descriptors.
inline constexpr uint16_t kMaxQueueSize = 1024;
// Chains taken from one queue per loop iteration before the other guests
// get their turn (the rest wait for the next iteration, not for a new kick).
inline constexpr int kMaxChainsPerIteration = 64;
// Messages read from one front-end per wake-up (the rest stay in the socket
// and the level-triggered loop comes back for them).
inline constexpr int kMaxMessagesPerWakeup = 32;
// How long the loop waits for a front-end to answer SHMEM_MAP/UNMAP. A
// front-end that takes longer is treated as stuck: its connection breaks
// (and rmemd kills a VMM that may still map buffers). A memslot update is
// milliseconds, but on the emulated test SoC under load (nested KVM under
// TCG, two SoCs on two cores) answers took longer than 1 s, the bound
// before, and healthy VMMs were cut off; 10 s keeps a real stall bounded.
inline constexpr absl::Duration kBackendReplyTimeout = absl::Seconds(10);
// Guest-caused faults logged per connection before the log goes quiet
// (they are still counted).
inline constexpr int kMaxLoggedFaults = 8;
// Guest memory one connection may map (SET_MEM_TABLE, all regions):
// mappings cost only address space, but a front-end must not be able to
// take all of it from the other guests.
inline constexpr uint64_t kMaxMappedBytesPerConnection = uint64_t{1} << 40;  // 1 TiB
// Pending connections the kernel holds for a guest's socket.
inline constexpr int kListenBacklog = 4;
// The wire format bounds the rest: 8 fds and 8 memory regions per message,
// 256 bytes of config space, 256 shared memory regions
// (vhost_user/protocol.h); chain bytes: virtqueue/descriptor_chain.h.

}  // namespace rmem::virtio_rmem

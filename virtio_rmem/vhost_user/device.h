// The contract between the vhost-user back-end (this folder) and the virtio
// device it serves to one guest's VMM (virtio-rmem's RmemDevice, or a test
// device). The back-end owns sockets, the memory table, rings and their
// validation; the device owns meaning. The device knows nothing of sockets,
// the back-end nothing of what a request says (STYLE.md rule 9).
//
// Lifecycle, per guest (one device object per guest socket, for the life of
// the server; front-end connections come and go):
//
//      AddGuest(device)
//            |
//            v
//   +--> OnConnect(host) ---> [SET_FEATURES, rings start: OnRingStarted(q)]
//   |        |                    |
//   |        |   OnChain(q, chain) per request chain, OnBuffersAvailable(q),
//   |        |   OnReset() when the front-end resets the device;
//   |        |   the device may call host.PushToQueue / MapShmem / UnmapShmem
//   |        v
//   +--- OnDisconnect()   exactly once per OnConnect: the VMM hung up, broke
//                         the protocol, stopped answering, or the server shut
//                         down. The guest is gone: forget everything it held.
//
// Every call comes from the event loop's thread, never re-entrantly: while
// the device runs (say, waiting in MapShmem) no other device call is made,
// and a connection that breaks meanwhile is torn down (OnDisconnect) only
// after the device's call returned.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "virtio_rmem/virtqueue/descriptor_chain.h"

namespace rmem::virtio_rmem {

enum class QueueKind {
  // The driver posts requests; on a kick the back-end hands each valid chain
  // to OnChain and returns it used with the bytes the device wrote.
  kRequest,
  // The driver posts empty writable buffers for the device to fill when it
  // has something to say (an event queue). A kick only means "buffers are
  // available" (OnBuffersAvailable); the device takes one with PushToQueue.
  kDeviceToDriver,
};

// A piece of memory to map into the guest's VIRTIO shared memory region
// `region_id` at `region_offset` (SHMEM_MAP): [fd_offset, fd_offset +
// length) of `fd`, read-only unless `writable`.
struct ShmemPiece {
  uint8_t region_id = 0;
  uint64_t region_offset = 0;
  int fd = -1;  // borrowed for the call
  uint64_t fd_offset = 0;
  uint64_t length = 0;
  bool writable = false;
};

// What the back-end offers the device. Valid for the life of the server;
// between OnDisconnect and the next OnConnect every call fails with
// FailedPrecondition "... no front-end connected".
class DeviceHost {
 public:
  // Fills the next buffer the driver posted on kDeviceToDriver `queue`:
  // `fill` writes into the chain's writable part (DescriptorChain::Write)
  // and returns how many bytes it wrote (at most writable_size()). The chain
  // is then returned used and the driver notified. Malformed chains met on
  // the way are returned with 0 bytes and skipped.
  // Errors: FailedPrecondition (no front-end; not a kDeviceToDriver queue;
  // the ring is not started and enabled), ResourceExhausted (the driver has
  // no buffer posted: wait for OnBuffersAvailable), Unavailable (the ring is
  // corrupt: the connection broke; OnDisconnect follows).
  virtual absl::Status PushToQueue(uint16_t queue,
                                   absl::FunctionRef<uint32_t(const DescriptorChain&)> fill) = 0;

  // Asks the VMM to map `piece` into the guest (SHMEM_MAP with need_reply)
  // and waits for its answer, at most kBackendReplyTimeout.
  // Errors: FailedPrecondition (no front-end, or it did not negotiate
  // BACKEND_REQ, REPLY_ACK, SHMEM and BACKEND_SEND_FD, or sent no back-end
  // socket); InvalidArgument (unknown region, zero length, a range outside
  // the region or overflowing; checked before asking); the VMM's refusal as
  // the status code it replied (rmem-vmm replies absl codes; any other
  // non-zero is Unknown); Unavailable if it did not answer in time or hung
  // up: the connection is broken (OnDisconnect follows).
  virtual absl::Status MapShmem(const ShmemPiece& piece) = 0;
  // SHMEM_UNMAP of [region_offset, region_offset + length) of region
  // `region_id`: errors as MapShmem.
  virtual absl::Status UnmapShmem(uint8_t region_id, uint64_t region_offset, uint64_t length) = 0;

  // The feature bits the driver accepted (SET_FEATURES; 0 before).
  virtual uint64_t acked_features() const = 0;

  // The process id of the connected front-end (SO_PEERCRED of its socket,
  // as of its connect); 0 when nobody is connected or it cannot be told.
  // The device uses it to make sure a VMM it cuts off maps nothing any more.
  virtual int peer_pid() const = 0;

 protected:
  ~DeviceHost() = default;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  // Fixed for the device's life (checked by VhostUserServer::AddGuest).
  virtual uint32_t device_id() const = 0;
  // Device-specific feature bits only (0-23, 50-63): the back-end adds
  // VIRTIO_F_VERSION_1 and refuses transport bits it does not implement
  // (indirect descriptors, event index, packed rings, ...).
  virtual uint64_t device_features() const = 0;
  // One entry per queue (1 to kMaxQueues).
  virtual std::vector<QueueKind> queues() const = 0;
  // Sizes of the VIRTIO shared memory regions, indexed by id (0: unused id);
  // at most 256, each a multiple of 4 KiB. Empty: none (SHMEM not offered).
  virtual std::vector<uint64_t> shmem_region_sizes() const { return {}; }

  // The config space as it is now (at most 256 bytes; GET_CONFIG reads
  // beyond it as zeros).
  virtual std::vector<uint8_t> ReadConfig() const = 0;
  // A driver write to the config space (offset and size within 256 bytes).
  // A refusal goes back to the front-end as a nack under REPLY_ACK; without
  // REPLY_ACK the protocol has no way to say no, so it breaks the
  // connection (docs/vhost-user-backend.md).
  virtual absl::Status WriteConfig(uint32_t offset, std::span<const uint8_t> bytes) {
    (void)offset;
    (void)bytes;
    return absl::PermissionDeniedError("the config space is read-only");
  }

  // A front-end connected. `host` stays valid (see DeviceHost).
  virtual void OnConnect(DeviceHost& host) = 0;
  // `queue` just became runnable (started, and enabled where protocol
  // features make rings start disabled), before the reply to the request
  // that made it so: what the device does here, the front-end sees done
  // when that reply arrives. The back-end request channel is up by then if
  // the front-end set one. Again after each stop or reset.
  virtual void OnRingStarted(uint16_t queue) { (void)queue; }
  // A valid chain from kRequest `queue`. Returns the bytes written to the
  // chain's writable part (at most writable_size(); the back-end CHECKs). A
  // request the device cannot honour is answered in the device's own
  // protocol, not by failing here.
  virtual uint32_t OnChain(uint16_t queue, const DescriptorChain& chain) = 0;
  // The driver kicked kDeviceToDriver `queue`: it posted buffers.
  virtual void OnBuffersAvailable(uint16_t queue) { (void)queue; }
  // RESET_DEVICE or RESET_OWNER: the driver reset the device; the rings are
  // stopped and the features cleared. The connection (and guest) lives on.
  virtual void OnReset() {}
  // The connection ended (see the lifecycle above); exactly once per
  // OnConnect.
  virtual void OnDisconnect() = 0;
};

}  // namespace rmem::virtio_rmem

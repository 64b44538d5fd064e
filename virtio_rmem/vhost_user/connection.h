// One front-end (a guest's VMM) connected to a guest's socket: reads its
// messages without blocking, decodes each (request.h), applies it to the
// connection's state (states.h), replies, and runs the guest's rings for the
// device. Also what DeviceHost's calls do while this connection is the
// guest's (server.h forwards them).
//
// Broken: a front-end that breaks the protocol where no failure reply is
// possible, sends bytes that cannot be framed, corrupts a ring, stops
// reading its replies or does not answer SHMEM_MAP in time gets its
// connection broken: every watch stops at once, the reason is kept and
// logged, and the teardown (closing the socket, unmapping guest memory,
// the device's OnDisconnect) runs from the loop as a posted task, never
// inside a device call.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/event_loop.h"
#include "base/fd.h"
#include "virtio_rmem/vhost_user/backend_channel.h"
#include "virtio_rmem/vhost_user/device.h"
#include "virtio_rmem/vhost_user/memory_table.h"
#include "virtio_rmem/vhost_user/message_reader.h"
#include "virtio_rmem/vhost_user/request.h"
#include "virtio_rmem/vhost_user/states.h"
#include "virtio_rmem/virtqueue/split_queue.h"

namespace rmem::virtio_rmem {

// What the device said about itself (VhostUserServer::AddGuest checked it).
struct DeviceShape {
  uint64_t features = 0;           // offered: VERSION_1, PROTOCOL_FEATURES, device bits
  uint64_t protocol_features = 0;  // offered
  std::vector<QueueKind> queues;
  std::vector<uint64_t> shmem_sizes;
};

struct RingStats {
  uint64_t kicks = 0;
  uint64_t ignored_kicks = 0;     // the ring could not run (not started/enabled/set up)
  uint64_t chains = 0;            // handed to the device
  uint64_t malformed_chains = 0;  // returned with 0 bytes
  uint64_t notifications = 0;     // call eventfd signalled
};

struct ConnectionStats {
  uint64_t requests = 0;  // messages decoded and handled
  uint64_t refused = 0;   // answered with a failure (nack or empty GET_CONFIG)
  std::vector<RingStats> rings;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // Starts serving `socket` (non-blocking) on `loop` for `device`. `on_end`
  // runs, from a posted task, once the connection broke (with the reason);
  // the owner then destroys the connection and tells the device. Internal
  // if the loop cannot watch the socket.
  static absl::StatusOr<std::shared_ptr<Connection>> Start(
      EventLoop& loop, Fd socket, std::string peer, VirtioDevice& device, DeviceShape shape,
      std::function<void(absl::Status)> on_end);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // DeviceHost's operations (device.h has the contract).
  absl::Status PushToQueue(uint16_t queue,
                           absl::FunctionRef<uint32_t(const DescriptorChain&)> fill);
  absl::Status MapShmem(const ShmemPiece& piece);
  absl::Status UnmapShmem(uint8_t region_id, uint64_t region_offset, uint64_t length);
  uint64_t acked_features() const { return acked_features_; }
  // SO_PEERCRED's pid of the socket; 0 if the kernel did not say.
  int peer_pid() const;

  bool broken() const { return broken_.has_value(); }
  // Whether the front-end has hung up (a non-blocking probe).
  bool PeerHungUp() const;
  const ConnectionStats& stats() const { return stats_; }
  const std::string& peer() const { return peer_; }

 private:
  struct Ring {
    RingState state;
    uint16_t size = 0;  // 0: SET_VRING_NUM not seen
    std::optional<VringAddrSpec> addr;
    uint16_t base = 0;
    std::optional<SplitQueue> queue;  // once size, addresses and memory are known
    Fd kick;
    Watch kick_watch;  // after `kick`: destroyed first
    Fd call;
    Fd err;
    bool continuation_posted = false;
  };
  // The reply a handler produced: a body for requests that have one.
  using Reply = std::optional<std::vector<uint8_t>>;

  Connection(EventLoop& loop, Fd socket, std::string peer, VirtioDevice& device, DeviceShape shape,
             std::function<void(absl::Status)> on_end);

  void OnSocketReady();
  void HandleMessage(vhost_user::Message message);
  absl::StatusOr<Reply> Dispatch(FrontendMessage& request);
  absl::Status SendReply(uint32_t request, std::span<const uint8_t> body);

  absl::StatusOr<Reply> SetMemTable(FrontendMessage& request);
  absl::StatusOr<Reply> RingRequest(FrontendMessage& request);
  absl::StatusOr<Reply> SetVringFile(FrontendMessage& request);
  absl::StatusOr<Reply> GetConfig(const ConfigSpec& spec);
  void ResetRings();

  // The queue for `ring` with `size`, `addr` and `base` in `memory`, or nullopt
  // while one of them is unknown; InvalidArgument if they do not fit.
  absl::StatusOr<std::optional<SplitQueue>> BuildQueue(int ring, uint16_t size,
                                                       const std::optional<VringAddrSpec>& addr,
                                                       uint16_t base,
                                                       const MemoryTable* memory) const;
  bool Runnable(const Ring& ring) const;
  // Tells the device when `ring` just became runnable (before the reply to
  // the request that made it so goes out).
  void NoteStarted(int ring, bool was_runnable);
  void OnKick(int ring);
  void ProcessRing(int ring);
  void PostContinuation(int ring);
  void Notify(int ring);
  void RingFault(int ring, const absl::Status& why);
  absl::Status CheckShmemCall(const char* what) const;
  absl::Status CheckShmemRange(uint8_t region_id, uint64_t offset, uint64_t length) const;

  // Marks the connection broken (first reason wins) and posts the teardown.
  void Break(absl::Status reason);
  // Guest misbehaviour that did not break the connection: rate-limited.
  void LogFault(absl::string_view what);

  EventLoop& loop_;
  const std::string peer_;
  VirtioDevice& device_;
  const DeviceShape shape_;
  std::function<void(absl::Status)> on_end_;

  Fd socket_;
  Watch socket_watch_;  // after `socket_`: destroyed first
  MessageReader reader_;
  ConnectionState state_ = ConnectionState::kAwaitingOwner;
  uint64_t acked_features_ = 0;
  uint64_t protocol_features_ = 0;
  std::unique_ptr<MemoryTable> memory_;
  std::vector<Ring> rings_;
  std::optional<BackendChannel> backend_;
  std::optional<absl::Status> broken_;
  bool peer_left_ = false;  // the end was an orderly hang-up, not a fault
  ConnectionStats stats_;
  int faults_logged_ = 0;
};

}  // namespace rmem::virtio_rmem

// The VMM side of a vhost-user device: a VirtioBackend whose device is a
// back-end process reached over a Unix socket (QEMU docs/interop/vhost-user.rst).
//
// Lifecycle (rings restartable; with reconnect, connections too):
//
//   Connect ──> connected ──Start──> started ──Stop──> connected ──> ...
//       any state ── protocol error ──> broken
//       any state ── backend hangs up ──> reconnecting ──> the same state
//                                              └── timeout / other device ──> broken
//
// Connect negotiates: GET_FEATURES; if bit 30 is offered GET_PROTOCOL_FEATURES
// and SET_PROTOCOL_FEATURES (ours ∩ theirs: MQ, REPLY_ACK, BACKEND_REQ,
// CONFIG, BACKEND_SEND_FD, RESET_DEVICE, SHMEM); GET_QUEUE_NUM if MQ;
// SET_OWNER; SET_BACKEND_REQ_FD if BACKEND_REQ; GET_SHMEM_CONFIG if SHMEM.
// With REPLY_ACK negotiated every request that has no reply of its own is
// sent with need_reply and its ack checked.
//
// Broken is sticky (like libvhost-user's dev->broken): once the back-end
// sent something we cannot parse, or hung up and did not come back, every
// call returns the first error. A disconnect is Unavailable
// "vhost-user backend <path> disconnected ...".
//
// Reconnect (SetReconnectTimeout before StartServing; docs/vmm.md): when the
// back-end hangs up (it crashed, or was restarted), the shared memory
// regions are emptied at once (ShmemMapper::Suspend: nothing the back-end
// granted outlives it unconfirmed) and a reconnect thread, holding the
// request mutex (so VirtioBackend calls wait), connects again with backoff
// (10 ms doubling to 1 s) until the timeout (a back-end that accepts but
// does not answer counts against it too), negotiates again (the features,
// protocol features, queue count and regions must be the ones it had:
// another device is refused at once), and if the rings were started
// restarts each at base = the used index in guest memory (requests the old
// back-end took but never answered are served again; there is no
// INFLIGHT_FD), with the same kick and call eventfds, then kicks and calls
// every ring once. The back-end maps what the guest still holds while the
// rings start (rmemd replays its restored state before acking the request
// queue's enable); then the regions resume (ShmemMapper::Resume).
//
// Without reconnect a back-end that hangs up takes its pieces with it too
// (Suspend then Resume: the regions are empty and settled, so a guest access
// there is a violation).
//
// Threads: VirtioBackend calls may come from any thread (vCPUs); a mutex
// keeps each request and its reply together. With BACKEND_REQ a second
// thread serves the back-end's requests (SHMEM_MAP/UNMAP → ShmemMapper);
// the destructor shuts its socket down and joins it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vmm/memory/guest_memory.h"
#include "vhost_user/channel.h"
#include "vmm/vhost_user/shmem_mapper.h"
#include "vmm/virtio/virtio_backend.h"

namespace rmem::vmm {

class VhostUserFrontend : public VirtioBackend {
 public:
  // The protocol features we can use; Connect asks for these ∩ the offer.
  static constexpr uint64_t kSupportedProtocolFeatures =
      (uint64_t{1} << vhost_user::kProtocolMq) | (uint64_t{1} << vhost_user::kProtocolReplyAck) |
      (uint64_t{1} << vhost_user::kProtocolBackendReq) |
      (uint64_t{1} << vhost_user::kProtocolConfig) |
      (uint64_t{1} << vhost_user::kProtocolBackendSendFd) |
      (uint64_t{1} << vhost_user::kProtocolResetDevice) |
      (uint64_t{1} << vhost_user::kProtocolShmem);
  // No vhost-user request can ask the back-end for its ring size limit; this
  // is QEMU's VIRTQUEUE_MAX_SIZE, which back-ends are built to accept.
  static constexpr uint16_t kMaxQueueSize = 1024;
  // Kick/call messages carry the ring index in 8 bits.
  static constexpr int kMaxQueues = 256;

  // Connects to the back-end listening at `socket_path` (retrying for a few
  // seconds while the socket does not exist or refuses) and negotiates (see
  // above). `ram` and `mapper` (may be null: SHMEM_MAP is then refused) must
  // outlive the frontend. `num_queues_hint` is the device's queue count when
  // the back-end does not negotiate MQ.
  // Errors: NotFound / Unavailable if nobody listens after the bound;
  // Unavailable if it disconnects; InvalidArgument for malformed replies or a
  // bad hint; Internal for socket errors.
  static absl::StatusOr<std::unique_ptr<VhostUserFrontend>> Connect(
      const std::string& socket_path, uint32_t device_id, const GuestMemory& ram,
      ShmemMapper* mapper, int num_queues_hint);

  // Starts the frontend's service thread, which (1) serves the back-end's
  // requests (SHMEM_MAP/UNMAP) and (2) watches the connection: when the
  // back-end hangs up it says so once on stderr and makes failure_fd()
  // readable. Requests wait in the socket until then: the VMM calls this once
  // it has placed the shared memory regions, so a map never arrives before
  // there is somewhere to put it. Call once.
  void StartServing();
  int failure_fd() const override { return failure_.get(); }

  // Reconnect after a back-end hang-up for up to `timeout` (see above);
  // zero (the default) turns it off: a hang-up then breaks the device.
  // Before StartServing.
  void SetReconnectTimeout(absl::Duration timeout);
  // Completed reconnects so far.
  int reconnects() const { return reconnects_.load(); }
  // Ends a reconnect under way (it fails, as on timeout, even while waiting
  // for a reply) and prevents later ones (a hang-up then breaks the
  // device); back-end requests are still served.
  void Abandon() override;

  ~VhostUserFrontend() override;
  VhostUserFrontend(const VhostUserFrontend&) = delete;
  VhostUserFrontend& operator=(const VhostUserFrontend&) = delete;

  // VirtioBackend.
  uint32_t device_id() const override { return device_id_; }
  // The back-end's features without vhost-only bits (30, VHOST_F_LOG_ALL).
  uint64_t device_features() const override;
  int num_queues() const override { return num_queues_; }
  uint16_t max_queue_size() const override { return kMaxQueueSize; }
  std::vector<ShmRegionInfo> shm_regions() const override { return shm_regions_; }
  // GET_CONFIG / SET_CONFIG. Without the CONFIG protocol feature a read fills
  // `data` with zeros and both return Unimplemented. InvalidArgument if the
  // range exceeds 256 bytes or the back-end's reply is malformed (a zero-size
  // reply is the back-end's way to fail).
  absl::Status ReadConfig(uint32_t offset, std::span<uint8_t> data) override;
  absl::Status WriteConfig(uint32_t offset, std::span<const uint8_t> data) override;
  // FailedPrecondition if already started; InvalidArgument for features the
  // device does not offer, a bad queue index/size, or ring addresses outside
  // RAM (named); the back-end's errors as above.
  absl::Status Start(uint64_t driver_features, std::span<const VirtqueueSetup> queues) override;
  // GET_VRING_BASE on each started ring, then RESET_DEVICE if negotiated.
  absl::Status Stop() override;

  // What was negotiated (for tests and diagnostics).
  uint64_t backend_features() const { return backend_features_; }
  uint64_t protocol_features() const { return protocol_features_; }
  uint64_t offered_protocol_features() const { return offered_protocol_features_; }
  bool HasProtocolFeature(int bit) const { return (protocol_features_ >> bit) & 1; }

 private:
  VhostUserFrontend(std::string path, uint32_t device_id, const GuestMemory& ram,
                    ShmemMapper* mapper, vhost_user::Channel channel)
      : path_(std::move(path)), device_id_(device_id), ram_(ram), mapper_(mapper),
        channel_(std::move(channel)) {}

  // The connection-level handshake (see above). `again` (a reconnect): the
  // device must be the one negotiated before (else *other_device is set),
  // and the new back-end request channel goes to the service thread;
  // otherwise the results are kept.
  absl::Status NegotiateLocked(int num_queues_hint, bool again, bool* other_device)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a reconnect: what Start did, with each ring's base at its used
  // index in guest memory; then every ring is kicked and called once.
  absl::Status RestartLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // SET_MEM_TABLE: guest RAM as one region.
  absl::Status SetMemTableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A request without a reply of its own; acked when REPLY_ACK is on.
  absl::Status RequestLocked(vhost_user::FrontendRequest request, std::span<const uint8_t> payload,
                             std::span<const int> fds = {}) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A request whose reply carries a payload of `reply_size` bytes (or up to
  // it when `exact` is false).
  absl::StatusOr<vhost_user::Message> CallLocked(vhost_user::FrontendRequest request,
                                                 std::span<const uint8_t> payload,
                                                 size_t reply_size, bool exact = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<uint64_t> GetU64Locked(vhost_user::FrontendRequest request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SetU64Locked(vhost_user::FrontendRequest request, uint64_t value,
                            std::span<const int> fds = {}) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SendLocked(vhost_user::FrontendRequest request, uint32_t flags,
                          std::span<const uint8_t> payload, std::span<const int> fds)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<vhost_user::Message> ReceiveReplyLocked(vhost_user::FrontendRequest request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Remembers the first error that breaks the connection; returns `s`.
  absl::Status Poison(absl::Status s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StartQueueLocked(const VirtqueueSetup& q, uint16_t ring_base)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // `watch_fd`: the connected socket, watched for the back-end hanging up.
  void Serve(int watch_fd);
  // The service thread saw the back-end hang up.
  void OnHangUp();
  // The reconnect thread's body.
  void Reconnect();
  // Waits `d` unless the frontend is being destroyed (then false).
  bool Pause(absl::Duration d) const;
  // Reconnect thread -> service thread.
  void HandOver(std::unique_ptr<vhost_user::Channel> backend_channel, int watch_fd);
  // Reads and answers one back-end request; false when that channel is done.
  bool ServeOneBackendRequest();
  // Handles one back-end request; the u64 reply value (0 = success).
  uint64_t HandleBackendRequest(const vhost_user::Message& msg);

  const std::string path_;
  const uint32_t device_id_;
  const GuestMemory& ram_;
  ShmemMapper* const mapper_;

  // Set during Connect, constant afterwards.
  uint64_t backend_features_ = 0;
  uint64_t offered_protocol_features_ = 0;
  uint64_t protocol_features_ = 0;
  int num_queues_ = 0;
  std::vector<ShmRegionInfo> shm_regions_;

  absl::Duration reconnect_timeout_ = absl::ZeroDuration();

  absl::Mutex mu_;
  vhost_user::Channel channel_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> broken_ ABSL_GUARDED_BY(mu_);
  bool reply_ack_ ABSL_GUARDED_BY(mu_) = false;  // REPLY_ACK in force on this connection
  std::vector<int> started_queues_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // What Start told the back-end, kept for a reconnect (the fds dup'ed).
  uint64_t started_features_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<VirtqueueSetup> started_setup_ ABSL_GUARDED_BY(mu_);
  std::vector<Fd> started_fds_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> reconnects_{0};

  // Handed from the reconnect thread to the service thread (wake_ says so):
  // the new back-end request channel, and the new socket to watch.
  absl::Mutex handover_mu_;
  std::unique_ptr<vhost_user::Channel> handed_channel_ ABSL_GUARDED_BY(handover_mu_);
  int handed_watch_fd_ ABSL_GUARDED_BY(handover_mu_) = -1;
  Fd wake_;
  Fd abandon_;  // eventfd: no more reconnects
  // The socket a reconnect is negotiating on (-1: none), for Abandon to
  // shut down.
  absl::Mutex reconnect_fd_mu_;
  int reconnect_fd_ ABSL_GUARDED_BY(reconnect_fd_mu_) = -1;
  // Set by Abandon: a connection made after it is never waited on.
  bool abandoned_ ABSL_GUARDED_BY(reconnect_fd_mu_) = false;
  std::thread reconnect_thread_;  // started and joined by the service thread

  // The back-end request socket (our end) and the thread that serves it; the
  // thread alone reads and writes it.
  std::unique_ptr<vhost_user::Channel> backend_channel_;
  Fd failure_;  // eventfd: the back-end went away
  Fd stop_;     // eventfd: ends the service thread
  std::thread service_thread_;
};

}  // namespace rmem::vmm

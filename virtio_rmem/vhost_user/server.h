// rmemd's vhost-user back-end: one listening Unix socket per guest, each
// serving that guest's virtio device (device.h) to the guest's VMM, all on
// one event loop (base/event_loop.h).
//
// One front-end per guest at a time. A second connection to a guest's
// socket while its VMM is connected is accepted and closed at once
// (counted, logged): two VMMs claiming one guest is a configuration error,
// and a front-end left waiting in the backlog would hang without a word.
// If the connected VMM has in fact hung up (its EOF not yet read), the old
// connection is ended first and the newcomer served: a restarted VMM is
// never refused because of its predecessor.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/event_loop.h"
#include "base/fd.h"
#include "virtio_rmem/vhost_user/connection.h"
#include "virtio_rmem/vhost_user/device.h"

namespace rmem::virtio_rmem {

struct GuestConfig {
  std::string name;         // in logs and errors ("vm1")
  std::string socket_path;  // where the guest's VMM connects
};

// What a guest's endpoint has seen (for tests, logs and, later, rmemctl).
struct GuestStatus {
  bool connected = false;
  uint64_t connections = 0;  // accepted and served
  uint64_t refused = 0;      // second connections closed at once
  // Why the last connection ended ("" while the first is still up).
  std::string last_end;
  ConnectionStats stats;  // of the current connection, else of the last one
};

class VhostUserServer {
 public:
  explicit VhostUserServer(EventLoop& loop);
  // Ends every connection (each device gets OnDisconnect) and removes the
  // sockets. On the loop's thread, with the loop not running.
  ~VhostUserServer();
  VhostUserServer(const VhostUserServer&) = delete;
  VhostUserServer& operator=(const VhostUserServer&) = delete;

  // Serves `device` (which must outlive the server) on `config.socket_path`.
  // A stale socket there (nobody listening) is removed first.
  // Errors: InvalidArgument naming the guest for a device that breaks
  // device.h's rules (id 0, transport feature bits, no or too many queues,
  // more than 256 shared memory regions or ones not multiples of 4 KiB, a
  // config space over 256 bytes), an empty or duplicate name, or a path that
  // does not fit a Unix socket address; FailedPrecondition if the path exists
  // and is not a socket (we never remove other files); AlreadyExists if
  // something listens there; the socket calls' errno otherwise.
  absl::Status AddGuest(const GuestConfig& config, VirtioDevice& device);

  // NotFound for an unknown guest.
  absl::StatusOr<GuestStatus> Status(absl::string_view name) const;

 private:
  struct Endpoint;
  void OnListenerReady(Endpoint& endpoint);
  void EndConnection(Endpoint& endpoint, const absl::Status& reason);

  EventLoop& loop_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
};

}  // namespace rmem::virtio_rmem

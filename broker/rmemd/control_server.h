// rmemd's control socket: the listening socket, its peers and the framing of
// control_protocol.h (one JSON object per line each way), on rmemd's event
// loop. What a request means is the handler's (control_commands.h).
//
// Who may talk to it: root and rmemd's own effective uid, checked with
// SO_PEERCRED at accept; anyone else gets one error line, is closed, and
// rmemd logs it. The socket file is created mode 0600 (never wider, not
// even for an instant) in a directory created 0700 when missing, so others
// cannot normally connect at all; the credential check holds also where
// an administrator widened them.
//
// No client can block or crash rmemd: every socket is non-blocking; a
// request line over kMaxRequestBytes is answered with an error and the
// connection closed; a line that is not JSON gets an error answer and the
// connection lives on; a client that does not read its answers is dropped
// once more than `max_pending_output` bytes of them wait for it; at most
// `max_clients` clients at once (more are told so and closed); at most
// kRequestsPerWakeup requests of one client are served per loop turn, so a
// client pipelining requests shares the loop with guests and other clients.
// A client that half-closes its end still gets its answers.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "base/event_loop.h"
#include "base/fd.h"
#include "base/unix_socket.h"
#include "broker/rmemd/control_protocol.h"

namespace rmem::rmemd {

class ControlServer {
 public:
  // The answer to one request: any JSON value the client sent as a line
  // (not necessarily an object). Runs on the loop's thread.
  using Handler = std::function<Json(const Json& request)>;

  struct Options {
    // Besides root, the uid that may connect: rmemd's effective uid.
    uid_t allowed_uid = geteuid();
    size_t max_clients = 64;
    // Unsent answer bytes beyond which a client that is due another answer
    // is dropped. One answer may be larger (a big status): it is sent
    // whole, as long as the client reads it.
    size_t max_pending_output = size_t{1} << 20;
  };
  static constexpr int kRequestsPerWakeup = 16;

  // Listens on `path` (mode 0600; a missing directory is created 0700).
  // ListenUnix's errors (a path in use by a live socket, not a socket, not
  // creatable), naming the path; ErrnoError when the directory cannot be
  // created.
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(EventLoop& loop,
                                                              const std::string& path,
                                                              Handler handler, Options options);
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(EventLoop& loop,
                                                              const std::string& path,
                                                              Handler handler) {
    return Start(loop, path, std::move(handler), Options());
  }
  // Closes every client and removes the socket.
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& path() const { return path_; }

  struct Counters {
    uint64_t accepted = 0;  // clients served
    uint64_t refused = 0;   // not allowed (uid), or over max_clients
    uint64_t requests = 0;  // lines answered
    uint64_t dropped = 0;   // closed for an oversize request or unread answers
  };
  const Counters& counters() const { return counters_; }
  size_t client_count() const { return clients_.size(); }

 private:
  struct Client;
  ControlServer(EventLoop& loop, std::string path, Handler handler, Options options);
  void OnListenerReady();
  void OnClientReady(uint64_t id);
  // Serves one request line. False when the client was dropped.
  bool Serve(Client& c, const std::string& line);
  // Queues `answer`; false (and the client dropped) past max_pending_output.
  bool Answer(Client& c, const Json& answer);
  // Writes what the socket takes. False on a write error.
  bool Flush(Client& c);
  void Close(uint64_t id, const char* why);

  EventLoop& loop_;
  const std::string path_;
  Handler handler_;
  Options options_;
  Fd listener_;
  Watch listener_watch_;  // after listener_: destroyed first
  absl::flat_hash_map<uint64_t, std::unique_ptr<Client>> clients_;
  uint64_t next_id_ = 1;
  Counters counters_;
};

}  // namespace rmem::rmemd

// One end of a vhost-user connection, blocking: whole messages (header,
// payload, up to kMaxFds file descriptors as SCM_RIGHTS) over a connected
// Unix stream socket. rmem-vmm's front-end uses it for the main socket (it
// sends front-end requests, reads their replies) and the back-end request
// socket (it reads back-end requests, sends replies); test peers use it too.
// The channel checks framing only; what a message means is the caller's
// business. (rmemd's back-end cannot block: it reads with its own
// incremental reader, virtio_rmem/vhost_user/message_reader.h.)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/fd.h"
#include "vhost_user/message.h"
#include "vhost_user/protocol.h"

namespace rmem::vhost_user {

class Channel {
 public:
  // `peer` names the other side in errors ("vhost-user backend /run/x.sock");
  // `space` says which request codes the messages on this channel carry.
  Channel(Fd socket, std::string peer, RequestSpace space)
      : socket_(std::move(socket)), peer_(std::move(peer)), space_(space) {}

  // Sends one message, waiting for room (SendMessage, blocking).
  absl::Status Send(const MsgHeader& header, std::span<const uint8_t> payload,
                    std::span<const int> fds = {});

  // Reads one whole message, waiting for it. `what` names what we expect in
  // errors (e.g. "the reply to GET_FEATURES"). Unavailable
  // "<peer> disconnected ..." on EOF (also mid-message); InvalidArgument for a
  // bad version, unknown flag bits, a payload over kMaxPayloadSize, or too
  // many fds (the field is named); Internal for other socket errors. Fds that
  // came with a rejected message are closed.
  absl::StatusOr<Message> Receive(absl::string_view what);

  int fd() const { return socket_.get(); }
  const std::string& peer() const { return peer_; }
  RequestSpace space() const { return space_; }

 private:
  absl::Status Disconnected(absl::string_view doing) const;

  Fd socket_;
  std::string peer_;
  RequestSpace space_;
};

}  // namespace rmem::vhost_user

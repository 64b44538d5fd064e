// Incremental reassembly of vhost-user messages from a non-blocking socket:
// a front-end that sent half a message stalls only its own connection; the
// reader keeps the half and the loop goes on serving everyone else. It never
// reads past the end of the current message, so fds sent with the next
// message are never taken for this one's.
//
// The core (NextBuffer/Advance) does no I/O, so the fuzzer can drive it with
// arbitrary chunking.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/fd.h"
#include "vhost_user/message.h"

namespace rmem::virtio_rmem {

class MessageReader {
 public:
  // `peer` names the other side in errors; `space` the request codes.
  MessageReader(vhost_user::RequestSpace space, std::string peer)
      : space_(space), peer_(std::move(peer)) {}

  // Where the next bytes go: never empty, never past the current message.
  std::span<uint8_t> NextBuffer();
  // `n` bytes (at most NextBuffer().size()) were written to NextBuffer();
  // `fds` came with them. Returns the message once it is whole. A bad header
  // (vhost_user::CheckHeader) or more than kMaxFds fds for one message is
  // InvalidArgument: the stream cannot be trusted after that.
  absl::StatusOr<std::optional<vhost_user::Message>> Advance(size_t n, std::vector<Fd> fds);

  // Reads from `socket` without blocking until a message is whole (returned)
  // or the socket has nothing more (nullopt). Unavailable "<peer>
  // disconnected ..." on EOF (saying so if it came mid-message);
  // InvalidArgument as Advance, or when the kernel had to drop fds;
  // Internal for socket errors.
  absl::StatusOr<std::optional<vhost_user::Message>> ReadFrom(int socket);

  // Whether part of a message has arrived.
  bool in_progress() const { return header_got_ > 0; }

 private:
  void Reset();

  const vhost_user::RequestSpace space_;
  const std::string peer_;
  vhost_user::MsgHeader header_;
  size_t header_got_ = 0;  // bytes of header_ filled
  std::vector<uint8_t> payload_;
  size_t payload_got_ = 0;
  std::vector<Fd> fds_;
};

}  // namespace rmem::virtio_rmem

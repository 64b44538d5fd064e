// One vhost-user message and the socket I/O every endpoint shares: header
// checks, sending a message with its fds (SCM_RIGHTS), and reading a chunk
// of bytes while taking ownership of any fds that arrive with it. The
// blocking Channel (channel.h) and rmemd's non-blocking back-end
// (virtio_rmem/vhost_user/) are both built on these, so framing rules live
// in one place.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/fd.h"
#include "vhost_user/protocol.h"

namespace rmem::vhost_user {

struct Message {
  MsgHeader header;
  std::vector<uint8_t> payload;
  std::vector<Fd> fds;  // owned: closed with the message
};

// Which request-code space a channel's messages belong to (for naming them).
enum class RequestSpace { kFrontend, kBackend };
// "GET_FEATURES", "SHMEM_MAP", or "an unknown front-end request".
const char* RequestName(RequestSpace space, uint32_t request);
// "GET_FEATURES (1)": how messages name a request.
std::string NamedRequest(RequestSpace space, uint32_t request);

// Checks a received header before its payload is read: the version, no
// unknown flag bits, a payload of at most kMaxPayloadSize. InvalidArgument
// "<peer> sent <what> [<request>] with header field <field> ..." otherwise.
absl::Status CheckHeader(const MsgHeader& header, RequestSpace space, absl::string_view peer,
                         absl::string_view what);

enum class SendMode {
  kBlocking,     // waits for room; partial sends are continued
  kNonBlocking,  // MSG_DONTWAIT: a peer whose socket is full is not reading
};

// Sends one whole message (fds are borrowed; the kernel duplicates them).
// InvalidArgument for more than kMaxFds fds, a payload over kMaxPayloadSize
// or a header size that differs from the payload; Unavailable
// "<peer> disconnected ..." if the peer has gone; in kNonBlocking mode
// ResourceExhausted "<peer> is not reading ..." when the message did not fit
// the socket whole (the stream is then unusable); Internal for other socket
// errors. Messages name the request.
absl::Status SendMessage(int socket, const MsgHeader& header, std::span<const uint8_t> payload,
                         std::span<const int> fds, SendMode mode, absl::string_view peer,
                         RequestSpace space);

// At most this many fds go with one SendChunk: more than any message may
// carry (kMaxFds), so that tests can send a peer too many.
inline constexpr int kMaxChunkFds = 16;

// One sendmsg of `bytes` with `fds` (borrowed) attached as SCM_RIGHTS, with
// `flags` (MSG_NOSIGNAL is added). The bytes sent, or -1 with errno (EINVAL
// for more than kMaxChunkFds fds). No framing: SendMessage builds on it, and
// tests use it to send malformed streams.
ssize_t SendChunk(int socket, std::span<const uint8_t> bytes, std::span<const int> fds, int flags);

// One recvmsg of at most into.size() bytes (flags as recvmsg: 0 or
// MSG_DONTWAIT). Fds that arrive are appended to `fds` (owned from then on,
// whatever happens next). Returns the byte count (0: the peer closed) or -1
// with errno; `fds_truncated` is set when the kernel dropped fds because
// more than kMaxFds came with the bytes.
ssize_t ReceiveChunk(int socket, std::span<uint8_t> into, int flags, std::vector<Fd>& fds,
                     bool& fds_truncated);

}  // namespace rmem::vhost_user

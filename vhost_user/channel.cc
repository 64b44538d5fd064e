#include "vhost_user/channel.h"

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/sys_error.h"

namespace rmem::vhost_user {

absl::Status Channel::Disconnected(absl::string_view doing) const {
  return absl::UnavailableError(absl::StrCat(peer_, " disconnected ", doing));
}

absl::Status Channel::Send(const MsgHeader& header, std::span<const uint8_t> payload,
                           std::span<const int> fds) {
  return SendMessage(socket_.get(), header, payload, fds, SendMode::kBlocking, peer_, space_);
}

absl::StatusOr<Message> Channel::Receive(absl::string_view what) {
  Message out;
  // Reads exactly `len` bytes into `dst`, collecting any fds that arrive.
  auto read_exact = [&](void* dst, size_t len, absl::string_view part) -> absl::Status {
    size_t got = 0;
    while (got < len) {
      bool truncated = false;
      const ssize_t n = ReceiveChunk(
          socket_.get(), {static_cast<uint8_t*>(dst) + got, len - got}, 0, out.fds, truncated);
      if (n < 0) {
        if (errno == ECONNRESET) return Disconnected(absl::StrCat("while we awaited ", what));
        return ErrnoError(absl::StrCat("receiving ", what, " from ", peer_));
      }
      if (truncated || out.fds.size() > static_cast<size_t>(kMaxFds)) {
        return absl::InvalidArgumentError(
            absl::StrCat(peer_, " sent ", what, " with too many fds (at most ", kMaxFds, ")"));
      }
      if (n == 0) {
        return Disconnected(got == 0 && part == "header"
                                ? absl::StrCat("while we awaited ", what)
                                : absl::StrCat("in the middle of ", what, " (", part, ")"));
      }
      got += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  };

  if (absl::Status s = read_exact(&out.header, sizeof(out.header), "header"); !s.ok()) return s;
  if (absl::Status s = CheckHeader(out.header, space_, peer_, what); !s.ok()) return s;
  out.payload.resize(out.header.size);
  if (out.header.size > 0) {
    if (absl::Status s = read_exact(out.payload.data(), out.header.size, "payload"); !s.ok()) {
      return s;
    }
  }
  return out;
}

}  // namespace rmem::vhost_user

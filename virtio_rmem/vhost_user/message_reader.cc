#include "virtio_rmem/vhost_user/message_reader.h"

#include <sys/socket.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/sys_error.h"
#include "broker/check.h"

namespace rmem::virtio_rmem {

void MessageReader::Reset() {
  header_got_ = 0;
  payload_.clear();
  payload_got_ = 0;
  fds_.clear();
}

std::span<uint8_t> MessageReader::NextBuffer() {
  if (header_got_ < sizeof(header_)) {
    return {reinterpret_cast<uint8_t*>(&header_) + header_got_, sizeof(header_) - header_got_};
  }
  RMEM_CHECK(payload_got_ < payload_.size());  // a whole message was handed out by Advance
  return {payload_.data() + payload_got_, payload_.size() - payload_got_};
}

absl::StatusOr<std::optional<vhost_user::Message>> MessageReader::Advance(size_t n,
                                                                          std::vector<Fd> fds) {
  RMEM_CHECK(n <= NextBuffer().size());
  for (Fd& fd : fds) fds_.push_back(std::move(fd));
  if (fds_.size() > static_cast<size_t>(vhost_user::kMaxFds)) {
    Reset();
    return absl::InvalidArgumentError(
        absl::StrCat(peer_, " sent a message with more than ", vhost_user::kMaxFds, " fds"));
  }
  if (header_got_ < sizeof(header_)) {
    header_got_ += n;
    if (header_got_ < sizeof(header_)) return std::nullopt;
    if (absl::Status s = vhost_user::CheckHeader(header_, space_, peer_, "a message"); !s.ok()) {
      Reset();
      return s;
    }
    payload_.resize(header_.size);
  } else {
    payload_got_ += n;
  }
  if (payload_got_ < payload_.size()) return std::nullopt;
  vhost_user::Message m{header_, std::move(payload_), std::move(fds_)};
  Reset();
  return m;
}

absl::StatusOr<std::optional<vhost_user::Message>> MessageReader::ReadFrom(int socket) {
  for (;;) {
    std::vector<Fd> fds;
    bool truncated = false;
    const ssize_t n = vhost_user::ReceiveChunk(socket, NextBuffer(), MSG_DONTWAIT, fds, truncated);
    if (n < 0) {
      if (errno == EAGAIN) return std::nullopt;
      if (errno == ECONNRESET) {
        return absl::UnavailableError(absl::StrCat(peer_, " disconnected (connection reset)"));
      }
      return ErrnoError(absl::StrCat("reading from ", peer_));
    }
    if (truncated) {
      Reset();
      return absl::InvalidArgumentError(
          absl::StrCat(peer_, " sent more than ", vhost_user::kMaxFds, " fds with one message"));
    }
    if (n == 0) {
      // The partial message stays: in_progress() says how the stream ended.
      return absl::UnavailableError(
          absl::StrCat(peer_, " disconnected", in_progress() ? " in the middle of a message" : ""));
    }
    absl::StatusOr<std::optional<vhost_user::Message>> m =
        Advance(static_cast<size_t>(n), std::move(fds));
    if (!m.ok() || m->has_value()) return m;
  }
}

}  // namespace rmem::virtio_rmem

#include "virtio_rmem/vhost_user/backend_channel.h"

#include <fcntl.h>
#include <poll.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "vhost_user/message.h"
#include "virtio_rmem/vhost_user/limits.h"
#include "virtio_rmem/vhost_user/message_reader.h"

namespace rmem::virtio_rmem {

using vhost_user::RequestSpace;

BackendChannel::BackendChannel(Fd socket, std::string peer)
    : socket_(std::move(socket)), peer_(std::move(peer)) {
  const int flags = fcntl(socket_.get(), F_GETFL);
  if (flags < 0 || fcntl(socket_.get(), F_SETFL, flags | O_NONBLOCK) != 0) broken_ = true;
}

absl::Status BackendChannel::Break(absl::Status s) {
  broken_ = true;
  return absl::UnavailableError(s.message());
}

absl::Status BackendChannel::Call(vhost_user::BackendRequest request,
                                  const vhost_user::ShmemMapMsg& payload, int fd) {
  const uint32_t code = static_cast<uint32_t>(request);
  const std::string name = vhost_user::NamedRequest(RequestSpace::kBackend, code);
  if (broken_) {
    return absl::UnavailableError(
        absl::StrCat(peer_, ": the back-end request socket is broken; ", name, " not sent"));
  }
  const vhost_user::MsgHeader header{code, vhost_user::kVersion | vhost_user::kFlagNeedReply,
                                     sizeof(payload)};
  const int fds[1] = {fd};
  if (absl::Status s = vhost_user::SendMessage(
          socket_.get(), header, vhost_user::Bytes(payload),
          fd >= 0 ? std::span<const int>(fds, 1) : std::span<const int>(),
          vhost_user::SendMode::kNonBlocking, peer_, RequestSpace::kBackend);
      !s.ok()) {
    return Break(s);
  }

  MessageReader reader(RequestSpace::kBackend, peer_);
  const absl::Time deadline = absl::Now() + kBackendReplyTimeout;
  for (;;) {
    absl::StatusOr<std::optional<vhost_user::Message>> reply = reader.ReadFrom(socket_.get());
    if (!reply.ok()) return Break(reply.status());
    if (reply->has_value()) {
      const vhost_user::Message& m = **reply;
      if (m.header.request != code || (m.header.flags & vhost_user::kFlagReply) == 0 ||
          m.payload.size() != sizeof(uint64_t) || !m.fds.empty()) {
        return Break(absl::InternalError(
            absl::StrCat(peer_, " answered ", name, " with request ", m.header.request,
                         ", flags 0x", absl::Hex(m.header.flags), ", ", m.payload.size(),
                         " payload bytes and ", m.fds.size(), " fds: not the u64 reply due")));
      }
      uint64_t result;
      std::memcpy(&result, m.payload.data(), sizeof(result));
      if (result == 0) return absl::OkStatus();
      const absl::StatusCode status_code =
          result <= static_cast<uint64_t>(absl::StatusCode::kUnauthenticated)
              ? static_cast<absl::StatusCode>(result)
              : absl::StatusCode::kUnknown;
      return absl::Status(status_code,
                          absl::StrCat(peer_, " refused ", name, " (reply ", result, ")"));
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return Break(absl::DeadlineExceededError(
          absl::StrCat(peer_, " did not answer ", name, " within ",
                       absl::FormatDuration(kBackendReplyTimeout), ": treated as stuck")));
    }
    pollfd p{socket_.get(), POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (n < 0 && errno != EINTR) {
      return Break(absl::InternalError(absl::StrCat("waiting for ", peer_, ": ", strerror(errno))));
    }
  }
}

}  // namespace rmem::virtio_rmem

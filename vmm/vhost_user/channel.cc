#include "vmm/vhost_user/channel.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "vmm/sys_error.h"

namespace rmem::vmm::vhost_user {

const char* RequestName(RequestSpace space, uint32_t request) {
  if (space == RequestSpace::kBackend) {
    switch (static_cast<BackendRequest>(request)) {
      case BackendRequest::kShmemMap: return "SHMEM_MAP";
      case BackendRequest::kShmemUnmap: return "SHMEM_UNMAP";
    }
    return "an unknown back-end request";
  }
  switch (static_cast<FrontendRequest>(request)) {
    case FrontendRequest::kGetFeatures: return "GET_FEATURES";
    case FrontendRequest::kSetFeatures: return "SET_FEATURES";
    case FrontendRequest::kSetOwner: return "SET_OWNER";
    case FrontendRequest::kResetOwner: return "RESET_OWNER";
    case FrontendRequest::kSetMemTable: return "SET_MEM_TABLE";
    case FrontendRequest::kSetVringNum: return "SET_VRING_NUM";
    case FrontendRequest::kSetVringAddr: return "SET_VRING_ADDR";
    case FrontendRequest::kSetVringBase: return "SET_VRING_BASE";
    case FrontendRequest::kGetVringBase: return "GET_VRING_BASE";
    case FrontendRequest::kSetVringKick: return "SET_VRING_KICK";
    case FrontendRequest::kSetVringCall: return "SET_VRING_CALL";
    case FrontendRequest::kSetVringErr: return "SET_VRING_ERR";
    case FrontendRequest::kGetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
    case FrontendRequest::kSetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
    case FrontendRequest::kGetQueueNum: return "GET_QUEUE_NUM";
    case FrontendRequest::kSetVringEnable: return "SET_VRING_ENABLE";
    case FrontendRequest::kSetBackendReqFd: return "SET_BACKEND_REQ_FD";
    case FrontendRequest::kGetConfig: return "GET_CONFIG";
    case FrontendRequest::kSetConfig: return "SET_CONFIG";
    case FrontendRequest::kResetDevice: return "RESET_DEVICE";
    case FrontendRequest::kGetShmemConfig: return "GET_SHMEM_CONFIG";
  }
  return "an unknown front-end request";
}

namespace {

std::string Named(RequestSpace space, uint32_t request) {
  return absl::StrCat(RequestName(space, request), " (", request, ")");
}

}  // namespace

absl::Status Channel::Disconnected(absl::string_view doing) const {
  return absl::UnavailableError(absl::StrCat(peer_, " disconnected ", doing));
}

absl::Status Channel::Send(const MsgHeader& header, std::span<const uint8_t> payload,
                           std::span<const int> fds) {
  const std::string name = Named(space_, header.request);
  if (fds.size() > static_cast<size_t>(kMaxFds) || payload.size() > kMaxPayloadSize ||
      header.size != payload.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sending ", name, " to ", peer_, ": ", fds.size(), " fds (at most ", kMaxFds,
                     "), payload ", payload.size(), " bytes (header says ", header.size,
                     ", at most ", kMaxPayloadSize, ")"));
  }
  iovec iov[2] = {
      {const_cast<MsgHeader*>(&header), sizeof(header)},
      {const_cast<uint8_t*>(payload.data()), payload.size()},
  };
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = payload.empty() ? 1 : 2;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  // The fds go with the first byte; a partial send continues without them.
  size_t left = sizeof(header) + payload.size();
  while (left > 0) {
    const ssize_t n = sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET) {
        return Disconnected(absl::StrCat("while we sent ", name));
      }
      return ErrnoError(absl::StrCat("sending ", name, " to ", peer_));
    }
    left -= static_cast<size_t>(n);
    msg.msg_control = nullptr;
    msg.msg_controllen = 0;
    size_t done = static_cast<size_t>(n);
    while (done > 0 && msg.msg_iovlen > 0) {
      const size_t step = std::min(done, msg.msg_iov[0].iov_len);
      msg.msg_iov[0].iov_base = static_cast<char*>(msg.msg_iov[0].iov_base) + step;
      msg.msg_iov[0].iov_len -= step;
      done -= step;
      if (msg.msg_iov[0].iov_len == 0) {
        ++msg.msg_iov;
        --msg.msg_iovlen;
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Message> Channel::Receive(absl::string_view what) {
  Message out;
  // Reads exactly `len` bytes into `dst`, collecting any fds that arrive.
  auto read_exact = [&](void* dst, size_t len, absl::string_view part) -> absl::Status {
    size_t got = 0;
    while (got < len) {
      iovec iov{static_cast<char*>(dst) + got, len - got};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      const ssize_t n = recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ECONNRESET) return Disconnected(absl::StrCat("while we awaited ", what));
        return ErrnoError(absl::StrCat("receiving ", what, " from ", peer_));
      }
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          out.fds.emplace_back(fd);  // owned from here on, whatever happens next
        }
      }
      if ((msg.msg_flags & MSG_CTRUNC) != 0 || out.fds.size() > static_cast<size_t>(kMaxFds)) {
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
  const MsgHeader& h = out.header;
  const std::string name = absl::StrCat(what, " [", Named(space_, h.request), "]");
  if ((h.flags & kVersionMask) != kVersion) {
    return absl::InvalidArgumentError(absl::StrCat(peer_, " sent ", name, " with header field version ",
                                                   h.flags & kVersionMask, " (we speak ", kVersion, ")"));
  }
  if ((h.flags & ~kKnownFlags) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(peer_, " sent ", name, " with header field flags 0x",
                                                   absl::Hex(h.flags), ": unknown bits set"));
  }
  if (h.size > kMaxPayloadSize) {
    return absl::InvalidArgumentError(absl::StrCat(peer_, " sent ", name, " with header field size ",
                                                   h.size, " (at most ", kMaxPayloadSize, ")"));
  }
  out.payload.resize(h.size);
  if (h.size > 0) {
    if (absl::Status s = read_exact(out.payload.data(), h.size, "payload"); !s.ok()) return s;
  }
  return out;
}

}  // namespace rmem::vmm::vhost_user

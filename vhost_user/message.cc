#include "vhost_user/message.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/sys_error.h"

namespace rmem::vhost_user {

// clang-format off: one line per code reads as the table it is.
const char* RequestName(RequestSpace space, uint32_t request) {
  if (space == RequestSpace::kBackend) {
    switch (static_cast<BackendRequest>(request)) {
      case BackendRequest::kShmemMap:
        return "SHMEM_MAP";
      case BackendRequest::kShmemUnmap:
        return "SHMEM_UNMAP";
    }
    return "an unknown back-end request";
  }
  switch (static_cast<FrontendRequest>(request)) {
    case FrontendRequest::kGetFeatures:
      return "GET_FEATURES";
    case FrontendRequest::kSetFeatures:
      return "SET_FEATURES";
    case FrontendRequest::kSetOwner:
      return "SET_OWNER";
    case FrontendRequest::kResetOwner:
      return "RESET_OWNER";
    case FrontendRequest::kSetMemTable:
      return "SET_MEM_TABLE";
    case FrontendRequest::kSetLogBase:
      return "SET_LOG_BASE";
    case FrontendRequest::kSetLogFd:
      return "SET_LOG_FD";
    case FrontendRequest::kSetVringNum:
      return "SET_VRING_NUM";
    case FrontendRequest::kSetVringAddr:
      return "SET_VRING_ADDR";
    case FrontendRequest::kSetVringBase:
      return "SET_VRING_BASE";
    case FrontendRequest::kGetVringBase:
      return "GET_VRING_BASE";
    case FrontendRequest::kSetVringKick:
      return "SET_VRING_KICK";
    case FrontendRequest::kSetVringCall:
      return "SET_VRING_CALL";
    case FrontendRequest::kSetVringErr:
      return "SET_VRING_ERR";
    case FrontendRequest::kGetProtocolFeatures:
      return "GET_PROTOCOL_FEATURES";
    case FrontendRequest::kSetProtocolFeatures:
      return "SET_PROTOCOL_FEATURES";
    case FrontendRequest::kGetQueueNum:
      return "GET_QUEUE_NUM";
    case FrontendRequest::kSetVringEnable:
      return "SET_VRING_ENABLE";
    case FrontendRequest::kSetBackendReqFd:
      return "SET_BACKEND_REQ_FD";
    case FrontendRequest::kIotlbMsg:
      return "IOTLB_MSG";
    case FrontendRequest::kGetConfig:
      return "GET_CONFIG";
    case FrontendRequest::kSetConfig:
      return "SET_CONFIG";
    case FrontendRequest::kGetInflightFd:
      return "GET_INFLIGHT_FD";
    case FrontendRequest::kSetInflightFd:
      return "SET_INFLIGHT_FD";
    case FrontendRequest::kResetDevice:
      return "RESET_DEVICE";
    case FrontendRequest::kVringKick:
      return "VRING_KICK";
    case FrontendRequest::kGetMaxMemSlots:
      return "GET_MAX_MEM_SLOTS";
    case FrontendRequest::kAddMemReg:
      return "ADD_MEM_REG";
    case FrontendRequest::kRemMemReg:
      return "REM_MEM_REG";
    case FrontendRequest::kSetStatus:
      return "SET_STATUS";
    case FrontendRequest::kGetStatus:
      return "GET_STATUS";
    case FrontendRequest::kGetShmemConfig:
      return "GET_SHMEM_CONFIG";
  }
  return "an unknown front-end request";
}
// clang-format on

std::string NamedRequest(RequestSpace space, uint32_t request) {
  return absl::StrCat(RequestName(space, request), " (", request, ")");
}

absl::Status CheckHeader(const MsgHeader& h, RequestSpace space, absl::string_view peer,
                         absl::string_view what) {
  auto bad = [&](absl::string_view field, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(peer, " sent ", what, " [",
                                                   NamedRequest(space, h.request),
                                                   "] with header field ", field, why));
  };
  if ((h.flags & kVersionMask) != kVersion) {
    return bad("version", absl::StrCat(" ", h.flags & kVersionMask, " (we speak ", kVersion, ")"));
  }
  if ((h.flags & ~kKnownFlags) != 0) {
    return bad("flags", absl::StrCat(" 0x", absl::Hex(h.flags), ": unknown bits set"));
  }
  if (h.size > kMaxPayloadSize) {
    return bad("size", absl::StrCat(" ", h.size, " (at most ", kMaxPayloadSize, ")"));
  }
  return absl::OkStatus();
}

ssize_t SendChunk(int socket, std::span<const uint8_t> bytes, std::span<const int> fds, int flags) {
  if (fds.size() > static_cast<size_t>(kMaxChunkFds)) {
    errno = EINVAL;
    return -1;
  }
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxChunkFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = sendmsg(socket, &msg, flags | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n;
}

absl::Status SendMessage(int socket, const MsgHeader& header, std::span<const uint8_t> payload,
                         std::span<const int> fds, SendMode mode, absl::string_view peer,
                         RequestSpace space) {
  const std::string name = NamedRequest(space, header.request);
  if (fds.size() > static_cast<size_t>(kMaxFds) || payload.size() > kMaxPayloadSize ||
      header.size != payload.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sending ", name, " to ", peer, ": ", fds.size(), " fds (at most ", kMaxFds, "), payload ",
        payload.size(), " bytes (header says ", header.size, ", at most ", kMaxPayloadSize, ")"));
  }
  uint8_t bytes[sizeof(MsgHeader) + kMaxPayloadSize];
  std::memcpy(bytes, &header, sizeof(header));
  if (!payload.empty()) std::memcpy(bytes + sizeof(header), payload.data(), payload.size());
  std::span<const uint8_t> left(bytes, sizeof(header) + payload.size());
  const int flags = mode == SendMode::kNonBlocking ? MSG_DONTWAIT : 0;
  // The fds go with the first byte; a partial send continues without them.
  while (!left.empty()) {
    const ssize_t n = SendChunk(socket, left, fds, flags);
    if (n < 0) {
      if (errno == EPIPE || errno == ECONNRESET) {
        return absl::UnavailableError(absl::StrCat(peer, " disconnected while we sent ", name));
      }
      if (errno == EAGAIN && mode == SendMode::kNonBlocking) break;
      return ErrnoError(absl::StrCat("sending ", name, " to ", peer));
    }
    left = left.subspan(static_cast<size_t>(n));
    fds = {};
    if (mode == SendMode::kNonBlocking) break;
  }
  if (!left.empty()) {
    return absl::ResourceExhaustedError(
        absl::StrCat(peer, " is not reading: ", name, " did not fit its socket (", left.size(),
                     " of ", sizeof(header) + payload.size(), " bytes left unsent)"));
  }
  return absl::OkStatus();
}

ssize_t ReceiveChunk(int socket, std::span<uint8_t> into, int flags, std::vector<Fd>& fds,
                     bool& fds_truncated) {
  iovec iov{into.data(), into.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(socket, &msg, flags | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) fds_truncated = true;
  return n;
}

}  // namespace rmem::vhost_user

#include "broker/rmemctl/control_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace rmem::rmemctl {
namespace {

int RemainingMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  return left <= absl::ZeroDuration() ? 0 : static_cast<int>(absl::ToInt64Milliseconds(left) + 1);
}

}  // namespace

absl::StatusOr<ControlClient> ControlClient::Connect(const std::string& path,
                                                     absl::Duration timeout) {
  const std::string hint = absl::StrCat("is rmemd running with --control ", path, "?");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "control socket path \"", path, "\" must be 1 to ", sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  // A blocking connect waits for room in rmemd's backlog, up to this.
  const timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    switch (errno) {
      case ENOENT:
        return absl::NotFoundError(absl::StrCat("no control socket at ", path, ": ", hint));
      case ECONNREFUSED:
        return absl::UnavailableError(
            absl::StrCat("nothing listens on ", path, " (left by an rmemd that stopped?): ", hint));
      case EACCES:
      case EPERM:
        return absl::PermissionDeniedError(
            absl::StrCat("permission denied on ", path,
                         ": rmemd's control socket is for root and the user rmemd runs as"));
      case EAGAIN:
      case EINPROGRESS:
        return absl::DeadlineExceededError(absl::StrCat("rmemd did not accept a connection on ",
                                                        path, " within ",
                                                        absl::FormatDuration(timeout)));
      default:
        return absl::UnavailableError(
            absl::StrCat("cannot connect to ", path, ": ", std::strerror(errno), ": ", hint));
    }
  }
  return ControlClient(std::move(fd), path, timeout);
}

absl::StatusOr<rmemd::Json> ControlClient::Ask(const rmemd::Json& request) {
  const absl::Time deadline = absl::Now() + timeout_;
  auto late = [&] {
    return absl::DeadlineExceededError(absl::StrCat("rmemd did not answer within ",
                                                    absl::FormatDuration(timeout_), " on ", path_));
  };
  const std::string line = rmemd::ToLine(request);
  for (size_t sent = 0; sent < line.size();) {
    pollfd p{fd_.get(), POLLOUT, 0};
    if (poll(&p, 1, RemainingMs(deadline)) == 0) return late();
    const ssize_t n =
        send(fd_.get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) break;  // closed by rmemd: it may have said why (read below)
    sent += static_cast<size_t>(n);
  }
  size_t nl;
  while ((nl = in_.find('\n')) == std::string::npos) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (poll(&p, 1, RemainingMs(deadline)) == 0) return late();
    char buf[64 * 1024];
    const ssize_t n = recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) {
      return absl::UnavailableError(
          absl::StrCat("rmemd closed the connection on ", path_, " without answering"));
    }
    in_.append(buf, static_cast<size_t>(n));
  }
  const rmemd::Json answer =
      rmemd::Json::parse(in_.substr(0, nl), nullptr, /*allow_exceptions=*/false);
  in_.erase(0, nl + 1);
  const auto ok = answer.is_object() ? answer.find("ok") : answer.end();
  if (answer.is_discarded() || ok == answer.end() || !ok->is_boolean()) {
    return absl::DataLossError(
        absl::StrCat("rmemd's answer on ", path_, " is not a control protocol answer"));
  }
  if (!ok->get<bool>()) {
    const auto error = answer.find("error");
    return absl::FailedPreconditionError(
        absl::StrCat("rmemd: ", error != answer.end() && error->is_string()
                                    ? error->get_ref<const std::string&>()
                                    : std::string("refused the request, saying nothing")));
  }
  return answer;
}

}  // namespace rmem::rmemctl

#include "base/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/sys_error.h"

namespace rmem {

absl::StatusOr<Fd> ListenUnix(const std::string& path, int backlog, std::optional<mode_t> mode) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path \"", path, "\" must be 1 to ",
                                                   sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  const auto* sa = reinterpret_cast<const sockaddr*>(&addr);
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " exists and is not a socket; not removing it"));
    }
    Fd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe.valid()) return ErrnoError("socket");
    if (connect(probe.get(), sa, sizeof(addr)) == 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("something listens on ", path, " (another rmemd?)"));
    }
    if (errno != ECONNREFUSED) return ErrnoError(absl::StrCat("probing ", path));
    if (unlink(path.c_str()) != 0) return ErrnoError(absl::StrCat("removing stale ", path));
  } else if (errno != ENOENT) {
    return ErrnoError(absl::StrCat("lstat ", path));
  }
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError("socket");
  // bind creates the file with 0777 & ~umask: narrowing the umask is the
  // one way to have it born with `mode` (fchmod on a socket does not reach
  // the file bind makes).
  const mode_t old_umask = mode ? umask(static_cast<mode_t>(~*mode & 0777)) : 0;
  const int bound = bind(fd.get(), sa, sizeof(addr));
  const int bind_errno = errno;
  if (mode) umask(old_umask);
  if (bound != 0) return ErrnoError(absl::StrCat("bind ", path), bind_errno);
  if (listen(fd.get(), backlog) != 0) {
    const absl::Status s = ErrnoError(absl::StrCat("listen ", path));
    unlink(path.c_str());
    return s;
  }
  return fd;
}

absl::StatusOr<PeerCredentials> PeerOf(int socket) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ErrnoError("SO_PEERCRED");
  }
  return PeerCredentials{.pid = cred.pid, .uid = cred.uid, .gid = cred.gid};
}

}  // namespace rmem

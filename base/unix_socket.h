// Listening Unix stream sockets (rmemd's vhost-user sockets and its control
// socket) and the credentials of the peer of a connected one.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "base/fd.h"

namespace rmem {

// A non-blocking listening socket at `path`. A stale socket there (nobody
// listens) is removed first; nothing else ever is. With `mode`, the socket
// file is created with exactly that mode (the umask is narrowed around
// bind, so it is never reachable with wider permissions).
// Errors: InvalidArgument for a path that does not fit a Unix socket
// address; FailedPrecondition if the path exists and is not a socket;
// AlreadyExists if something listens there ("... (another rmemd?)"); the
// socket calls' errno otherwise (ErrnoError: a missing directory is
// NotFound).
absl::StatusOr<Fd> ListenUnix(const std::string& path, int backlog,
                              std::optional<mode_t> mode = std::nullopt);

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};
// SO_PEERCRED of a connected Unix socket: the peer as it was at connect.
absl::StatusOr<PeerCredentials> PeerOf(int socket);

}  // namespace rmem

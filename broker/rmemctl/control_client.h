// rmemctl's end of rmemd's control socket (broker/rmemd/control_protocol.h):
// a connection on which each request gets its answer within a deadline.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "broker/rmemd/control_protocol.h"

namespace rmem::rmemctl {

class ControlClient {
 public:
  // Errors, each saying what to do: NotFound (no socket at `path`: is rmemd
  // running with --control PATH?), Unavailable (nothing listens there),
  // PermissionDenied (the socket is root's and rmemd's user's only),
  // DeadlineExceeded (rmemd did not accept within `timeout`).
  static absl::StatusOr<ControlClient> Connect(const std::string& path, absl::Duration timeout);

  // Sends `request` and returns rmemd's answer when it is {"ok":true,...}.
  // FailedPrecondition "rmemd: <its error>" for {"ok":false,...};
  // DeadlineExceeded when no answer came within the timeout; Unavailable
  // when rmemd closed the connection; DataLoss for an answer that is not
  // the protocol's.
  absl::StatusOr<rmemd::Json> Ask(const rmemd::Json& request);

 private:
  ControlClient(Fd fd, std::string path, absl::Duration timeout)
      : fd_(std::move(fd)), path_(std::move(path)), timeout_(timeout) {}
  Fd fd_;
  std::string path_;
  absl::Duration timeout_;
  std::string in_;  // bytes read past the last answer
};

}  // namespace rmem::rmemctl

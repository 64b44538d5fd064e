// One way to turn a failed system call into a Status: the action that failed
// and strerror(errno), e.g. "KVM_CREATE_VM: Device or resource busy".
#pragma once

#include <cerrno>
#include <cstring>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace rmem {

inline absl::Status ErrnoError(absl::string_view action, int err = errno) {
  const std::string msg = absl::StrCat(action, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case ENOMEM:
    case ENOSPC:
      return absl::ResourceExhaustedError(msg);
    case EINVAL:
      return absl::InvalidArgumentError(msg);
    default:
      return absl::InternalError(msg);
  }
}

}  // namespace rmem

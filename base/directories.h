// Creating the directory a file of rmemd's lives in (/run/rmemd for its
// state database and its control socket).
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace rmem {

// Creates the directory `file` is in when it is missing, with `mode`, and
// any missing directories above it with 0755 (/run itself may be missing
// in a minimal initramfs). Existing directories are left as they are.
// ErrnoError (naming the directory) when one cannot be created.
absl::Status MakeParentDirectories(const std::string& file, mode_t mode);

}  // namespace rmem

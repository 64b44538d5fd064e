#include "base/directories.h"

#include <sys/stat.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/sys_error.h"

namespace rmem {

absl::Status MakeParentDirectories(const std::string& file, mode_t mode) {
  const size_t last = file.rfind('/');
  if (last == std::string::npos || last == 0) return absl::OkStatus();  // "name", "/name"
  const std::string parent = file.substr(0, last);
  for (size_t at = parent.find('/', 1);; at = parent.find('/', at + 1)) {
    const std::string dir = at == std::string::npos ? parent : parent.substr(0, at);
    const mode_t dir_mode = at == std::string::npos ? mode : 0755;
    if (mkdir(dir.c_str(), dir_mode) != 0 && errno != EEXIST) {
      return ErrnoError(absl::StrCat("cannot create ", dir));
    }
    if (at == std::string::npos) return absl::OkStatus();
  }
}

}  // namespace rmem

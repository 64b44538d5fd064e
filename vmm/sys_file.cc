#include "vmm/sys_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/sys_error.h"

namespace rmem::vmm {

absl::StatusOr<std::vector<uint8_t>> ReadWholeFile(const std::string& path, const char* what,
                                                   uint64_t max_size) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(absl::StrCat("opening ", what, " ", path));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return ErrnoError(absl::StrCat("stat of ", what, " ", path));
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(what, " ", path, " is not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max_size) {
    return absl::FailedPreconditionError(absl::StrCat(what, " ", path, " is ", size >> 20,
                                                      " MiB, more than the ", max_size >> 20,
                                                      " MiB limit"));
  }
  std::vector<uint8_t> bytes(size);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrCat("reading ", what, " ", path));
    if (n == 0) {
      return absl::DataLossError(absl::StrCat(what, " ", path, " shrank while being read"));
    }
    done += static_cast<size_t>(n);
  }
  return bytes;
}

absl::Status WriteWholeFile(const std::string& path, std::span<const uint8_t> bytes) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoError(absl::StrCat("creating ", path));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrCat("writing ", path));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace rmem::vmm

#include "virtio_rmem/vhost_user/peer_eventfd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace rmem::virtio_rmem {

absl::Status AdoptPeerEventFd(const Fd& fd, absl::string_view what) {
  // The kernel names an eventfd's file "anon_inode:[eventfd]".
  char target[64] = {};
  const std::string link = absl::StrCat("/proc/self/fd/", fd.get());
  const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
  if (n < 0 || absl::string_view(target, static_cast<size_t>(n)) != "anon_inode:[eventfd]") {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not an eventfd (", n < 0 ? "unreadable" : target, ")"));
  }
  const int flags = fcntl(fd.get(), F_GETFL);
  if (flags < 0 || fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": cannot make it non-blocking"));
  }
  return absl::OkStatus();
}

bool SignalPeerEventFd(const Fd& fd) {
  const uint64_t one = 1;
  return write(fd.get(), &one, sizeof(one)) == sizeof(one);
}

void DrainPeerEventFd(const Fd& fd) {
  uint64_t count;
  (void)!read(fd.get(), &count, sizeof(count));
}

}  // namespace rmem::virtio_rmem

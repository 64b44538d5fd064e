// Our own eventfds, used to wake threads and pass notifications (vCPU done,
// stop, kicks, calls, a backend's failure): made and signalled in one way. A
// failed signal is our bug (an eventfd counter cannot overflow at our rates),
// so it crashes. (Eventfds a peer hands us are not ours: see
// virtio_rmem/vhost_user/peer_eventfd.h.)
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "broker/check.h"
#include "base/fd.h"

namespace rmem {

// A close-on-exec eventfd; invalid (errno set) if the kernel refused.
inline Fd MakeEventFd(bool nonblocking = true) {
  return Fd(eventfd(0, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0)));
}

// Adds one to the eventfd's counter: its readers wake.
inline void SignalEventFd(int fd) {
  const uint64_t one = 1;
  RMEM_CHECK(write(fd, &one, sizeof(one)) == sizeof(one));
}

}  // namespace rmem

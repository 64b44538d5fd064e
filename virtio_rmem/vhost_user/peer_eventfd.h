// Eventfds a front-end hands us (ring kick, call and error fds) are as
// hostile as the rest of its input: one that is not an eventfd could make
// the loop spin (a readable fd we cannot drain) or block (a full pipe). So
// each is checked to be an eventfd when it arrives and made non-blocking,
// and signalling or draining one never fails loudly: a peer that broke its
// own eventfd only loses its own notifications.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/fd.h"

namespace rmem::virtio_rmem {

// InvalidArgument "<what>: not an eventfd" unless `fd` is one; then sets
// O_NONBLOCK on it (the open file is shared with the peer, which cannot
// rely on blocking reads of a fd it gave away).
absl::Status AdoptPeerEventFd(const Fd& fd, absl::string_view what);

// Adds one to the counter; false if that failed (counter full).
bool SignalPeerEventFd(const Fd& fd);

// Reads the counter once: that empties it, unless the peer made it an
// EFD_SEMAPHORE eventfd, which a hostile peer could fill with 2^64 - 2 so
// that no loop of reads ends. Kick fds are therefore watched edge-triggered
// (every write by the peer is one wake-up) and read once per wake-up.
void DrainPeerEventFd(const Fd& fd);

}  // namespace rmem::virtio_rmem

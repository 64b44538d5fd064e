// The back-end's side of the socket a front-end gave with
// SET_BACKEND_REQ_FD: SHMEM_MAP / SHMEM_UNMAP requests, each sent with
// need_reply and answered within kBackendReplyTimeout. The event loop
// waits for the answer (the broker must know the mapping changed before it
// reports success), but never longer: a VMM that does not answer in time is
// stuck, and the caller breaks its connection.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "base/fd.h"
#include "vhost_user/protocol.h"

namespace rmem::virtio_rmem {

class BackendChannel {
 public:
  // Takes the socket (made non-blocking here). `peer` names the VMM.
  BackendChannel(Fd socket, std::string peer);

  // Sends `request` with `payload` (and `fd` unless -1) and waits for the
  // u64 reply. OK if the VMM replied 0; its refusal otherwise, as the
  // absl::StatusCode it replied (rmem-vmm's convention) or Unknown for
  // other values. Unavailable, naming the request, if the VMM is gone, not
  // reading, silent past the timeout, or replied with anything but the
  // reply due: the channel is then unusable and stays so.
  absl::Status Call(vhost_user::BackendRequest request, const vhost_user::ShmemMapMsg& payload,
                    int fd);

  bool broken() const { return broken_; }

 private:
  absl::Status Break(absl::Status s);

  Fd socket_;
  std::string peer_;
  bool broken_ = false;
};

}  // namespace rmem::virtio_rmem

// rmemd's running service: one broker over the platform's carve-outs, one
// virtio-rmem GuestDevice per configured guest, all served over vhost-user
// on one event loop. The backends: ShmRegionStage2 (guests' shared memory
// regions through their VMMs), CarveoutScrubber and the carve-out memory
// (the host module's device, or the memfd stand-in), and the platform's
// firewalls (PlatformFirewalls: drivers over the register-level models).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/event_loop.h"
#include "broker/backend/carveout_memory.h"
#include "broker/backend/scrubber.h"
#include "broker/backend/shm_region_stage2.h"
#include "broker/backend/firewall.h"
#include "broker/broker.h"
#include "broker/rmemd/setup.h"
#include "virtio_rmem/guest_device.h"
#include "virtio_rmem/vhost_user/server.h"

namespace rmem::rmemd {

class Service {
 public:
  // Builds the broker (scrubbing every carve-out) and listens on every
  // guest's socket. Errors: the broker's (InvalidArgument), the server's
  // (a socket path in use, not creatable).
  static absl::StatusOr<std::unique_ptr<Service>> Start(const BrokerSetup& setup,
                                                        std::unique_ptr<CarveoutMemory> memory,
                                                        std::unique_ptr<Firewall> firewall,
                                                        EventLoop& loop);
  ~Service();

  Broker& broker() { return *broker_; }
  const std::vector<std::unique_ptr<virtio_rmem::GuestDevice>>& guests() const { return guests_; }
  virtio_rmem::VhostUserServer& server() { return *server_; }

 private:
  Service() = default;
  void FlushAllEvents();

  std::unique_ptr<CarveoutMemory> memory_;
  std::unique_ptr<ShmRegionStage2> stage2_;
  std::unique_ptr<CarveoutScrubber> scrubber_;
  std::unique_ptr<Firewall> firewall_;  // outlives the broker
  std::unique_ptr<Broker> broker_;
  std::vector<std::unique_ptr<virtio_rmem::GuestDevice>> guests_;
  std::unique_ptr<virtio_rmem::VhostUserServer> server_;
};

}  // namespace rmem::rmemd

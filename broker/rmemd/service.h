// rmemd's running service: one broker over the platform's carve-outs, one
// virtio-rmem GuestDevice per configured guest, all served over vhost-user
// on one event loop. The backends: ShmRegionStage2 (guests' shared memory
// regions through their VMMs), CarveoutScrubber and the carve-out memory
// (the host module's device, or the memfd stand-in), the platform's
// firewalls (PlatformFirewalls: drivers over the register-level models),
// and the state store (SqliteStateStore) the broker records every request
// in and restores from when rmemd starts again.
//
// After a restore, every VM that holds state must see its VMM reconnect
// within `reconnect_grace`: its mappings are re-established when it does
// (ShmRegionStage2), and a VM still absent at the deadline is torn down as
// if its VMM had died. A teardown the store could not record is retried
// every second until it is (Broker::CatchUpState).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/event_loop.h"
#include "base/fd.h"
#include "broker/backend/carveout_memory.h"
#include "broker/backend/scrubber.h"
#include "broker/backend/shm_region_stage2.h"
#include "broker/broker.h"
#include "broker/rmemd/platform_firewalls.h"
#include "broker/rmemd/setup.h"
#include "broker/state/state_store.h"
#include "virtio_rmem/guest_device.h"
#include "virtio_rmem/vhost_user/server.h"

namespace rmem::rmemd {

class Service {
 public:
  struct Options {
    // nullptr: the broker's state lives in memory only.
    std::unique_ptr<StateStore> state;
    std::string state_path;  // where `state` keeps it, for status
    absl::Duration reconnect_grace = absl::Seconds(30);
  };
  // Builds the broker (restoring what the store holds, scrubbing every
  // other carve-out page) and listens on every guest's socket. Errors: the
  // broker's (InvalidArgument; FailedPrecondition or the store's for a
  // state it cannot restore), the server's (a socket path in use, not
  // creatable).
  static absl::StatusOr<std::unique_ptr<Service>> Start(
      const BrokerSetup& setup, std::unique_ptr<CarveoutMemory> memory,
      std::unique_ptr<PlatformFirewalls> firewalls, Options options, EventLoop& loop);
  ~Service();

  Broker& broker() { return *broker_; }
  // VMs restored with state whose VMMs have not reconnected yet.
  const std::vector<VmId>& awaiting() const { return awaiting_; }
  const std::vector<std::unique_ptr<virtio_rmem::GuestDevice>>& guests() const { return guests_; }
  virtio_rmem::VhostUserServer& server() { return *server_; }

  // Read-only views for rmemd's status (status.h) and control socket.
  const Broker& broker() const { return *broker_; }
  // The configured guests, in configuration order (as guests()).
  const std::vector<GuestConfig>& guest_configs() const { return guest_configs_; }
  const virtio_rmem::VhostUserServer& server() const { return *server_; }
  const ShmRegionStage2& stage2() const { return *stage2_; }
  const CarveoutScrubber& scrubber() const { return *scrubber_; }
  const CarveoutMemory& memory() const { return *memory_; }
  const PlatformFirewalls& firewalls() const { return *firewalls_; }
  // nullptr: the state lives in memory only (--no-state).
  StateStore* state() const { return state_.get(); }
  const std::string& state_path() const { return state_path_; }

 private:
  Service() = default;
  void FlushAllEvents();
  // Once a second: retries an unrecorded teardown; at the grace deadline,
  // tears down every restored VM whose VMM has not come back.
  void OnTick();

  std::unique_ptr<CarveoutMemory> memory_;
  std::unique_ptr<ShmRegionStage2> stage2_;
  std::unique_ptr<CarveoutScrubber> scrubber_;
  std::unique_ptr<PlatformFirewalls> firewalls_;  // outlives the broker
  std::unique_ptr<StateStore> state_;   // outlives the broker
  std::string state_path_;
  std::unique_ptr<Broker> broker_;
  std::vector<GuestConfig> guest_configs_;
  std::vector<VmId> awaiting_;
  absl::Time grace_deadline_;
  Fd tick_;
  Watch tick_watch_;
  std::vector<std::unique_ptr<virtio_rmem::GuestDevice>> guests_;
  std::unique_ptr<virtio_rmem::VhostUserServer> server_;
};

}  // namespace rmem::rmemd

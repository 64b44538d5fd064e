// PlatformFirewalls: the bus firewalls of the platform as rmemd drives them,
// behind the broker's one Firewall. Firmware names, per carve-out, the
// controller that guards it and the region or block set it uses there
// (`rmem,firewall`), and per device initiator its id at a controller
// (`access-controllers`). For every controller rmemd builds the driver its
// compatible calls for:
//   "arm,tzc-400"                Tzc400Firewall
//   "rmem,block-firewall-model"  BlockFirewall (block size: `rmem,block-size`,
//                                default 64 KiB)
// each over the register-level MODEL of that hardware, since no machine
// here has a bus firewall: DMA masters are NOT restricted by a model, and
// rmemd says so at start. A real platform swaps the model for a register
// window (RegisterBus); the drivers do not change.
//
// Routing: a grant goes to the controller guarding its carve-out. An
// initiator that has no id at that controller cannot be told apart there,
// so the controller lets it nowhere: the grant is recorded as unreachable
// and programs nothing. A carve-out with no `rmem,firewall` is guarded by
// nothing: grants there are recorded (UnenforcedFirewall) and rmemd warns
// at start.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "broker/backend/firewall.h"
#include "broker/backend/firewall/firewall_model.h"
#include "broker/backend/unenforced_firewall.h"
#include "broker/rmemd/setup.h"
#include "firmware_handoff/handoff.h"

namespace rmem::rmemd {

class PlatformFirewalls : public Firewall {
 public:
  // `setup` must come from MakeBrokerSetup(platform, ...): its carve-outs
  // and initiators are the platform's, in order.
  // FailedPrecondition: a controller rmemd has no driver for, or a driver's
  // probe refusing (see Tzc400Firewall / BlockFirewall::Create);
  // InvalidArgument: what those reject in the firmware's data.
  static absl::StatusOr<std::unique_ptr<PlatformFirewalls>> Create(
      const firmware_handoff::Platform& platform, const BrokerSetup& setup);
  ~PlatformFirewalls() override;

  absl::Status Grant(InitiatorId initiator, PageRange pages, Access access) override;
  void Revoke(InitiatorId initiator, PageRange pages) override;

  // One line per controller (and one for unguarded carve-outs), for the
  // start-up log.
  std::vector<std::string> Describe() const;

  // Pages behind one controller on which every id has the same access.
  struct AccessRun {
    std::string controller;
    PageRange pages;
    std::vector<std::pair<uint32_t, Access>> ids;  // the ids with some access, ascending
  };
  // What the hardware (each model) lets every id 0..15 do on every page of
  // the carve-outs behind it, as runs of pages with equal access, by
  // carve-out then address. Only runs where some id may do something. Read
  // from the models' registers, not from the drivers' bookkeeping.
  std::vector<AccessRun> AccessRuns() const;
  // AccessRuns as lines "<controller> [base, end): 4 read+write, 5 read"
  // (rmemd's SIGUSR1 dump).
  std::vector<std::string> AccessMap() const;

  // What guards a carve-out: its controller and the region (TZC-400) or
  // block set firmware named for it (rmem,firewall).
  struct Guard {
    std::string controller;
    uint32_t index = 0;
  };
  // nullopt: `carveout` (a carve-out's pages) has no rmem,firewall.
  std::optional<Guard> GuardOf(PageRange carveout) const;
  // The hardware model behind controller `node` (tests ask it what a DMA
  // master may do); nullptr if there is none.
  FirewallModel* model(const std::string& node) const;

 private:
  struct Controller;
  PlatformFirewalls();
  // nullptr: the carve-out is unguarded. InvalidArgument: not in one.
  absl::StatusOr<Controller*> Route(PageRange pages) const;

  struct GuardedCarveout {
    PageRange pages;
    Controller* controller;  // nullptr: unguarded
    uint32_t index;          // its rmem,firewall index at the controller
  };
  std::vector<std::unique_ptr<Controller>> controllers_;
  std::vector<GuardedCarveout> carveouts_;
  UnenforcedFirewall unguarded_;
};

}  // namespace rmem::rmemd

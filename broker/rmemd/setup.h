// What the broker is built from: the carve-outs and device initiators that
// firmware handed over, joined with rmemd's configuration (which VMs, which
// heaps over which carve-outs, who may do what). Every name one side uses
// must exist on the other, or rmemd refuses to start saying which.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "broker/carveout/carveout.h"
#include "broker/policy/policy.h"
#include "broker/rmemd/config.h"
#include "firmware_handoff/handoff.h"

namespace rmem::rmemd {

struct BrokerSetup {
  std::vector<Carveout> carveouts;  // every firmware carve-out, by base
  PolicyConfig policy;
  std::vector<GuestConfig> guests;
  uint32_t max_receivers = 8;
};

// InvalidArgument naming the entry: a heap's use-case no carve-out has, a
// carve-out in two heaps with different max_align, a device initiator whose
// owner VM the configuration does not define; then whatever
// Policy::Create rejects.
absl::StatusOr<BrokerSetup> MakeBrokerSetup(const firmware_handoff::Platform& platform,
                                            const RmemdConfig& config);

}  // namespace rmem::rmemd

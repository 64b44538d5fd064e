// Firewall: gives a device initiator (a DMA master such as a video decoder
// or display controller) read/write access to a physical range, and takes it
// away. Implementations: BlockFirewall (firewall/block_firewall.h, the driver
// of a block-granular controller, programmed here through its register-level
// model), a TZC-400 driver (later), UnenforcedFirewall, FakeFirewall
// (fake_backends.h) and NullFirewall (null_backends.h).
#pragma once

#include "absl/status/status.h"
#include "broker/rights.h"
#include "broker/types.h"

namespace rmem {

class Firewall {
 public:
  virtual ~Firewall() = default;
  // Lets `initiator` access `pages` with `access` (not kNone). On error
  // nothing changed. Errors: ResourceExhausted (no region can express the
  // grant without widening someone else's rights), Unimplemented (null).
  virtual absl::Status Grant(InitiatorId initiator, PageRange pages, Access access) = 0;
  // Removes exactly one earlier Grant. Cannot fail (same contract as
  // Stage2::Unmap).
  virtual void Revoke(InitiatorId initiator, PageRange pages) = 0;
};

}  // namespace rmem

// The small platform the isolation property tests and the soak run on: two
// carve-outs, four VMs, four device initiators (one owned by nobody), three
// heaps with different rights ceilings, CPU-mapping rules and quotas, sized
// so that random workloads hit every rule (quota and pool exhaustion
// included) within a few dozen operations.
#pragma once

#include <vector>

#include "broker/carveout/carveout.h"
#include "broker/policy/policy.h"

namespace rmem::testing {

struct TestPlatform {
  std::vector<Carveout> carveouts;
  PolicyConfig policy;
  size_t max_receivers = 3;
};

TestPlatform SmallPlatform();

}  // namespace rmem::testing

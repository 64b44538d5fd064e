// The operation sequences the isolation tests run through the harness: a
// rapidcheck-generated one (shrunk to a minimal failing sequence on
// failure), and long seeded ones (xorshift64 words), each ending with every
// VM torn down.
#pragma once

#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/broker/oracle/isolation_harness.h"

namespace rmem::testing {

// One rapidcheck property case over `firewall`.
// `persist`: with the state store, injected store failures and restarts.
inline void CheckRandomSequence(FirewallUnderTest firewall, bool persist = false) {
  const auto words = *rc::gen::container<std::vector<uint64_t>>(rc::gen::arbitrary<uint64_t>());
  const uint64_t seed = *rc::gen::arbitrary<uint64_t>();
  IsolationHarness harness(SmallPlatform(), seed, firewall, persist);
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string violation = harness.Step(words[i]);
    RC_ASSERT(violation == std::string());
  }
  RC_ASSERT(harness.TeardownAll() == std::string());
  RC_TAG(harness.stats().accepted > words.size() / 4 ? "mostly accepted" : "mostly rejected");
}

// `steps` operations drawn from `seed` over `firewall`; fails the test at
// the first violation (naming seed and step); adds the run's figures to
// `total`. Call under ASSERT_NO_FATAL_FAILURE.
inline void RunSeededSequence(uint64_t seed, int steps, FirewallUnderTest firewall,
                              HarnessStats& total, bool persist = false) {
  IsolationHarness harness(SmallPlatform(), seed, firewall, persist);
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < steps; ++i) {
    const std::string violation = harness.Step(NextWord(x));
    ASSERT_EQ(violation, "") << "seed " << seed << " step " << i;
  }
  ASSERT_EQ(harness.TeardownAll(), "") << "seed " << seed;
  total.Add(harness.stats());
}

// Names a test parameterised by firewall: "tzc400_scarce".
inline std::string FirewallParamName(const ::testing::TestParamInfo<FirewallUnderTest>& p) {
  std::string n = FirewallUnderTestName(p.param);
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

}  // namespace rmem::testing

// The isolation invariant with the broker programming the register-level
// firewall models (TZC-400, a scarce TZC-400, the block controller): after
// every operation the oracle also asks the hardware model, for every
// initiator's id, page and access, and checks every state between two
// register writes (see isolation_harness.h). Its own executable, so that
// RC_PARAMS can give it fewer sequences than the fake-firewall property:
// each step costs a full sweep of the models.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/broker/oracle/sequences.h"

namespace rmem::testing {
namespace {

RC_GTEST_PROP(IsolationFirewallProperty, HoldsWithTheTzc400Model, ()) {
  CheckRandomSequence(FirewallUnderTest::kTzc400);
}
RC_GTEST_PROP(IsolationFirewallProperty, HoldsWithAScarceTzc400, ()) {
  CheckRandomSequence(FirewallUnderTest::kTzc400Scarce);
}
RC_GTEST_PROP(IsolationFirewallProperty, HoldsWithTheBlockControllerModel, ()) {
  CheckRandomSequence(FirewallUnderTest::kBlockController);
}

// Long sequences over each firewall model. Many small buffers with
// different rights fill the TZC-400's grant regions: requests are refused
// (ResourceExhausted) while they are full, and nothing ever leaks.
class IsolationWithFirewall : public ::testing::TestWithParam<FirewallUnderTest> {};

TEST_P(IsolationWithFirewall, HoldsOverLongSeededSequences) {
  HarnessStats total;
  for (uint64_t seed = 1; seed <= 2; ++seed) {
    ASSERT_NO_FATAL_FAILURE(RunSeededSequence(seed, 3000, GetParam(), total));
  }
  for (const char* op : {"ALLOC ok", "SHARE ok", "RETRIEVE ok", "RELINQUISH ok", "RECLAIM ok",
                         "FREE ok", "TEARDOWN ok"}) {
    EXPECT_GT(total.by_op[op], 0u) << op << " never happened";
  }
  const bool tzc = GetParam() == FirewallUnderTest::kTzc400 ||
                   GetParam() == FirewallUnderTest::kTzc400Scarce;
  if (tzc) {
    EXPECT_GT(total.region_refusals, 0u) << "the grant regions never filled up";
  }
  EXPECT_GT(total.transient_checks, 0u);
  std::printf("%s: %llu operations, %llu accepted, %llu refused for want of a region, %llu checks\n",
              FirewallUnderTestName(GetParam()), static_cast<unsigned long long>(total.ops),
              static_cast<unsigned long long>(total.accepted),
              static_cast<unsigned long long>(total.region_refusals),
              static_cast<unsigned long long>(total.total_checks()));
}

INSTANTIATE_TEST_SUITE_P(Models, IsolationWithFirewall,
                         ::testing::Values(FirewallUnderTest::kTzc400,
                                           FirewallUnderTest::kTzc400Scarce,
                                           FirewallUnderTest::kBlockController),
                         FirewallParamName);

}  // namespace
}  // namespace rmem::testing

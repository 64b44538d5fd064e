// The isolation invariant across rmemd restarts: the broker records its
// state in a real SQLite store, some injected failures hit the store (the
// request must fail and change nothing), and some operations restart rmemd
// (the broker is dropped mid-sequence without a teardown, the backends'
// programming is reset, a new broker restores from the store). After each
// restart every check of the harness runs against the unchanged reference
// model: same buffers, owners, offers, grants, mappings and firewall state,
// no page reachable by anyone the model does not grant, free pages
// scrubbed, buffer contents kept (isolation_harness.h).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

#include "tests/broker/oracle/sequences.h"

namespace rmem::testing {
namespace {

RC_GTEST_PROP(IsolationRestartProperty, HoldsAcrossRestartsWithTheFakeFirewall, ()) {
  CheckRandomSequence(FirewallUnderTest::kFake, /*persist=*/true);
}
RC_GTEST_PROP(IsolationRestartProperty, HoldsAcrossRestartsWithAScarceTzc400, ()) {
  CheckRandomSequence(FirewallUnderTest::kTzc400Scarce, /*persist=*/true);
}

class IsolationAcrossRestarts : public ::testing::TestWithParam<FirewallUnderTest> {};

TEST_P(IsolationAcrossRestarts, HoldsOverLongSeededSequences) {
  HarnessStats total;
  for (uint64_t seed = 1; seed <= 2; ++seed) {
    ASSERT_NO_FATAL_FAILURE(RunSeededSequence(seed, 3000, GetParam(), total, /*persist=*/true));
  }
  for (const char* op : {"ALLOC ok", "SHARE ok", "RETRIEVE ok", "RELINQUISH ok", "RECLAIM ok",
                         "FREE ok", "TEARDOWN ok"}) {
    EXPECT_GT(total.by_op[op], 0u) << op << " never happened";
  }
  EXPECT_GT(total.restarts, 20u);
  EXPECT_GT(total.store_failures, 20u);
  std::printf("%s: %llu operations, %llu accepted, %llu restarts, %llu refused by the store, "
              "%llu checks\n",
              FirewallUnderTestName(GetParam()), static_cast<unsigned long long>(total.ops),
              static_cast<unsigned long long>(total.accepted),
              static_cast<unsigned long long>(total.restarts),
              static_cast<unsigned long long>(total.store_failures),
              static_cast<unsigned long long>(total.total_checks()));
}

INSTANTIATE_TEST_SUITE_P(Firewalls, IsolationAcrossRestarts,
                         ::testing::Values(FirewallUnderTest::kFake, FirewallUnderTest::kTzc400,
                                           FirewallUnderTest::kTzc400Scarce,
                                           FirewallUnderTest::kBlockController),
                         FirewallParamName);

}  // namespace
}  // namespace rmem::testing

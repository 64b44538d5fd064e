// The isolation invariant over random operation sequences (rapidcheck):
// after every operation of every sequence, the harness's seven checks hold
// (see isolation_harness.h). On failure rapidcheck shrinks the sequence to
// a minimal one and prints it. RC_PARAMS sets the number of sequences (CI
// runs thousands; see tests/meson.build).
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

RC_GTEST_PROP(IsolationProperty, HoldsAfterEveryOperationOfRandomSequences, ()) {
  CheckRandomSequence(FirewallUnderTest::kFake);
}

// Long single sequences reach deep states (full pools, exhausted quotas,
// chains of donations) that short random sequences rarely do.
TEST(IsolationProperty, HoldsOverLongSeededSequences) {
  HarnessStats total;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    ASSERT_NO_FATAL_FAILURE(RunSeededSequence(seed, 5000, FirewallUnderTest::kFake, total));
  }
  // The workload must exercise the paths it claims to: each kind of request
  // succeeds and each kind is refused somewhere.
  for (const char* op : {"ALLOC ok",
                         "SHARE ok",
                         "LEND ok",
                         "DONATE ok",
                         "RETRIEVE ok",
                         "RELINQUISH ok",
                         "RECLAIM ok",
                         "RECLAIM+REVOKE ok",
                         "FREE ok",
                         "TEARDOWN ok",
                         "ALLOC RESOURCE_EXHAUSTED",
                         "ALLOC INVALID_ARGUMENT",
                         "ALLOC PERMISSION_DENIED",
                         "SHARE PERMISSION_DENIED",
                         "SHARE INVALID_ARGUMENT",
                         "SHARE NOT_FOUND",
                         "RETRIEVE NOT_FOUND",
                         "RETRIEVE FAILED_PRECONDITION",
                         "FREE FAILED_PRECONDITION",
                         "RECLAIM FAILED_PRECONDITION",
                         "RECLAIM+REVOKE PERMISSION_DENIED",
                         "ALLOC UNAVAILABLE",
                         "RETRIEVE UNAVAILABLE"}) {
    EXPECT_GT(total.by_op[op], 0u) << op << " never happened";
  }
  EXPECT_GT(total.injected_failures, 0u);
  std::printf("%llu operations, %llu accepted, %llu checks\n",
              static_cast<unsigned long long>(total.ops),
              static_cast<unsigned long long>(total.accepted),
              static_cast<unsigned long long>(total.total_checks()));
}

}  // namespace
}  // namespace rmem::testing

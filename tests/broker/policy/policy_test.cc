// Policy validation (one named test per rule) and quota accounting.
#include "broker/policy/policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "broker/policy/quota.h"
#include "tests/broker/oracle/test_platform.h"

namespace rmem::testing {
namespace {

using ::testing::HasSubstr;
using C = absl::StatusCode;

absl::Status Validate(const TestPlatform& p) {
  return Policy::Create(p.policy, p.carveouts).status();
}

TEST(Policy, SmallPlatform_Valid) { EXPECT_TRUE(Validate(SmallPlatform()).ok()); }

TEST(Policy, VmIdZero_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.vms[0].id = VmId(0);
  EXPECT_THAT(Validate(p).message(), HasSubstr("id 0, which is the host's"));
}

TEST(Policy, DuplicateVmId_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.vms[1].id = p.policy.vms[0].id;
  EXPECT_THAT(Validate(p).message(), HasSubstr("vm 1 is configured twice"));
}

TEST(Policy, DuplicateVmName_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.vms[1].name = p.policy.vms[0].name;
  EXPECT_THAT(Validate(p).message(), HasSubstr("vm name 'decrypt' is used twice"));
}

TEST(Policy, UnnamedVm_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.vms[0].name = "";
  EXPECT_EQ(Validate(p).code(), C::kInvalidArgument);
}

TEST(Policy, InitiatorOwnedByUnknownVm_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.initiators[0].owner = VmId(42);
  EXPECT_THAT(Validate(p).message(), HasSubstr("owned by unknown vm 42"));
}

TEST(Policy, DuplicateInitiatorId_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.initiators[1].id = p.policy.initiators[0].id;
  EXPECT_THAT(Validate(p).message(), HasSubstr("initiator id 10 is used twice"));
}

TEST(Policy, DuplicateInitiatorName_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.initiators[1].name = p.policy.initiators[0].name;
  EXPECT_THAT(Validate(p).message(), HasSubstr("is used twice"));
}

TEST(Policy, InitiatorThatMayAccessNothing_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.initiators[0].max_access = Access::kNone;
  EXPECT_THAT(Validate(p).message(), HasSubstr("may access nothing"));
}

TEST(Policy, InitiatorAccessIsTheOwnersWithinItsMaximum) {
  const TestPlatform t = SmallPlatform();  // the display controller is read-only
  auto p = Policy::Create(t.policy, t.carveouts);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->InitiatorAccess(InitiatorId(10), Access::kReadWrite), Access::kReadWrite);
  EXPECT_EQ(p->InitiatorAccess(InitiatorId(11), Access::kReadWrite), Access::kRead);
  EXPECT_EQ(p->InitiatorAccess(InitiatorId(11), Access::kWrite), Access::kNone);
  EXPECT_EQ(p->InitiatorAccess(InitiatorId(10), Access::kRead), Access::kRead);
}

TEST(Policy, DuplicateHeapName_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.heaps[1].name = p.policy.heaps[0].name;
  EXPECT_THAT(Validate(p).message(), HasSubstr("heap name 'secure-video' is used twice"));
}

TEST(Policy, HeapWithoutCarveouts_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.heaps[0].carveouts.clear();
  EXPECT_THAT(Validate(p).message(), HasSubstr("has no carve-outs"));
}

TEST(Policy, HeapWithUnknownCarveout_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.heaps[0].carveouts = {"ghost"};
  EXPECT_THAT(Validate(p).message(), HasSubstr("unknown carve-out 'ghost'"));
}

TEST(Policy, HeapListingCarveoutTwice_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.heaps[0].carveouts = {"video@80000000", "video@80000000"};
  EXPECT_THAT(Validate(p).message(), HasSubstr("twice"));
}

TEST(Policy, HeapListingUnknownVm_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.heaps[0].access[0].vm = VmId(42);
  EXPECT_THAT(Validate(p).message(), HasSubstr("lists unknown vm 42"));
}

TEST(Policy, HeapListingVmTwice_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.heaps[0].access[1].vm = p.policy.heaps[0].access[0].vm;
  EXPECT_THAT(Validate(p).message(), HasSubstr("is listed twice"));
}

TEST(Policy, EmptyMaxRights_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.heaps[0].access[0].max_rights = Rights::Of(Rights::kCpuMap);
  EXPECT_THAT(Validate(p).message(), HasSubstr("hold neither read nor write"));
}

TEST(Policy, CpuMapOnDeviceOnlyHeap_Invalid) {
  TestPlatform p = SmallPlatform();
  p.policy.heaps[1].access[0].max_rights = Rights::Of(7);
  EXPECT_THAT(Validate(p).message(), HasSubstr("cpu-map is not allowed on a device-only heap"));
}

TEST(Policy, Lookups) {
  const TestPlatform tp = SmallPlatform();
  absl::StatusOr<Policy> p = Policy::Create(tp.policy, tp.carveouts);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->FindHeap("general"), HeapId(2));
  EXPECT_EQ(p->FindHeap("nope"), std::nullopt);
  EXPECT_EQ(p->heap_carveouts(HeapId(0)).size(), 2u);
  ASSERT_EQ(p->initiators_of(VmId(1)).size(), 1u);
  EXPECT_EQ(p->initiators_of(VmId(1))[0], InitiatorId(10));
  EXPECT_TRUE(p->initiators_of(VmId(3)).empty());
  EXPECT_TRUE(p->CheckMayAllocate(HeapId(0), VmId(1)).ok());
  EXPECT_EQ(p->CheckMayAllocate(HeapId(0), VmId(2)).code(), C::kPermissionDenied);
  EXPECT_TRUE(p->CheckMayReceive(HeapId(0), VmId(2), Rights::Of(Rights::kRead)).ok());
  EXPECT_EQ(p->CheckMayReceive(HeapId(0), VmId(9), Rights::Of(Rights::kRead)).code(), C::kNotFound);
}

TEST(QuotaLedger, ChargesAndReleasesAcrossAllThreeQuotas) {
  const TestPlatform tp = SmallPlatform();
  absl::StatusOr<Policy> p = Policy::Create(tp.policy, tp.carveouts);
  ASSERT_TRUE(p.ok());
  QuotaLedger q(&*p);
  const HeapId general(2);
  EXPECT_TRUE(q.CheckCharge(VmId(3), general, 0x8000).ok());
  q.Charge(VmId(3), general, 0x8000);
  EXPECT_EQ(q.vm_bytes(VmId(3)), 0x8000u);
  EXPECT_EQ(q.heap_bytes(general), 0x8000u);
  EXPECT_EQ(q.CheckCharge(VmId(3), general, 1).code(), C::kResourceExhausted);
  q.Release(VmId(3), general, 0x8000);
  EXPECT_EQ(q.vm_bytes(VmId(3)), 0u);
  EXPECT_TRUE(q.CheckCharge(VmId(3), general, 0x8000).ok());
}

TEST(QuotaLedger, HugeRequestDoesNotOverflowTheCheck) {
  const TestPlatform tp = SmallPlatform();
  absl::StatusOr<Policy> p = Policy::Create(tp.policy, tp.carveouts);
  QuotaLedger q(&*p);
  q.Charge(VmId(4), HeapId(2), 0x1000);
  EXPECT_EQ(q.CheckCharge(VmId(4), HeapId(2), UINT64_MAX).code(), C::kResourceExhausted);
}

}  // namespace
}  // namespace rmem::testing

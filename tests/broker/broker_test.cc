// The broker's behaviour, one named test per rule: what each request does
// to access, quotas and events, and one negative test per validation rule
// (each checks the status code, the message, and that nothing changed).
#include "broker/broker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/broker/broker_fixture.h"

namespace rmem::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using C = absl::StatusCode;
constexpr uint64_t KiB = 1024;

// ---- Create ------------------------------------------------------------------

TEST(BrokerCreate, ScrubsEveryCarveoutBeforeUse) {
  FakeBackends fakes;
  const TestPlatform p = SmallPlatform();
  const Party firmware{Party::Kind::kInitiator, 999};
  for (const Carveout& c : p.carveouts) {
    fakes.memory.MarkWritten(*PageRange::FromBytes(c.base, c.size), firmware);
  }
  auto b = Broker::Create(p.carveouts, p.policy,
                          Backends{&fakes.stage2, &fakes.firewall, &fakes.scrubber});
  ASSERT_TRUE(b.ok()) << b.status();
  for (const Carveout& c : p.carveouts) {
    EXPECT_TRUE(fakes.memory.IsClean(*PageRange::FromBytes(c.base, c.size)));
  }
}

TEST(BrokerCreate, MissingBackend_InvalidArgument) {
  FakeBackends fakes;
  const TestPlatform p = SmallPlatform();
  auto b = Broker::Create(p.carveouts, p.policy, Backends{&fakes.stage2, nullptr, &fakes.scrubber});
  EXPECT_EQ(b.status().code(), C::kInvalidArgument);
}

TEST(BrokerCreate, OverlappingCarveouts_InvalidArgument) {
  FakeBackends fakes;
  TestPlatform p = SmallPlatform();
  p.carveouts[1].base = p.carveouts[0].base;
  auto b = Broker::Create(p.carveouts, p.policy,
                          Backends{&fakes.stage2, &fakes.firewall, &fakes.scrubber});
  EXPECT_THAT(b.status().message(), HasSubstr("overlap"));
}

TEST(BrokerCreate, BadPolicy_InvalidArgument) {
  FakeBackends fakes;
  TestPlatform p = SmallPlatform();
  p.policy.heaps[0].carveouts.push_back("nowhere");
  auto b = Broker::Create(p.carveouts, p.policy,
                          Backends{&fakes.stage2, &fakes.firewall, &fakes.scrubber});
  EXPECT_THAT(b.status().message(), HasSubstr("unknown carve-out 'nowhere'"));
}

// ---- ALLOC -------------------------------------------------------------------

using AllocTest = BrokerTest;

TEST_F(AllocTest, MapsOwnerAndItsInitiatorsWithHeapRights) {
  const Allocation a = MustAlloc(kDecrypt, "secure-video", 0x4000);
  EXPECT_EQ(a.rights, Rights::Of(kR | kW | kC));
  EXPECT_EQ(a.pages.size_bytes(), 0x4000u);
  ASSERT_TRUE(a.mapped_at.has_value());
  EXPECT_EQ(CpuAccess(kDecrypt, a.pages), Access::kReadWrite);
  EXPECT_EQ(DeviceAccess(kDecoder, a.pages), Access::kReadWrite);
  EXPECT_EQ(CpuAccess(kDisplay, a.pages), Access::kNone);
  EXPECT_EQ(DeviceAccess(kDisplayCtrl, a.pages), Access::kNone);
  EXPECT_EQ(DeviceAccess(kRogue, a.pages), Access::kNone);
}

TEST_F(AllocTest, RoundsUpToWholePages) {
  const Allocation a = MustAlloc(kDecrypt, "general", 4097);
  EXPECT_EQ(a.pages.count(), PageCount(2));
  EXPECT_EQ(broker_->quotas().vm_bytes(kDecrypt), 0x2000u);
}

TEST_F(AllocTest, DeviceOnlyHeap_NeverCpuMapped) {
  const Allocation a = MustAlloc(kDecrypt, "device-only");
  EXPECT_FALSE(a.mapped_at.has_value());
  EXPECT_EQ(CpuAccess(kDecrypt, a.pages), Access::kNone);
  EXPECT_EQ(DeviceAccess(kDecoder, a.pages), Access::kReadWrite);
}

TEST_F(AllocTest, HonoursPhysicalAlignment) {
  const Allocation a = MustAlloc(kDecrypt, "secure-video", 0x1000, 0x10000);
  EXPECT_EQ(a.pages.base().value() % 0x10000, 0u);
}

TEST_F(AllocTest, AlignmentBelowPage_RaisedToPage) {
  const Allocation a = MustAlloc(kDecrypt, "general", 0x1000, 16);
  EXPECT_TRUE(a.pages.base().IsPageAligned());
}

TEST_F(AllocTest, IdsAreNonzeroAndNeverReused) {
  absl::flat_hash_set<uint64_t> seen;
  for (int i = 0; i < 50; ++i) {
    const Allocation a = MustAlloc(kDecrypt, "general", 0x1000);
    ASSERT_NE(a.id.value(), 0u);
    ASSERT_TRUE(seen.insert(a.id.value()).second);
    ASSERT_TRUE(broker_->Free(kDecrypt, a.id).ok());
  }
}

TEST_F(AllocTest, UnknownCaller_NotFound) {
  auto s =
      ExpectRejected(C::kNotFound, [&] { return broker_->Alloc(kUnknownVm, "general", 1, 0); });
  EXPECT_EQ(s.message(), "vm 99 is not a configured VM");
}

TEST_F(AllocTest, UnknownHeap_NotFound) {
  auto s = ExpectRejected(C::kNotFound, [&] { return broker_->Alloc(kDecrypt, "nope", 1, 0); });
  EXPECT_EQ(s.message(), "no heap 'nope'");
}

TEST_F(AllocTest, VmNotListedOnHeap_PermissionDenied) {
  auto s = ExpectRejected(C::kPermissionDenied,
                          [&] { return broker_->Alloc(kInfotainment, "secure-video", 1, 0); });
  EXPECT_EQ(s.message(), "vm 3 may not allocate from heap 'secure-video'");
}

TEST_F(AllocTest, ReceiveOnlyVm_PermissionDenied) {
  ExpectRejected(C::kPermissionDenied,
                 [&] { return broker_->Alloc(kDisplay, "secure-video", 1, 0); });
}

TEST_F(AllocTest, ZeroSize_InvalidArgument) {
  auto s = ExpectRejected(C::kInvalidArgument,
                          [&] { return broker_->Alloc(kDecrypt, "general", 0, 0); });
  EXPECT_EQ(s.message(), "allocation size is 0");
}

TEST_F(AllocTest, SizeOverflowingPageRounding_InvalidArgument) {
  auto s = ExpectRejected(C::kInvalidArgument,
                          [&] { return broker_->Alloc(kDecrypt, "general", UINT64_MAX, 0); });
  EXPECT_THAT(s.message(), HasSubstr("overflows"));
}

TEST_F(AllocTest, AlignmentNotPowerOfTwo_InvalidArgument) {
  auto s = ExpectRejected(C::kInvalidArgument,
                          [&] { return broker_->Alloc(kDecrypt, "general", 1, 0x3000); });
  EXPECT_EQ(s.message(), "alignment 0x3000 is not a power of two");
}

TEST_F(AllocTest, AlignmentAboveHeapMaximum_InvalidArgument) {
  auto s = ExpectRejected(C::kInvalidArgument,
                          [&] { return broker_->Alloc(kDecrypt, "general", 1, 0x20000); });
  EXPECT_EQ(s.message(), "alignment 0x20000 exceeds heap 'general' maximum 0x10000");
  ExpectRejected(C::kInvalidArgument,
                 [&] { return broker_->Alloc(kDecrypt, "general", 1, uint64_t{1} << 63); });
}

TEST_F(AllocTest, HugeSize_ResourceExhaustedNotCrash) {
  ExpectRejected(C::kResourceExhausted,
                 [&] { return broker_->Alloc(kDecrypt, "general", uint64_t{1} << 50, 0); });
}

TEST_F(AllocTest, VmHeapQuota_ResourceExhausted) {
  // infotainment may own 32 KiB of 'general'.
  MustAlloc(kInfotainment, "general", 32 * KiB);
  auto s = ExpectRejected(C::kResourceExhausted,
                          [&] { return broker_->Alloc(kInfotainment, "general", 0x1000, 0); });
  EXPECT_EQ(s.message(),
            "vm 3 quota on heap 'general' exceeded: limit 0x8000 bytes, 0x8000 in use, "
            "0x1000 requested");
}

TEST_F(AllocTest, VmTotalQuota_ResourceExhausted) {
  // display may own 128 KiB in total; 'general' has no per-VM limit for it.
  MustAlloc(kDisplay, "general", 128 * KiB);
  auto s = ExpectRejected(C::kResourceExhausted,
                          [&] { return broker_->Alloc(kDisplay, "device-only", 0x1000, 0); });
  EXPECT_THAT(s.message(), HasSubstr("vm 2 quota exceeded: limit 0x20000 bytes"));
}

TEST_F(AllocTest, HeapQuota_ResourceExhausted) {
  // secure-video as a whole may hold 320 KiB.
  MustAlloc(kDecrypt, "secure-video", 256 * KiB);
  MustAlloc(kCamera, "secure-video", 64 * KiB);
  auto s = ExpectRejected(C::kResourceExhausted,
                          [&] { return broker_->Alloc(kDecrypt, "secure-video", 0x1000, 0); });
  EXPECT_THAT(s.message(), HasSubstr("heap 'secure-video' quota exceeded"));
}

TEST_F(AllocTest, OneGuestAtItsQuota_OthersStillAllocate) {
  while (broker_->Alloc(kInfotainment, "general", 0x1000, 0).ok()) {
  }
  EXPECT_TRUE(broker_->Alloc(kDecrypt, "general", 0x1000, 0).ok());
  EXPECT_TRUE(broker_->Alloc(kCamera, "general", 0x1000, 0).ok());
}

TEST_F(AllocTest, PoolExhausted_ResourceExhaustedWithFigures) {
  // general is the 384 KiB video carve-out; camera has no quota there.
  MustAlloc(kCamera, "general", 384 * KiB);
  auto s = ExpectRejected(C::kResourceExhausted,
                          [&] { return broker_->Alloc(kCamera, "general", 0x1000, 0); });
  EXPECT_EQ(s.message(),
            "heap 'general' has no free run of 0x1000 bytes at alignment 0x1000 (free 0x0, "
            "largest run 0x0)");
}

TEST_F(AllocTest, FallsBackToTheHeapsNextCarveout) {
  // secure-video tries the video carve-out first, then secure.
  EXPECT_EQ(MustAlloc(kDecrypt, "secure-video").pages.base().value() & 0xf0000000, 0x80000000u);
  MustAlloc(kCamera, "general", 384 * KiB - 0x4000);  // fills the rest of video
  EXPECT_EQ(MustAlloc(kDecrypt, "secure-video").pages.base().value() & 0xf0000000, 0x90000000u);
}

TEST_F(AllocTest, AlignmentOnlyOneCarveoutAllows_UsesThatOne) {
  // 'secure' allows 16 KiB alignment, 'video' 64 KiB: a 64 KiB-aligned
  // request can only come from 'video'.
  const Allocation a = MustAlloc(kDecrypt, "secure-video", 0x1000, 0x10000);
  EXPECT_EQ(a.pages.base().value() & 0xf0000000, 0x80000000u);
}

// ---- SHARE / LEND / DONATE ---------------------------------------------------

using ShareTest = BrokerTest;

TEST_F(ShareTest, ReceiverRetrievesWithOfferedRightsOnly) {
  const Allocation a = MustAlloc(kDecrypt, "secure-video");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  EXPECT_EQ(CpuAccess(kDisplay, a.pages), Access::kNone);  // offered, not yet mapped
  absl::StatusOr<Retrieval> r = broker_->Retrieve(kDisplay, h);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rights, Rights::Of(kR | kC));
  EXPECT_EQ(r->owner, kDecrypt);
  EXPECT_EQ(r->size_bytes, 0x4000u);
  EXPECT_FALSE(r->buffer.has_value());
  EXPECT_EQ(CpuAccess(kDisplay, a.pages), Access::kRead);
  EXPECT_EQ(DeviceAccess(kDisplayCtrl, a.pages), Access::kRead);
  EXPECT_EQ(CpuAccess(kDecrypt, a.pages), Access::kReadWrite);  // share: owner keeps it
  EXPECT_EQ(CpuAccess(kInfotainment, a.pages), Access::kNone);
}

TEST_F(ShareTest, NotifiesReceiversAndOwner) {
  const Allocation a = MustAlloc(kDecrypt, "secure-video");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  std::vector<Event> offered = Events(kDisplay);
  ASSERT_EQ(offered.size(), 1u);
  EXPECT_EQ(offered[0].kind, EventKind::kOffered);
  EXPECT_EQ(offered[0].handle, h);
  EXPECT_EQ(offered[0].peer, kDecrypt);
  EXPECT_EQ(offered[0].buffer, BufferId());  // receivers never learn buffer ids
  EXPECT_EQ(offered[0].rights, Rights::Of(kR | kC));
  ASSERT_TRUE(broker_->Retrieve(kDisplay, h).ok());
  std::vector<Event> retrieved = Events(kDecrypt);
  ASSERT_EQ(retrieved.size(), 1u);
  EXPECT_EQ(retrieved[0].kind, EventKind::kRetrieved);
  EXPECT_EQ(retrieved[0].buffer, a.id);
}

TEST_F(ShareTest, NotOwner_NotFound) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Offer o{kInfotainment, Rights::Of(kR)};
  auto s = ExpectRejected(C::kNotFound, [&] { return broker_->Share(kDisplay, a.id, {&o, 1}); });
  EXPECT_EQ(s.message(), absl::StrCat("vm 2 owns no ", BufferName(a.id)));
}

TEST_F(ShareTest, ForgedBufferId_NotFoundWithSameWording) {
  const Offer o{kInfotainment, Rights::Of(kR)};
  auto s = ExpectRejected(C::kNotFound, [&] {
    return broker_->Share(kDisplay, BufferId(0x1f), {&o, 1});
  });
  EXPECT_EQ(s.message(), "vm 2 owns no buffer 0x1f");
}

TEST_F(ShareTest, AlreadyShared_FailedPrecondition) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  MustShare(kDecrypt, a.id, kDisplay, kR);
  const Offer o{kCamera, Rights::Of(kR)};
  auto s = ExpectRejected(C::kFailedPrecondition, [&] {
    return broker_->Share(kDecrypt, a.id, {&o, 1});
  });
  EXPECT_EQ(s.message(), absl::StrCat(BufferName(a.id), " is shared with vm 2; reclaim it first"));
}

TEST_F(ShareTest, NoReceivers_InvalidArgument) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  auto s = ExpectRejected(C::kInvalidArgument, [&] { return broker_->Share(kDecrypt, a.id, {}); });
  EXPECT_THAT(s.message(), HasSubstr("names no receivers"));
}

TEST_F(ShareTest, TooManyReceivers_InvalidArgument) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const std::vector<Offer> to = {{kDisplay, Rights::Of(kR)},
                                 {kInfotainment, Rights::Of(kR)},
                                 {kCamera, Rights::Of(kR)},
                                 {VmId(5), Rights::Of(kR)}};
  auto s = ExpectRejected(C::kInvalidArgument, [&] { return broker_->Share(kDecrypt, a.id, to); });
  EXPECT_THAT(s.message(), HasSubstr("names 4 receivers; the limit is 3"));
}

TEST_F(ShareTest, ToItself_InvalidArgument) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Offer o{kDecrypt, Rights::Of(kR)};
  auto s = ExpectRejected(C::kInvalidArgument, [&] {
    return broker_->Share(kDecrypt, a.id, {&o, 1});
  });
  EXPECT_THAT(s.message(), HasSubstr("to itself"));
}

TEST_F(ShareTest, DuplicateReceiver_InvalidArgument) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const std::vector<Offer> to = {{kDisplay, Rights::Of(kR)}, {kDisplay, Rights::Of(kR | kW)}};
  auto s = ExpectRejected(C::kInvalidArgument, [&] { return broker_->Share(kDecrypt, a.id, to); });
  EXPECT_THAT(s.message(), HasSubstr("names vm 2 twice"));
}

TEST_F(ShareTest, UnknownReceiver_NotFound) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Offer o{kUnknownVm, Rights::Of(kR)};
  auto s = ExpectRejected(C::kNotFound, [&] { return broker_->Share(kDecrypt, a.id, {&o, 1}); });
  EXPECT_EQ(s.message(), "vm 99 is not a configured VM");
}

TEST_F(ShareTest, EmptyRights_InvalidArgument) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Offer o{kDisplay, Rights::Of(kC)};
  auto s = ExpectRejected(C::kInvalidArgument, [&] {
    return broker_->Share(kDecrypt, a.id, {&o, 1});
  });
  EXPECT_THAT(s.message(), HasSubstr("neither read nor write"));
}

TEST_F(ShareTest, RightsBeyondOwnersOwn_PermissionDenied) {
  const Allocation a = MustAlloc(kCamera, "general");  // camera holds read+cpu-map there
  const Offer o{kDisplay, Rights::Of(kR | kW)};
  auto s = ExpectRejected(C::kPermissionDenied, [&] {
    return broker_->Share(kCamera, a.id, {&o, 1});
  });
  EXPECT_EQ(s.message(), absl::StrCat("vm 4 holds read+cpu-map on ", BufferName(a.id),
                                      " and cannot offer read+write"));
}

TEST_F(ShareTest, RightsBeyondReceiversCeiling_PermissionDenied) {
  const Allocation a = MustAlloc(kDecrypt, "secure-video");
  const Offer o{kDisplay, Rights::Of(kR | kW | kC)};
  auto s = ExpectRejected(C::kPermissionDenied, [&] {
    return broker_->Share(kDecrypt, a.id, {&o, 1});
  });
  EXPECT_EQ(s.message(),
            "vm 2 may hold at most read+cpu-map on heap 'secure-video', not read+write+cpu-map");
}

TEST_F(ShareTest, ReceiverNotOnHeap_PermissionDenied) {
  const Allocation a = MustAlloc(kDecrypt, "secure-video");
  const Offer o{kInfotainment, Rights::Of(kR)};
  auto s = ExpectRejected(C::kPermissionDenied, [&] {
    return broker_->Share(kDecrypt, a.id, {&o, 1});
  });
  EXPECT_EQ(s.message(), "vm 3 may not hold buffers of heap 'secure-video'");
}

TEST_F(ShareTest, CpuMapOnDeviceOnlyHeap_PermissionDenied) {
  const Allocation a = MustAlloc(kDecrypt, "device-only");
  const Offer o{kCamera, Rights::Of(kR | kC)};
  auto s = ExpectRejected(C::kPermissionDenied, [&] {
    return broker_->Share(kDecrypt, a.id, {&o, 1});
  });
  EXPECT_THAT(s.message(), HasSubstr("device-only; cpu-map cannot be granted"));
}

TEST_F(ShareTest, DeviceOnlyShare_ReachesOnlyTheReceiversInitiators) {
  const Allocation a = MustAlloc(kDecrypt, "device-only");
  const Handle h = MustShare(kDecrypt, a.id, kCamera, kR);
  absl::StatusOr<Retrieval> r = broker_->Retrieve(kCamera, h);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->mapped_at.has_value());
  EXPECT_EQ(CpuAccess(kCamera, a.pages), Access::kNone);
  EXPECT_EQ(DeviceAccess(kIsp, a.pages), Access::kRead);
  EXPECT_EQ(DeviceAccess(kDecoder, a.pages), Access::kReadWrite);
}

using LendTest = BrokerTest;

TEST_F(LendTest, OwnerLosesAccessUntilReclaim) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustLend(kDecrypt, a.id, kDisplay, kR | kW | kC);
  EXPECT_EQ(CpuAccess(kDecrypt, a.pages), Access::kNone);
  EXPECT_EQ(DeviceAccess(kDecoder, a.pages), Access::kNone);
  ASSERT_TRUE(broker_->Retrieve(kDisplay, h).ok());
  EXPECT_EQ(CpuAccess(kDisplay, a.pages), Access::kReadWrite);
  ASSERT_TRUE(broker_->Relinquish(kDisplay, h).ok());
  EXPECT_EQ(CpuAccess(kDisplay, a.pages), Access::kNone);
  EXPECT_EQ(CpuAccess(kDecrypt, a.pages), Access::kNone);  // still lent
  ASSERT_TRUE(broker_->Reclaim(kDecrypt, a.id).ok());
  EXPECT_EQ(CpuAccess(kDecrypt, a.pages), Access::kReadWrite);
  EXPECT_EQ(DeviceAccess(kDecoder, a.pages), Access::kReadWrite);
}

TEST_F(LendTest, FreeWhileLent_FailedPreconditionWithTheDocumentedMessage) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  MustLend(kDecrypt, a.id, kDisplay, kR);
  auto s = ExpectRejected(C::kFailedPrecondition, [&] { return broker_->Free(kDecrypt, a.id); });
  EXPECT_EQ(s.ToString(), absl::StrCat("FAILED_PRECONDITION: ", BufferName(a.id),
                                       " is lent to vm 2; reclaim it first"));
}

using DonateTest = BrokerTest;

TEST_F(DonateTest, RetrieveMovesOwnershipQuotaAndAccess) {
  const Allocation a = MustAlloc(kDecrypt, "general", 0x2000);
  absl::StatusOr<Handle> h = broker_->Donate(kDecrypt, a.id, kDisplay);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(CpuAccess(kDecrypt, a.pages), Access::kNone);  // donor loses access at once
  absl::StatusOr<Retrieval> r = broker_->Retrieve(kDisplay, *h);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->kind, TxnKind::kDonate);
  EXPECT_EQ(r->buffer, a.id);
  EXPECT_EQ(r->rights, Rights::Of(kR | kW | kC));  // display's ceiling on 'general'
  EXPECT_EQ(CpuAccess(kDisplay, a.pages), Access::kReadWrite);
  EXPECT_EQ(broker_->quotas().vm_bytes(kDecrypt), 0u);
  EXPECT_EQ(broker_->quotas().vm_bytes(kDisplay), 0x2000u);
  EXPECT_THAT(Events(kDecrypt), ElementsAre(::testing::Field(&Event::kind, EventKind::kDonated)));
  // The old owner can no longer touch it; the new one can free it.
  ExpectRejected(C::kNotFound, [&] { return broker_->Free(kDecrypt, a.id); });
  EXPECT_TRUE(broker_->Free(kDisplay, a.id).ok());
}

TEST_F(DonateTest, DonorMayReclaimBeforeRetrieval) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  absl::StatusOr<Handle> h = broker_->Donate(kDecrypt, a.id, kDisplay);
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(broker_->Reclaim(kDecrypt, a.id).ok());
  EXPECT_EQ(CpuAccess(kDecrypt, a.pages), Access::kReadWrite);
  ExpectRejected(C::kNotFound, [&] { return broker_->Retrieve(kDisplay, *h); });
}

TEST_F(DonateTest, ReceiverOverQuota_RetrieveResourceExhausted) {
  MustAlloc(kInfotainment, "general", 32 * KiB);  // at its 'general' quota
  const Allocation a = MustAlloc(kDecrypt, "general", 0x1000);
  absl::StatusOr<Handle> h = broker_->Donate(kDecrypt, a.id, kInfotainment);
  ASSERT_TRUE(h.ok());
  ExpectRejected(C::kResourceExhausted, [&] { return broker_->Retrieve(kInfotainment, *h); });
}

TEST_F(DonateTest, Relinquish_FailedPrecondition) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  absl::StatusOr<Handle> h = broker_->Donate(kDecrypt, a.id, kDisplay);
  ASSERT_TRUE(h.ok());
  auto s =
      ExpectRejected(C::kFailedPrecondition, [&] { return broker_->Relinquish(kDisplay, *h); });
  EXPECT_THAT(s.message(), HasSubstr("a donation is retrieved or reclaimed, not relinquished"));
}

TEST_F(DonateTest, ReceiverNotOnHeap_PermissionDenied) {
  const Allocation a = MustAlloc(kDecrypt, "secure-video");
  ExpectRejected(C::kPermissionDenied,
                 [&] { return broker_->Donate(kDecrypt, a.id, kInfotainment); });
}

// ---- RETRIEVE / RELINQUISH ---------------------------------------------------

using RetrieveTest = BrokerTest;

TEST_F(RetrieveTest, VmNotNamed_NotFoundEvenWithTheHandle) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  auto s = ExpectRejected(C::kNotFound, [&] { return broker_->Retrieve(kInfotainment, h); });
  EXPECT_EQ(s.message(), absl::StrCat(HandleName(h), " is not offered to vm 3"));
  EXPECT_EQ(CpuAccess(kInfotainment, a.pages), Access::kNone);
}

TEST_F(RetrieveTest, ForgedHandle_NotFoundWithTheSameWording) {
  auto s =
      ExpectRejected(C::kNotFound, [&] { return broker_->Retrieve(kInfotainment, Handle(0x42)); });
  EXPECT_EQ(s.message(), "handle 0x42 is not offered to vm 3");
}

TEST_F(RetrieveTest, Twice_FailedPrecondition) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  ASSERT_TRUE(broker_->Retrieve(kDisplay, h).ok());
  auto s = ExpectRejected(C::kFailedPrecondition, [&] { return broker_->Retrieve(kDisplay, h); });
  EXPECT_EQ(s.message(), absl::StrCat(HandleName(h), ": vm 2 has already retrieved it"));
}

TEST_F(RetrieveTest, AfterRelinquish_MayRetrieveAgain) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  ASSERT_TRUE(broker_->Retrieve(kDisplay, h).ok());
  ASSERT_TRUE(broker_->Relinquish(kDisplay, h).ok());
  EXPECT_TRUE(broker_->Retrieve(kDisplay, h).ok());
}

TEST_F(RetrieveTest, StaleHandleAfterReclaim_NotFound) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  ASSERT_TRUE(broker_->Reclaim(kDecrypt, a.id).ok());
  ExpectRejected(C::kNotFound, [&] { return broker_->Retrieve(kDisplay, h); });
  // A new share gets a new handle; the old one stays dead.
  const Handle h2 = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  EXPECT_NE(h, h2);
  ExpectRejected(C::kNotFound, [&] { return broker_->Retrieve(kDisplay, h); });
}

TEST_F(RetrieveTest, OwnerCannotRetrieveItsOwnOffer) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  ExpectRejected(C::kNotFound, [&] { return broker_->Retrieve(kDecrypt, h); });
}

using RelinquishTest = BrokerTest;

TEST_F(RelinquishTest, NotRetrieved_FailedPrecondition) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  auto s = ExpectRejected(C::kFailedPrecondition, [&] { return broker_->Relinquish(kDisplay, h); });
  EXPECT_EQ(s.message(), absl::StrCat(HandleName(h), ": vm 2 has not retrieved it"));
}

TEST_F(RelinquishTest, NotNamed_NotFound) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  ExpectRejected(C::kNotFound, [&] { return broker_->Relinquish(kCamera, h); });
}

TEST_F(RelinquishTest, UnmapsAndNotifiesOwner) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  ASSERT_TRUE(broker_->Retrieve(kDisplay, h).ok());
  Events(kDecrypt);
  ASSERT_TRUE(broker_->Relinquish(kDisplay, h).ok());
  EXPECT_EQ(CpuAccess(kDisplay, a.pages), Access::kNone);
  EXPECT_EQ(DeviceAccess(kDisplayCtrl, a.pages), Access::kNone);
  std::vector<Event> e = Events(kDecrypt);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, EventKind::kRelinquished);
  EXPECT_EQ(e[0].reason, EventReason::kRequest);
  EXPECT_EQ(e[0].peer, kDisplay);
}

// ---- RECLAIM / FREE ------------------------------------------------------------

using ReclaimTest = BrokerTest;

TEST_F(ReclaimTest, WhileABorrowerHoldsIt_FailedPrecondition) {
  const Allocation a = MustAlloc(kDecrypt, "secure-video");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  ASSERT_TRUE(broker_->Retrieve(kDisplay, h).ok());
  auto s = ExpectRejected(C::kFailedPrecondition, [&] { return broker_->Reclaim(kDecrypt, a.id); });
  EXPECT_EQ(s.message(),
            absl::StrCat(BufferName(a.id), ": vm 2 still holds it; wait for it to relinquish"));
}

TEST_F(ReclaimTest, RevokeWherePolicyForbids_PermissionDenied) {
  const Allocation a = MustAlloc(kDecrypt, "secure-video");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  ASSERT_TRUE(broker_->Retrieve(kDisplay, h).ok());
  auto s = ExpectRejected(C::kPermissionDenied,
                          [&] { return broker_->Reclaim(kDecrypt, a.id, ReclaimMode::kRevoke); });
  EXPECT_THAT(s.message(), HasSubstr("'secure-video' does not let owners revoke"));
}

TEST_F(ReclaimTest, RevokeWherePolicyAllows_UnmapsBorrowersAndTellsThem) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  ASSERT_TRUE(broker_->Retrieve(kDisplay, h).ok());
  Events(kDisplay);
  ASSERT_TRUE(broker_->Reclaim(kDecrypt, a.id, ReclaimMode::kRevoke).ok());
  EXPECT_EQ(CpuAccess(kDisplay, a.pages), Access::kNone);
  EXPECT_EQ(DeviceAccess(kDisplayCtrl, a.pages), Access::kNone);
  std::vector<Event> e = Events(kDisplay);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, EventKind::kRevoked);
  EXPECT_EQ(e[0].handle, h);
}

TEST_F(ReclaimTest, WithdrawsOffersNotYetRetrieved) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const std::vector<Offer> to = {{kDisplay, Rights::Of(kR)}, {kCamera, Rights::Of(kR)}};
  absl::StatusOr<Handle> h = broker_->Share(kDecrypt, a.id, to);
  ASSERT_TRUE(h.ok());
  Events(kDisplay);
  Events(kCamera);
  ASSERT_TRUE(broker_->Reclaim(kDecrypt, a.id).ok());
  EXPECT_EQ(Events(kDisplay).size(), 1u);
  EXPECT_EQ(Events(kCamera).size(), 1u);
}

TEST_F(ReclaimTest, NothingOpen_FailedPrecondition) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  auto s = ExpectRejected(C::kFailedPrecondition, [&] { return broker_->Reclaim(kDecrypt, a.id); });
  EXPECT_EQ(s.message(),
            absl::StrCat(BufferName(a.id), " is owned by vm 1; there is nothing to reclaim"));
}

TEST_F(ReclaimTest, NotOwner_NotFound) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustLend(kDecrypt, a.id, kDisplay, kR);
  (void)h;
  ExpectRejected(C::kNotFound, [&] { return broker_->Reclaim(kDisplay, a.id); });
}

using FreeTest = BrokerTest;

TEST_F(FreeTest, ScrubsBeforeTheNextOwnerSeesThePages) {
  const Allocation a = MustAlloc(kDecrypt, "general", 128 * KiB);
  EXPECT_FALSE(fakes_.memory.IsClean(a.pages));  // the owner could write
  ASSERT_TRUE(broker_->Free(kDecrypt, a.id).ok());
  EXPECT_TRUE(fakes_.memory.IsClean(a.pages));
  EXPECT_EQ(CpuAccess(kDecrypt, a.pages), Access::kNone);
  EXPECT_EQ(DeviceAccess(kDecoder, a.pages), Access::kNone);
  EXPECT_EQ(broker_->quotas().vm_bytes(kDecrypt), 0u);
  // The whole carve-out, so certainly the freed pages, to another VM.
  const Allocation b = MustAlloc(kCamera, "general", 384 * KiB);
  EXPECT_TRUE(b.pages.Contains(a.pages));
}

TEST_F(FreeTest, WhileShared_FailedPrecondition) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  MustShare(kDecrypt, a.id, kDisplay, kR);
  auto s = ExpectRejected(C::kFailedPrecondition, [&] { return broker_->Free(kDecrypt, a.id); });
  EXPECT_EQ(s.message(), absl::StrCat(BufferName(a.id), " is shared with vm 2; reclaim it first"));
}

TEST_F(FreeTest, NotOwner_NotFound) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  ExpectRejected(C::kNotFound, [&] { return broker_->Free(kDisplay, a.id); });
  ExpectRejected(C::kNotFound, [&] { return broker_->Free(kUnknownVm, a.id); });
}

TEST_F(FreeTest, Twice_NotFound) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  ASSERT_TRUE(broker_->Free(kDecrypt, a.id).ok());
  ExpectRejected(C::kNotFound, [&] { return broker_->Free(kDecrypt, a.id); });
}

// ---- VM teardown ---------------------------------------------------------------

using TeardownTest = BrokerTest;

TEST_F(TeardownTest, OwnerGone_RevokesBorrowersScrubsAndFrees) {
  const Allocation a = MustAlloc(kDecrypt, "secure-video", 0x8000);
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  ASSERT_TRUE(broker_->Retrieve(kDisplay, h).ok());
  Events(kDisplay);
  const uint64_t free_before = broker_->pool_stats()[0].stats.free.value();
  EXPECT_TRUE(broker_->TeardownVm(kDecrypt).ok());
  EXPECT_EQ(CpuAccess(kDisplay, a.pages), Access::kNone);
  EXPECT_EQ(DeviceAccess(kDisplayCtrl, a.pages), Access::kNone);
  EXPECT_EQ(CpuAccess(kDecrypt, a.pages), Access::kNone);
  EXPECT_TRUE(fakes_.memory.IsClean(a.pages));
  EXPECT_EQ(broker_->pool_stats()[0].stats.free.value(), free_before + 8);
  EXPECT_EQ(broker_->ledger().buffer_count(), 0u);
  std::vector<Event> e = Events(kDisplay);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, EventKind::kRevoked);
  EXPECT_EQ(e[0].reason, EventReason::kPeerGone);
  ExpectRejected(C::kNotFound, [&] { return broker_->Relinquish(kDisplay, h); });
}

TEST_F(TeardownTest, BorrowerGone_UnmapsAndTellsOwner) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustLend(kDecrypt, a.id, kDisplay, kR | kW | kC);
  ASSERT_TRUE(broker_->Retrieve(kDisplay, h).ok());
  Events(kDecrypt);
  EXPECT_TRUE(broker_->TeardownVm(kDisplay).ok());
  EXPECT_EQ(CpuAccess(kDisplay, a.pages), Access::kNone);
  std::vector<Event> e = Events(kDecrypt);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, EventKind::kRelinquished);
  EXPECT_EQ(e[0].reason, EventReason::kPeerGone);
  // The lend is still open (with nobody left); the owner reclaims.
  EXPECT_TRUE(broker_->Reclaim(kDecrypt, a.id).ok());
  EXPECT_EQ(CpuAccess(kDecrypt, a.pages), Access::kReadWrite);
}

TEST_F(TeardownTest, ComesBackWithNothing) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  const Handle h = MustShare(kDecrypt, a.id, kDisplay, kR | kC);
  EXPECT_TRUE(broker_->TeardownVm(kDisplay).ok());
  ExpectRejected(C::kNotFound, [&] { return broker_->Retrieve(kDisplay, h); });
}

TEST_F(TeardownTest, IsIdempotentAndIgnoresUnknownVms) {
  MustAlloc(kDecrypt, "general");
  EXPECT_TRUE(broker_->TeardownVm(kDecrypt).ok());
  const std::string dump = broker_->DebugDump();
  EXPECT_TRUE(broker_->TeardownVm(kDecrypt).ok());
  EXPECT_TRUE(broker_->TeardownVm(kUnknownVm).ok());
  EXPECT_EQ(broker_->DebugDump(), dump);
}

TEST_F(TeardownTest, DropsTheDeadVmsQueuedEvents) {
  const Allocation a = MustAlloc(kDecrypt, "general");
  MustShare(kDecrypt, a.id, kDisplay, kR);
  EXPECT_EQ(broker_->events(kDisplay)->size(), 1u);
  EXPECT_TRUE(broker_->TeardownVm(kDisplay).ok());
  EXPECT_EQ(broker_->events(kDisplay)->size(), 0u);
}

}  // namespace
}  // namespace rmem::testing

// Backend failures at every point: for each request that drives fallible
// backend calls (stage-2 map, firewall grant), the k-th call is made to fail
// for every k. The request must fail with the backend's code and a message
// saying what the broker was doing, and leave the broker's state, every
// programmed access and the pool exactly as before (pages it touched are
// scrubbed again). The call after the last fallible one must succeed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "tests/broker/broker_fixture.h"

namespace rmem::testing {
namespace {

using ::testing::HasSubstr;

// The small platform, with the decrypt VM owning two initiators, so that a
// failure can strike between two firewall grants.
TestPlatform TwoDecoders() {
  TestPlatform p = SmallPlatform();
  p.policy.initiators.push_back({InitiatorId(14), "video-decoder-2", kDecrypt});
  return p;
}

class FailureTest : public BrokerTest {
 protected:
  FailureTest() : BrokerTest(TwoDecoders()) {}

  // Prepares state with `setup`, then runs `request` with the k-th fallible
  // call failing, for k = 1, 2, ... until the request succeeds. Returns the
  // number of fallible calls the request makes.
  int FailEveryCall(const std::function<void()>& setup,
                    const std::function<absl::Status()>& request, const char* doing) {
    setup();
    for (int k = 1; k < 20; ++k) {
      const std::string before = broker_->DebugDump();
      const FakeMemory::Counters counters = fakes_.memory.counters();
      const uint64_t calls_before = fakes_.memory.fallible_calls();
      fakes_.memory.FailNthCall(k, absl::UnavailableError("backend down"));
      const absl::Status s = request();
      fakes_.memory.ClearFailures();
      if (s.ok()) {
        EXPECT_EQ(fakes_.memory.fallible_calls() - calls_before, static_cast<uint64_t>(k - 1))
            << "the request succeeded although call " << k << " was to fail";
        return k - 1;
      }
      EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
      EXPECT_THAT(std::string(s.message()), HasSubstr(doing));
      EXPECT_THAT(std::string(s.message()), HasSubstr("backend down"));
      EXPECT_EQ(broker_->DebugDump(), before) << "call " << k;
      EXPECT_EQ(fakes_.memory.counters().grants - counters.grants,
                fakes_.memory.counters().revokes - counters.revokes)
          << "call " << k << " left a grant behind";
      for (const PoolStats& pool : broker_->pool_stats()) {
        // Free pages are clean, whatever the failed request touched.
        for (uint64_t p = pool.pages.first().value(); p < pool.pages.end().value(); ++p) {
          const Pfn pfn(p);
          bool in_buffer = false;
          for (const auto& [id, b] : broker_->ledger().buffers())
            in_buffer |= b.pages.Contains(pfn);
          if (!in_buffer) {
            EXPECT_TRUE(fakes_.memory.WritersOf(pfn).empty()) << "call " << k << " page " << p;
          }
        }
      }
    }
    ADD_FAILURE() << "the request never succeeded";
    return -1;
  }
};

TEST_F(FailureTest, Alloc_EveryBackendFailureRollsBack) {
  const int calls =
      FailEveryCall([] {}, [&] { return broker_->Alloc(kDecrypt, "general", 0x4000, 0).status(); },
                    "allocating from heap 'general'");
  EXPECT_EQ(calls, 3);  // stage-2 + two firewall grants
}

TEST_F(FailureTest, Alloc_DeviceOnly_FailsBetweenFirewallGrants) {
  const int calls = FailEveryCall(
      [] {}, [&] { return broker_->Alloc(kDecrypt, "device-only", 0x4000, 0).status(); },
      "granting initiator");
  EXPECT_EQ(calls, 2);  // no stage-2: two firewall grants
}

TEST_F(FailureTest, RetrieveOfShare_EveryBackendFailureRollsBack) {
  Handle h;
  const int calls = FailEveryCall(
      [&] { h = MustShare(kDecrypt, MustAlloc(kDecrypt, "general").id, kDisplay, kR | kC); },
      [&] { return broker_->Retrieve(kDisplay, h).status(); }, "retrieving handle");
  EXPECT_EQ(calls, 2);  // display's stage-2 + its display controller
}

TEST_F(FailureTest, RetrieveOfDonation_EveryBackendFailureLeavesOwnershipAlone) {
  Handle h;
  BufferId b;
  const int calls = FailEveryCall(
      [&] {
        b = MustAlloc(kDisplay, "general").id;
        h = *broker_->Donate(kDisplay, b, kDecrypt);
      },
      [&] { return broker_->Retrieve(kDecrypt, h).status(); }, "retrieving handle");
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(broker_->ledger().FindBuffer(b)->owner, kDecrypt);
}

TEST_F(FailureTest, ReclaimOfLend_EveryBackendFailureKeepsTheLend) {
  BufferId b;
  const int calls = FailEveryCall(
      [&] {
        b = MustAlloc(kDecrypt, "general").id;
        MustLend(kDecrypt, b, kDisplay, kR | kC);
      },
      [&] { return broker_->Reclaim(kDecrypt, b); }, "reclaiming buffer");
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(broker_->ledger().FindBuffer(b)->state, BufferState::kOwned);
}

TEST_F(FailureTest, ReclaimWithRevoke_FailureLeavesBorrowersMapped) {
  BufferId b;
  PageRange pages;
  FailEveryCall(
      [&] {
        const Allocation a = MustAlloc(kDecrypt, "general");
        b = a.id;
        pages = a.pages;
        const Handle h = MustLend(kDecrypt, b, kDisplay, kR | kC);
        RMEM_CHECK_OK(broker_->Retrieve(kDisplay, h));
      },
      [&] {
        // Until it succeeds, the borrower must still hold its mapping.
        EXPECT_EQ(CpuAccess(kDisplay, pages), Access::kRead);
        return broker_->Reclaim(kDecrypt, b, ReclaimMode::kRevoke);
      },
      "reclaiming buffer");
  EXPECT_EQ(CpuAccess(kDisplay, pages), Access::kNone);
  EXPECT_EQ(CpuAccess(kDecrypt, pages), Access::kReadWrite);
}

TEST_F(FailureTest, NullBackends_RefuseWithUnimplemented) {
  NullStage2 stage2;
  NullFirewall firewall;
  const TestPlatform p = SmallPlatform();
  auto b = Broker::Create(p.carveouts, p.policy, Backends{&stage2, &firewall, &fakes_.scrubber});
  ASSERT_TRUE(b.ok());
  // The firewall is asked first (its refusal is the common one).
  const absl::Status s = (*b)->Alloc(kDecrypt, "general", 0x1000, 0).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(s.message()), HasSubstr("no firewall backend"));
  EXPECT_EQ((*b)->ledger().buffer_count(), 0u);
  EXPECT_EQ((*b)->pool_stats()[0].stats.free, (*b)->pool_stats()[0].stats.total);

  // A working firewall and no stage-2: the initiators' grants are undone.
  auto c = Broker::Create(p.carveouts, p.policy,
                          Backends{&stage2, &fakes_.firewall, &fakes_.scrubber});
  ASSERT_TRUE(c.ok());
  const absl::Status t = (*c)->Alloc(kDecrypt, "general", 0x1000, 0).status();
  EXPECT_EQ(t.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(t.message()), HasSubstr("no stage-2 backend"));
  EXPECT_TRUE(fakes_.memory.parties().empty()) << "nothing reachable after the refusal";
  EXPECT_EQ((*c)->ledger().buffer_count(), 0u);
}

}  // namespace
}  // namespace rmem::testing

// The TZC-400 driver against the register-level model: probe, one region
// per granted range, refusals that write nothing, rollback when a register
// does not take its value, and the state between any two register writes.
#include "broker/backend/firewall/tzc400_firewall.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "broker/backend/firewall/tzc400_model.h"
#include "broker/backend/firewall/tzc400_registers.h"

namespace rmem {
namespace {

using namespace tzc400;  // NOLINT
using ::testing::HasSubstr;

constexpr uint64_t kVideo = 0x70000000, kVideoSize = 64 << 20;
constexpr uint64_t kUi = 0x74000000, kUiSize = 16 << 20;
constexpr uint64_t kFrame = 8 << 20;
const InitiatorId kDecoder(1), kDisplay(2), kUnknown(9);
constexpr uint32_t kDecoderId = 4, kDisplayId = 5, kOtherId = 6;

PageRange Range(uint64_t base, uint64_t size) {
  return *PageRange::FromBytes(PhysAddr(base), size);
}

Access Allowed(const Tzc400Model& m, uint32_t id, uint64_t address) {
  Access a = Access::kNone;
  if (m.Permits({.address = address, .write = false, .id = id})) a = a | Access::kRead;
  if (m.Permits({.address = address, .write = true, .id = id})) a = a | Access::kWrite;
  return a;
}

class Tzc400FirewallTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<Tzc400Firewall>> Make() {
    return Tzc400Firewall::Create(
        "tzc@2a4a0000", &model_,
        {{"secure-video", Range(kVideo, kVideoSize)}, {"secure-ui", Range(kUi, kUiSize)}}, 1,
        {{kDecoder, kDecoderId}, {kDisplay, kDisplayId}});
  }
  void SetUp() override {
    auto fw = Make();
    ASSERT_TRUE(fw.ok()) << fw.status();
    fw_ = *std::move(fw);
  }
  Tzc400Model model_;
  std::unique_ptr<Tzc400Firewall> fw_;
};

TEST_F(Tzc400FirewallTest, ProbeLeavesTheCarveoutsToAClosedRegion0AndOpensTheGates) {
  EXPECT_EQ(fw_->grant_region_count(), 8u);  // regions 1..8
  for (uint32_t r = 1; r <= 8; ++r) {
    EXPECT_EQ(model_.Read32(RegionAttributes(r)) & kAttrFilterEnableMask, 0u) << "region " << r;
  }
  EXPECT_EQ((model_.Read32(kGateKeeper) >> kGateOpenStatusShift) & 1, 1u);
  EXPECT_EQ(model_.Read32(kAction), kActionHighDecerr);
  for (uint32_t id : {kDecoderId, kDisplayId, kOtherId}) {
    EXPECT_EQ(Allowed(model_, id, kVideo), Access::kNone);
    EXPECT_EQ(Allowed(model_, id, kUi + kUiSize - 1), Access::kNone);
  }
}

TEST_F(Tzc400FirewallTest, AGrantIsOneRegionExactlyOverTheRange) {
  const PageRange frame = Range(kVideo + kFrame, kFrame);
  const uint64_t writes = fw_->register_writes();
  ASSERT_TRUE(fw_->Grant(kDecoder, frame, Access::kReadWrite).ok());
  EXPECT_LE(fw_->register_writes() - writes, 6u);  // base, top (low/high), ids, attributes
  EXPECT_EQ(Allowed(model_, kDecoderId, frame.base().value()), Access::kReadWrite);
  EXPECT_EQ(Allowed(model_, kDecoderId, frame.end().addr().value() - 1), Access::kReadWrite);
  EXPECT_EQ(Allowed(model_, kDecoderId, frame.base().value() - 1), Access::kNone);
  EXPECT_EQ(Allowed(model_, kDecoderId, frame.end().addr().value()), Access::kNone);
  EXPECT_EQ(Allowed(model_, kDisplayId, frame.base().value()), Access::kNone);

  // A second initiator on the same range shares the region: one write.
  const uint64_t before = fw_->register_writes();
  ASSERT_TRUE(fw_->Grant(kDisplay, frame, Access::kRead).ok());
  EXPECT_EQ(fw_->register_writes() - before, 1u);
  EXPECT_EQ(Allowed(model_, kDisplayId, frame.base().value()), Access::kRead);
  ASSERT_EQ(fw_->regions().size(), 1u);
  EXPECT_EQ(fw_->regions()[0].grants, 2u);

  // Revokes: one write each; the last disables the region.
  uint64_t w = fw_->register_writes();
  fw_->Revoke(kDisplay, frame);
  EXPECT_EQ(fw_->register_writes() - w, 1u);
  EXPECT_EQ(Allowed(model_, kDisplayId, frame.base().value()), Access::kNone);
  EXPECT_EQ(Allowed(model_, kDecoderId, frame.base().value()), Access::kReadWrite);
  w = fw_->register_writes();
  fw_->Revoke(kDecoder, frame);
  EXPECT_EQ(fw_->register_writes() - w, 1u);
  EXPECT_EQ(Allowed(model_, kDecoderId, frame.base().value()), Access::kNone);
  EXPECT_TRUE(fw_->regions().empty());
}

TEST_F(Tzc400FirewallTest, RefusalsWriteNothing) {
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(fw_->Grant(kDecoder, Range(kVideo + i * kFrame, kFrame), Access::kReadWrite).ok());
  }
  const uint64_t writes = model_.writes();
  absl::Status full = fw_->Grant(kDecoder, Range(kUi, kFrame), Access::kReadWrite);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("all 8 grant regions are in use"));
  // Partly over a granted range: no region can say that without widening.
  absl::Status partial =
      fw_->Grant(kDisplay, Range(kVideo + kFrame / 2, kFrame), Access::kRead);
  EXPECT_EQ(partial.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(partial.message(), HasSubstr("without widening"));
  EXPECT_EQ(fw_->Grant(kDecoder, Range(0x40000000, kFrame), Access::kRead).code(),
            absl::StatusCode::kInvalidArgument);
  // Straddling the two carve-outs (adjacent): not inside one.
  EXPECT_EQ(fw_->Grant(kDecoder, Range(kUi - 4096, 8192), Access::kRead).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fw_->Grant(kUnknown, Range(kVideo, kFrame), Access::kRead).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(model_.writes(), writes);
  // Space again once one range is gone.
  fw_->Revoke(kDecoder, Range(kVideo + 2 * kFrame, kFrame));
  EXPECT_TRUE(fw_->Grant(kDisplay, Range(kUi, kFrame), Access::kRead).ok());
}

TEST_F(Tzc400FirewallTest, ARegisterThatDoesNotTakeItsValueRollsTheGrantBack) {
  const PageRange frame = Range(kVideo, kFrame);
  // Region 1 is the first grant region: its id bitmaps are stuck.
  model_.DropWritesTo(RegionIdAccess(1));
  absl::Status s = fw_->Grant(kDecoder, frame, Access::kReadWrite);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("region 1"));
  EXPECT_EQ(Allowed(model_, kDecoderId, frame.base().value()), Access::kNone);
  EXPECT_EQ(model_.Read32(RegionAttributes(1)) & kAttrFilterEnableMask, 0u);
  EXPECT_TRUE(fw_->regions().empty());
  model_.ClearDroppedWrites();
  ASSERT_TRUE(fw_->Grant(kDecoder, frame, Access::kReadWrite).ok());
  // Widening a live range whose bitmap then sticks: back to what it was.
  model_.DropWritesTo(RegionIdAccess(1));
  EXPECT_EQ(fw_->Grant(kDisplay, frame, Access::kRead).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Allowed(model_, kDisplayId, frame.base().value()), Access::kNone);
  EXPECT_EQ(Allowed(model_, kDecoderId, frame.base().value()), Access::kReadWrite);
  EXPECT_EQ(fw_->regions()[0].grants, 1u);
}

TEST_F(Tzc400FirewallTest, BetweenAnyTwoWritesNobodyHoldsMoreThanBeforeOrAfterNorLessThanBoth) {
  const PageRange a = Range(kVideo, kFrame), b = Range(kVideo + kFrame, kFrame);
  ASSERT_TRUE(fw_->Grant(kDecoder, a, Access::kReadWrite).ok());
  // Probe points: both ranges' edges and the pages around them.
  const std::vector<uint64_t> points = {a.base().value(), a.end().addr().value() - 1,
                                        b.base().value(), b.end().addr().value() - 1,
                                        b.end().addr().value()};
  auto state = [&] {
    std::vector<Access> s;
    for (uint32_t id : {kDecoderId, kDisplayId, kOtherId}) {
      for (uint64_t p : points) s.push_back(Allowed(model_, id, p));
    }
    return s;
  };
  std::vector<std::vector<Access>> seen;
  model_.set_write_observer([&](uint32_t, uint32_t) { seen.push_back(state()); });
  const std::vector<std::function<void()>> steps = {
      [&] { ASSERT_TRUE(fw_->Grant(kDisplay, a, Access::kRead).ok()); },
      [&] { ASSERT_TRUE(fw_->Grant(kDecoder, b, Access::kReadWrite).ok()); },
      [&] { fw_->Revoke(kDisplay, a); },
      [&] { fw_->Revoke(kDecoder, a); },
      [&] { ASSERT_TRUE(fw_->Grant(kDisplay, b, Access::kRead).ok()); },
      [&] { fw_->Revoke(kDecoder, b); },
  };
  for (const auto& step : steps) {
    const std::vector<Access> before = state();
    seen.clear();
    step();
    const std::vector<Access> after = state();
    ASSERT_FALSE(seen.empty());
    for (const std::vector<Access>& mid : seen) {
      for (size_t i = 0; i < mid.size(); ++i) {
        EXPECT_TRUE(Covers(before[i] | after[i], mid[i])) << "point " << i;
        EXPECT_TRUE(Covers(mid[i], before[i] & after[i])) << "point " << i;
      }
    }
  }
}

TEST(Tzc400Firewall, GrantRegionsKeepRegion0sSecureAccess) {
  // Firmware lets the Secure world read everything (region 0's s_rd_en).
  Tzc400Model model;
  model.Write32(RegionAttributes(0), kAttrSecureReadEnable);
  auto fw = Tzc400Firewall::Create("tzc", &model, {{"secure-video", Range(kVideo, kVideoSize)}}, 1,
                                   {{kDecoder, kDecoderId}});
  ASSERT_TRUE(fw.ok()) << fw.status();
  ASSERT_TRUE((*fw)->Grant(kDecoder, Range(kVideo, kFrame), Access::kWrite).ok());
  EXPECT_TRUE(model.Permits({.address = kVideo, .write = false, .secure = true}));
  EXPECT_FALSE(model.Permits({.address = kVideo, .write = true, .secure = true}));
  EXPECT_EQ(Allowed(model, kDecoderId, kVideo), Access::kWrite);
}

TEST(Tzc400FirewallProbe, RefusesWhatItCannotGuard) {
  const std::vector<Tzc400Firewall::Guarded> video = {{"v", Range(kVideo, kVideoSize)}};
  {
    Tzc400Model model;
    EXPECT_EQ(Tzc400Firewall::Create("tzc", &model, video, 0, {}).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Tzc400Firewall::Create("tzc", &model, video, 9, {}).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Tzc400Firewall::Create("tzc", &model, video, 1, {{kDecoder, 16}}).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  {
    // Beyond a 32-bit controller's reach.
    Tzc400Model model(Tzc400Model::Options{.address_width = 32});
    EXPECT_EQ(
        Tzc400Firewall::Create("tzc", &model, {{"hi", Range(0x100000000, kFrame)}}, 1, {})
            .status()
            .code(),
        absl::StatusCode::kInvalidArgument);
  }
  {
    // Region 0 open to NSAID 3: ungranted carve-out pages would be open.
    Tzc400Model model;
    model.Write32(RegionIdAccess(0), IdAccess(1 << 3, 0));
    absl::Status s = Tzc400Firewall::Create("tzc", &model, video, 1, {}).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(s.message(), HasSubstr("region 0"));
  }
  {
    // Firmware's region (below rmemd's first) over part of the carve-out.
    Tzc400Model model;
    model.Write32(RegionBaseLow(1), kVideo);
    model.Write32(RegionTopLow(1), kVideo + kFrame - 1);
    model.Write32(RegionIdAccess(1), IdAccess(0xffff, 0xffff));
    model.Write32(RegionAttributes(1), 1);
    absl::Status s = Tzc400Firewall::Create("tzc", &model, video, 3, {}).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(s.message(), HasSubstr("region 1"));
  }
  {
    // Firmware's region elsewhere stays; rmemd's regions start at 3.
    Tzc400Model model;
    model.Write32(RegionBaseLow(1), 0x40000000);
    model.Write32(RegionTopLow(1), kVideo - 1);
    model.Write32(RegionIdAccess(1), IdAccess(0xffff, 0xffff));
    model.Write32(RegionAttributes(1), 1);
    auto fw = Tzc400Firewall::Create("tzc", &model, video, 3, {});
    ASSERT_TRUE(fw.ok()) << fw.status();
    EXPECT_EQ((*fw)->grant_region_count(), 6u);
    EXPECT_EQ(Allowed(model, kOtherId, 0x40000000), Access::kReadWrite);
    EXPECT_EQ(Allowed(model, kOtherId, kVideo), Access::kNone);
  }
  {
    // A grant region an earlier run left enabled is disabled at probe.
    Tzc400Model model;
    model.Write32(RegionBaseLow(4), kVideo);
    model.Write32(RegionTopLow(4), kVideo + kFrame - 1);
    model.Write32(RegionIdAccess(4), IdAccess(0xffff, 0xffff));
    model.Write32(RegionAttributes(4), 1);
    model.Write32(kGateKeeper, 1);
    EXPECT_EQ(Allowed(model, kOtherId, kVideo), Access::kReadWrite);
    ASSERT_TRUE(Tzc400Firewall::Create("tzc", &model, video, 1, {}).ok());
    EXPECT_EQ(Allowed(model, kOtherId, kVideo), Access::kNone);
  }
}

// Not a TZC-400 at all: every register reads zero.
class ZeroBus : public RegisterBus {
 public:
  uint32_t Read32(uint32_t) override { return 0; }
  void Write32(uint32_t, uint32_t) override { ++writes; }
  int writes = 0;
};

TEST(Tzc400FirewallProbe, RefusesAnotherController) {
  ZeroBus bus;
  absl::Status s =
      Tzc400Firewall::Create("tzc", &bus, {{"v", Range(kVideo, kVideoSize)}}, 1, {}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("not a TZC-400"));
  EXPECT_EQ(bus.writes, 0);
}

TEST_F(Tzc400FirewallTest, ADroppedEnableIsARefusedGrant_TheRegionStaysOff) {
  model_.DropWritesTo(RegionAttributes(1));
  EXPECT_EQ(fw_->Grant(kDecoder, Range(kVideo, kFrame), Access::kReadWrite).code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(model_.Read32(RegionAttributes(1)) & kAttrFilterEnableMask, 0u);
  EXPECT_EQ(Allowed(model_, kDecoderId, kVideo), Access::kNone);
}

TEST_F(Tzc400FirewallTest, ARegionStuckEnabledAfterAFailedGrantStopsRmemd) {
  // Region 1 is stuck enabled behind the driver's back: the grant cannot
  // read its values back, and the rollback cannot switch it off. Going on
  // would leave a range rmemd cannot vouch for.
  model_.Write32(RegionAttributes(1), kAttrSecureWriteEnable | 1);
  model_.DropWritesTo(RegionAttributes(1));
  EXPECT_DEATH(fw_->Grant(kDecoder, Range(kVideo, kFrame), Access::kReadWrite).IgnoreError(),
               "would not disable");
}

TEST_F(Tzc400FirewallTest, RevokingWhatWasNeverGrantedIsOurBug) {
  EXPECT_DEATH(fw_->Revoke(kDecoder, Range(kVideo, kFrame)), "never granted");
}

}  // namespace
}  // namespace rmem

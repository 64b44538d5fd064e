// BlockFirewall, the driver, programming a BlockControllerModel (a MODEL of
// block-granular firewall hardware this machine lacks). Every effect is
// judged by what the model permits for each block x domain x direction:
// the probe, grants and revokes from several initiators, refusals (with no
// register written), rollback of a grant whose write was lost, the
// safety of every intermediate register state, and a rapidcheck property
// against a per-page reference.
#include "broker/backend/firewall/block_firewall.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "broker/backend/firewall/block_controller_model.h"
#include "broker/backend/firewall/block_controller_registers.h"
#include "broker/check.h"

namespace rmem {
namespace {

namespace bc = block_controller;
using ::testing::HasSubstr;

constexpr uint64_t kBase = 0x8000'0000;
constexpr uint64_t kBlock = 64 * 1024;
constexpr uint32_t kBlocks = 64;  // a 4 MiB window
constexpr uint32_t kDomains = bc::kDomains;
const InitiatorId kDecoder(1), kDisplay(2), kCamera(3), kStranger(9);

PageRange Blocks(uint32_t first, uint32_t n, uint64_t block = kBlock, uint64_t base = kBase) {
  return *PageRange::FromBytes(PhysAddr(base + first * block), n * block);
}
// Blocks [0, 16) and [32, 40) are carve-outs behind the controller.
std::vector<PageRange> Guarded() { return {Blocks(0, 16), Blocks(32, 8)}; }
absl::flat_hash_map<InitiatorId, uint32_t> Domains() {
  return {{kDecoder, 0}, {kDisplay, 3}, {kCamera, 15}};
}

// What the model permits, per block x domain x direction (at the block's
// first and last byte, which must agree).
struct Table {
  std::vector<bool> cells = std::vector<bool>(kBlocks * kDomains * 2, false);
  static size_t Index(uint32_t block, uint32_t domain, bool write) {
    return (block * kDomains + domain) * 2 + (write ? 1 : 0);
  }
  // Sets `access` for `domain` on blocks [first, first + n).
  Table& Allow(uint32_t first, uint32_t n, uint32_t domain, Access access) {
    for (uint32_t b = first; b < first + n; ++b) {
      if (Covers(access, Access::kRead)) cells[Index(b, domain, false)] = true;
      if (Covers(access, Access::kWrite)) cells[Index(b, domain, true)] = true;
    }
    return *this;
  }
};

Table Snapshot(const BlockControllerModel& m) {
  Table t;
  for (uint32_t b = 0; b < kBlocks; ++b) {
    for (uint32_t d = 0; d < kDomains; ++d) {
      for (bool w : {false, true}) {
        const bool first = m.Permits({kBase + b * kBlock, w, d, false});
        const bool last = m.Permits({kBase + (b + 1) * kBlock - 1, w, d, false});
        RMEM_CHECK(first == last);
        t.cells[Table::Index(b, d, w)] = first;
      }
    }
  }
  return t;
}

// "" when equal, else the first few differing cells.
std::string Diff(const Table& want, const Table& got) {
  std::string out;
  int shown = 0;
  for (uint32_t b = 0; b < kBlocks; ++b) {
    for (uint32_t d = 0; d < kDomains; ++d) {
      for (bool w : {false, true}) {
        const size_t i = Table::Index(b, d, w);
        if (want.cells[i] != got.cells[i] && shown++ < 8) {
          absl::StrAppend(&out, "block ", b, " domain ", d, w ? " write" : " read", ": want ",
                          want.cells[i], " got ", got.cells[i], "\n");
        }
      }
    }
  }
  return out;
}

std::vector<uint32_t> Registers(BlockControllerModel& m) {
  std::vector<uint32_t> r = {m.Read32(bc::kCtrl)};
  for (uint32_t b = 0; b < kBlocks; ++b) r.push_back(m.Read32(bc::BlockPerm(b)));
  return r;
}

class BlockFirewallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<BlockFirewall>> created =
        BlockFirewall::Create(&model_, Guarded(), Domains());
    RMEM_CHECK_OK(created);
    fw_ = *std::move(created);
  }
  BlockControllerModel model_{{kBase, kBlocks * kBlock, kBlock}};
  std::unique_ptr<BlockFirewall> fw_;
};

// --- Create: geometry, validation, probe ---

TEST(BlockFirewallCreate, Probe_ClearsGuardedBlocksThenEnablesAndLeavesOthersAlone) {
  BlockControllerModel model({kBase, kBlocks * kBlock, kBlock});
  for (uint32_t b = 0; b < kBlocks; ++b) model.Write32(bc::BlockPerm(b), 0xffff'ffff);
  std::vector<uint32_t> written;
  model.set_write_observer([&](uint32_t offset, uint32_t) { written.push_back(offset); });

  auto fw = BlockFirewall::Create(&model, Guarded(), Domains());
  ASSERT_TRUE(fw.ok()) << fw.status();

  std::vector<uint32_t> want;
  for (uint32_t b = 0; b < 16; ++b) want.push_back(bc::BlockPerm(b));
  for (uint32_t b = 32; b < 40; ++b) want.push_back(bc::BlockPerm(b));
  want.push_back(bc::kCtrl);  // last: no guarded block is enabled with leftovers
  EXPECT_EQ(written, want);
  EXPECT_EQ((*fw)->register_writes(), want.size());
  EXPECT_NE(model.Read32(bc::kCtrl) & bc::kCtrlEnable, 0u);
  for (uint32_t b = 0; b < kBlocks; ++b) {
    const bool guarded = b < 16 || (b >= 32 && b < 40);
    EXPECT_EQ(model.Read32(bc::BlockPerm(b)), guarded ? 0u : 0xffff'ffffu) << b;
  }
  // Unguarded blocks keep firmware's permissions; guarded ones permit nobody.
  EXPECT_TRUE(model.Permits({kBase + 20 * kBlock, true, 7, false}));
  EXPECT_FALSE(model.Permits({kBase + 3 * kBlock, false, 7, false}));
}

TEST(BlockFirewallCreate, Geometry_LearnedFromTheRegisters) {
  constexpr uint64_t kBig = 2 << 20, kOtherBase = 0x1'0000'0000;
  BlockControllerModel model({kOtherBase, 8 * kBig, kBig});
  auto fw = BlockFirewall::Create(&model, {Blocks(2, 3, kBig, kOtherBase)}, Domains());
  ASSERT_TRUE(fw.ok()) << fw.status();
  EXPECT_EQ((*fw)->block_size(), kBig);
  ASSERT_TRUE((*fw)->Grant(kDisplay, Blocks(3, 1, kBig, kOtherBase), Access::kRead).ok());
  EXPECT_TRUE(model.Permits({kOtherBase + 4 * kBig - 1, false, 3, false}));
  EXPECT_FALSE(model.Permits({kOtherBase + 4 * kBig, false, 3, false}));
  EXPECT_EQ(model.Read32(bc::BlockPerm(3)), bc::ReadBit(3));
}

TEST(BlockFirewallCreate, GuardedRangeOutsideWindow_InvalidArgumentNamingIt) {
  BlockControllerModel model({kBase, kBlocks * kBlock, kBlock});
  const PageRange beyond = Blocks(60, 8);
  auto fw = BlockFirewall::Create(&model, {Blocks(0, 1), beyond}, Domains());
  EXPECT_EQ(fw.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fw.status().message(), HasSubstr(beyond.ToString()));
  EXPECT_EQ(model.writes(), 0u);
}

TEST(BlockFirewallCreate, GuardedRangeOffBlockBoundaries_InvalidArgumentNamingIt) {
  BlockControllerModel model({kBase, kBlocks * kBlock, kBlock});
  const PageRange odd = *PageRange::FromBytes(PhysAddr(kBase + kBlock), kBlock + kPageSize);
  auto fw = BlockFirewall::Create(&model, {odd}, Domains());
  EXPECT_EQ(fw.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fw.status().message(), HasSubstr(odd.ToString()));
  EXPECT_THAT(fw.status().message(), HasSubstr("64 KiB"));
  EXPECT_EQ(model.writes(), 0u);
}

TEST(BlockFirewallCreate, GuardedRangesOverlapOrEmpty_InvalidArgument) {
  BlockControllerModel model({kBase, kBlocks * kBlock, kBlock});
  EXPECT_EQ(BlockFirewall::Create(&model, {Blocks(0, 4), Blocks(3, 2)}, Domains()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BlockFirewall::Create(&model, {Blocks(3, 0)}, Domains()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(model.writes(), 0u);
}

TEST(BlockFirewallCreate, DomainBeyondTheController_InvalidArgument) {
  BlockControllerModel model({kBase, kBlocks * kBlock, kBlock});
  auto fw = BlockFirewall::Create(&model, Guarded(), {{kDecoder, 16}});
  EXPECT_EQ(fw.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fw.status().message(), HasSubstr("domain 16"));
}

TEST(BlockFirewallCreate, TwoInitiatorsShareADomain_InvalidArgument) {
  BlockControllerModel model({kBase, kBlocks * kBlock, kBlock});
  auto fw = BlockFirewall::Create(&model, Guarded(), {{kDecoder, 4}, {kDisplay, 4}});
  EXPECT_EQ(fw.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fw.status().message(), HasSubstr("share domain 4"));
}

// A bus whose read-only registers say what the test wants.
class ScriptedBus : public RegisterBus {
 public:
  explicit ScriptedBus(absl::flat_hash_map<uint32_t, uint32_t> values) : values_(values) {}
  uint32_t Read32(uint32_t offset) override {
    auto it = values_.find(offset);
    return it == values_.end() ? 0 : it->second;
  }
  void Write32(uint32_t offset, uint32_t value) override { values_[offset] = value; }

 private:
  absl::flat_hash_map<uint32_t, uint32_t> values_;
};

TEST(BlockFirewallCreate, UnknownMapRevision_Unimplemented) {
  ScriptedBus bus({{bc::kConfig, (2u << 24) | (16u << 8) | 16}, {bc::kBlockCount, 4}});
  EXPECT_EQ(BlockFirewall::Create(&bus, {}, {}).status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST(BlockFirewallCreate, NonsenseGeometry_FailedPrecondition) {
  const uint32_t rev = bc::kMapRevision << 24;
  for (const auto& regs : std::vector<absl::flat_hash_map<uint32_t, uint32_t>>{
           {{bc::kConfig, rev | (16u << 8) | 11}, {bc::kBlockCount, 4}},  // 2 KiB blocks
           {{bc::kConfig, rev | (0u << 8) | 16}, {bc::kBlockCount, 4}},   // no domains
           {{bc::kConfig, rev | (17u << 8) | 16}, {bc::kBlockCount, 4}},  // 17 domains
           {{bc::kConfig, rev | (16u << 8) | 16}, {bc::kBlockCount, 0}},  // no blocks
           {{bc::kConfig, rev | (16u << 8) | 16}, {bc::kBlockCount, bc::kMaxBlocks + 1}},
           {{bc::kConfig, rev | (16u << 8) | 16}, {bc::kBlockCount, 4},
            {bc::kWindowBaseLow, 0x1000}},  // window off a block boundary
           {{bc::kConfig, rev | (16u << 8) | 16}, {bc::kBlockCount, 4},
            {bc::kWindowBaseLow, 0xffff'0000}, {bc::kWindowBaseHigh, 0xffff'ffff}},  // wraps
       }) {
    ScriptedBus bus(regs);
    EXPECT_EQ(BlockFirewall::Create(&bus, {}, {}).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
}

TEST(BlockFirewallCreate, ProbeWriteLost_Internal) {
  BlockControllerModel model({kBase, kBlocks * kBlock, kBlock});
  model.Write32(bc::BlockPerm(5), 0xffff'ffff);
  model.DropWritesTo(bc::BlockPerm(5));
  auto fw = BlockFirewall::Create(&model, Guarded(), Domains());
  EXPECT_EQ(fw.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(fw.status().message(), HasSubstr("block 5"));
  EXPECT_EQ(model.Read32(bc::kCtrl), 0u);

  BlockControllerModel model2({kBase, kBlocks * kBlock, kBlock});
  model2.DropWritesTo(bc::kCtrl);
  EXPECT_EQ(BlockFirewall::Create(&model2, Guarded(), Domains()).status().code(),
            absl::StatusCode::kInternal);
}

// --- Grant and Revoke ---

TEST_F(BlockFirewallTest, AfterProbe_NobodyMayTouchAnyBlock) {
  EXPECT_EQ(Diff(Table(), Snapshot(model_)), "");
}

TEST_F(BlockFirewallTest, Grant_ReadOnly_PermitsThatDomainsReadsOnThoseBlocksOnly) {
  ASSERT_TRUE(fw_->Grant(kDisplay, Blocks(4, 3), Access::kRead).ok());
  EXPECT_EQ(Diff(Table().Allow(4, 3, 3, Access::kRead), Snapshot(model_)), "");
  fw_->Revoke(kDisplay, Blocks(4, 3));
  EXPECT_EQ(Diff(Table(), Snapshot(model_)), "");
}

TEST_F(BlockFirewallTest, SeveralInitiatorsAndGrantsOnOneRange_BlocksAreTheOrOfLiveGrants) {
  ASSERT_TRUE(fw_->Grant(kDecoder, Blocks(0, 4), Access::kRead).ok());
  ASSERT_TRUE(fw_->Grant(kDisplay, Blocks(0, 4), Access::kReadWrite).ok());
  ASSERT_TRUE(fw_->Grant(kDecoder, Blocks(2, 2), Access::kWrite).ok());
  ASSERT_TRUE(fw_->Grant(kDecoder, Blocks(0, 4), Access::kReadWrite).ok());
  ASSERT_TRUE(fw_->Grant(kCamera, Blocks(32, 8), Access::kWrite).ok());
  EXPECT_EQ(Diff(Table()
                     .Allow(0, 4, 0, Access::kReadWrite)
                     .Allow(0, 4, 3, Access::kReadWrite)
                     .Allow(32, 8, 15, Access::kWrite),
                 Snapshot(model_)),
            "");

  // The earliest grant of [0, 4) to the decoder (read) goes; read+write stays.
  fw_->Revoke(kDecoder, Blocks(0, 4));
  EXPECT_EQ(Diff(Table()
                     .Allow(0, 4, 0, Access::kReadWrite)
                     .Allow(0, 4, 3, Access::kReadWrite)
                     .Allow(32, 8, 15, Access::kWrite),
                 Snapshot(model_)),
            "");
  fw_->Revoke(kDecoder, Blocks(0, 4));
  EXPECT_EQ(Diff(Table()
                     .Allow(2, 2, 0, Access::kWrite)
                     .Allow(0, 4, 3, Access::kReadWrite)
                     .Allow(32, 8, 15, Access::kWrite),
                 Snapshot(model_)),
            "");
  fw_->Revoke(kDisplay, Blocks(0, 4));
  fw_->Revoke(kCamera, Blocks(32, 8));
  EXPECT_EQ(Diff(Table().Allow(2, 2, 0, Access::kWrite), Snapshot(model_)), "");
  fw_->Revoke(kDecoder, Blocks(2, 2));
  EXPECT_EQ(Diff(Table(), Snapshot(model_)), "");
}

TEST_F(BlockFirewallTest, RegisterWrites_OnlyWordsThatChange) {
  const uint64_t probe = fw_->register_writes();
  EXPECT_EQ(probe, 16u + 8u + 1u);
  ASSERT_TRUE(fw_->Grant(kDecoder, Blocks(8, 4), Access::kRead).ok());
  EXPECT_EQ(fw_->register_writes(), probe + 4);
  ASSERT_TRUE(fw_->Grant(kDecoder, Blocks(8, 4), Access::kRead).ok());  // same bits
  EXPECT_EQ(fw_->register_writes(), probe + 4);
  ASSERT_TRUE(fw_->Grant(kDisplay, Blocks(10, 2), Access::kRead).ok());
  EXPECT_EQ(fw_->register_writes(), probe + 6);
  fw_->Revoke(kDecoder, Blocks(8, 4));  // another grant still holds the bits
  EXPECT_EQ(fw_->register_writes(), probe + 6);
  EXPECT_EQ(Diff(Table().Allow(8, 4, 0, Access::kRead).Allow(10, 2, 3, Access::kRead),
                 Snapshot(model_)),
            "");
  fw_->Revoke(kDecoder, Blocks(8, 4));
  EXPECT_EQ(fw_->register_writes(), probe + 10);
  EXPECT_EQ(model_.writes(), fw_->register_writes());
}

TEST_F(BlockFirewallTest, Grant_OffBlockBoundaries_ResourceExhaustedNamingBlockSizeNoWrite) {
  const uint64_t writes = model_.writes();
  for (const PageRange& odd :
       {*PageRange::FromBytes(PhysAddr(kBase + kPageSize), kBlock - kPageSize),
        *PageRange::FromBytes(PhysAddr(kBase), kBlock + kPageSize),
        *PageRange::FromBytes(PhysAddr(kBase + 2 * kBlock), kPageSize)}) {
    const absl::Status s = fw_->Grant(kDecoder, odd, Access::kRead);
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << odd.ToString();
    EXPECT_THAT(s.message(), HasSubstr("64 KiB"));
    EXPECT_THAT(s.message(), HasSubstr(odd.ToString()));
  }
  EXPECT_EQ(model_.writes(), writes);
  EXPECT_EQ(Diff(Table(), Snapshot(model_)), "");
}

TEST_F(BlockFirewallTest, Grant_UnknownInitiator_NotFoundNoWrite) {
  const uint64_t writes = model_.writes();
  const absl::Status s = fw_->Grant(kStranger, Blocks(0, 1), Access::kRead);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("0x9"));
  EXPECT_EQ(model_.writes(), writes);
}

TEST_F(BlockFirewallTest, Grant_OutsideTheGuardedRanges_InvalidArgumentNoWrite) {
  const uint64_t writes = model_.writes();
  for (const PageRange& r : {Blocks(20, 2),             // in the window, not guarded
                             Blocks(70, 1),             // beyond the window
                             Blocks(10, 30),            // across the gap between two
                             Blocks(14, 4),             // runs off the end of one
                             Blocks(3, 0),              // empty
                             Blocks(0, 1, kBlock, 0)})  // below the window
  {
    EXPECT_EQ(fw_->Grant(kDecoder, r, Access::kRead).code(), absl::StatusCode::kInvalidArgument)
        << r.ToString();
  }
  EXPECT_EQ(model_.writes(), writes);
}

TEST_F(BlockFirewallTest, Grant_WriteLost_RollsBackEveryRegisterAndFailsInternal) {
  ASSERT_TRUE(fw_->Grant(kDisplay, Blocks(2, 6), Access::kRead).ok());
  const std::vector<uint32_t> before = Registers(model_);
  const Table permits_before = Snapshot(model_);
  model_.DropWritesTo(bc::BlockPerm(5));

  const absl::Status s = fw_->Grant(kDecoder, Blocks(0, 8), Access::kReadWrite);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("block 5"));
  EXPECT_EQ(Registers(model_), before);
  EXPECT_EQ(Diff(permits_before, Snapshot(model_)), "");

  // The driver's own record is intact: the grant works once the part does,
  // and revoking everything leaves nothing.
  model_.StopDroppingWrites();
  ASSERT_TRUE(fw_->Grant(kDecoder, Blocks(0, 8), Access::kReadWrite).ok());
  EXPECT_EQ(Diff(Table().Allow(0, 8, 0, Access::kReadWrite).Allow(2, 6, 3, Access::kRead),
                 Snapshot(model_)),
            "");
  fw_->Revoke(kDecoder, Blocks(0, 8));
  fw_->Revoke(kDisplay, Blocks(2, 6));
  EXPECT_EQ(Diff(Table(), Snapshot(model_)), "");
}

TEST_F(BlockFirewallTest, EveryIntermediateState_WithinOldUnionNewAndAboveOldIntersectionNew) {
  std::vector<Table> seen;
  model_.set_write_observer([&](uint32_t, uint32_t) { seen.push_back(Snapshot(model_)); });
  // Runs `op`; every state seen between its writes must lie between
  // old ∩ bound and old ∪ bound (bound: the end state, or for a rolled-back
  // grant the state it aimed at).
  auto check = [&](const std::function<void()>& op, std::optional<Table> aimed = std::nullopt) {
    const Table old = Snapshot(model_);
    seen.clear();
    op();
    const Table bound = aimed ? *aimed : Snapshot(model_);
    ASSERT_FALSE(seen.empty());
    for (const Table& t : seen) {
      for (size_t i = 0; i < t.cells.size(); ++i) {
        ASSERT_FALSE(t.cells[i] && !old.cells[i] && !bound.cells[i]) << "widened cell " << i;
        ASSERT_FALSE(!t.cells[i] && old.cells[i] && bound.cells[i]) << "narrowed cell " << i;
      }
    }
  };
  check([&] { ASSERT_TRUE(fw_->Grant(kDecoder, Blocks(0, 8), Access::kRead).ok()); });
  check([&] { ASSERT_TRUE(fw_->Grant(kDisplay, Blocks(4, 8), Access::kReadWrite).ok()); });
  check([&] { ASSERT_TRUE(fw_->Grant(kDecoder, Blocks(6, 10), Access::kWrite).ok()); });
  check([&] { fw_->Revoke(kDecoder, Blocks(0, 8)); });
  check([&] { ASSERT_TRUE(fw_->Grant(kCamera, Blocks(32, 8), Access::kReadWrite).ok()); });
  check([&] { fw_->Revoke(kDisplay, Blocks(4, 8)); });

  Table aimed = Snapshot(model_);
  aimed.Allow(0, 16, 3, Access::kRead);
  model_.DropWritesTo(bc::BlockPerm(12));
  check([&] { ASSERT_EQ(fw_->Grant(kDisplay, Blocks(0, 16), Access::kRead).code(),
                        absl::StatusCode::kInternal); },
        aimed);
  model_.StopDroppingWrites();
  check([&] { fw_->Revoke(kDecoder, Blocks(6, 10)); });
  check([&] { fw_->Revoke(kCamera, Blocks(32, 8)); });
  EXPECT_EQ(Diff(Table(), Snapshot(model_)), "");
}

TEST_F(BlockFirewallTest, GrantSameRangeTwice_RevokeOnceKeepsAccess) {
  ASSERT_TRUE(fw_->Grant(kCamera, Blocks(33, 2), Access::kWrite).ok());
  ASSERT_TRUE(fw_->Grant(kCamera, Blocks(33, 2), Access::kWrite).ok());
  fw_->Revoke(kCamera, Blocks(33, 2));
  EXPECT_EQ(Diff(Table().Allow(33, 2, 15, Access::kWrite), Snapshot(model_)), "");
  fw_->Revoke(kCamera, Blocks(33, 2));
  EXPECT_EQ(Diff(Table(), Snapshot(model_)), "");
}

using BlockFirewallDeathTest = BlockFirewallTest;

TEST_F(BlockFirewallDeathTest, Revoke_NeverGranted_CheckFails) {
  ASSERT_TRUE(fw_->Grant(kDecoder, Blocks(0, 2), Access::kRead).ok());
  EXPECT_DEATH(fw_->Revoke(kDecoder, Blocks(0, 1)), "CHECK failed");
  EXPECT_DEATH(fw_->Revoke(kDisplay, Blocks(0, 2)), "CHECK failed");
}

TEST_F(BlockFirewallDeathTest, Revoke_WriteLost_CheckFailsRatherThanFailOpen) {
  ASSERT_TRUE(fw_->Grant(kDecoder, Blocks(0, 2), Access::kRead).ok());
  model_.DropWritesTo(bc::BlockPerm(1));
  EXPECT_DEATH(fw_->Revoke(kDecoder, Blocks(0, 2)), "block 1 did not narrow");
}

TEST_F(BlockFirewallDeathTest, Grant_AccessNone_CheckFails) {
  EXPECT_DEATH((void)fw_->Grant(kDecoder, Blocks(0, 1), Access::kNone), "CHECK failed");
}

// --- Property: random grant/revoke sequences against a per-page reference ---

// A small window (16 blocks of 16 KiB = 64 pages) so every page x domain x
// direction is checked after every step.
constexpr uint64_t kSmallBlock = 16 * 1024;
constexpr uint32_t kSmallBlocks = 16;
constexpr uint64_t kSmallPages = kSmallBlocks * kSmallBlock / kPageSize;

struct RefGrant {
  InitiatorId initiator;
  PageRange pages;
  Access access;
};

RC_GTEST_PROP(BlockFirewallProperty, ModelPermitsExactlyTheOrOfLiveGrantsPerPage, ()) {
  BlockControllerModel model({kBase, kSmallBlocks * kSmallBlock, kSmallBlock});
  const std::vector<PageRange> guarded = {Blocks(0, 6, kSmallBlock), Blocks(8, 6, kSmallBlock)};
  const absl::flat_hash_map<InitiatorId, uint32_t> domains = {
      {kDecoder, 0}, {kDisplay, 5}, {kCamera, 15}};
  auto created = BlockFirewall::Create(&model, guarded, domains);
  RC_ASSERT(created.ok());
  BlockFirewall& fw = **created;
  std::vector<RefGrant> live;

  const int steps = *rc::gen::inRange(1, 40);
  for (int step = 0; step < steps; ++step) {
    if (live.empty() || *rc::gen::inRange(0, 5) < 3) {
      const InitiatorId who =
          *rc::gen::element(kDecoder, kDisplay, kCamera, kDecoder, kDisplay, kStranger);
      const Access access = *rc::gen::element(Access::kRead, Access::kWrite, Access::kReadWrite);
      uint64_t first, count;
      if (*rc::gen::inRange(0, 4) != 0) {  // mostly whole blocks
        first = *rc::gen::inRange<uint64_t>(0, kSmallBlocks) * 4;
        count = *rc::gen::inRange<uint64_t>(0, 7) * 4;
      } else {
        first = *rc::gen::inRange<uint64_t>(0, kSmallPages);
        count = *rc::gen::inRange<uint64_t>(0, 12);
      }
      const PageRange pages = *PageRange::FromPages(Pfn((kBase >> kPageShift) + first),
                                                    PageCount(count));
      absl::StatusCode want = absl::StatusCode::kOk;
      const bool inside = std::any_of(guarded.begin(), guarded.end(),
                                      [&](const PageRange& g) { return g.Contains(pages); });
      if (!domains.contains(who)) {
        want = absl::StatusCode::kNotFound;
      } else if (count == 0 || !inside) {
        want = absl::StatusCode::kInvalidArgument;
      } else if (first % 4 != 0 || count % 4 != 0) {
        want = absl::StatusCode::kResourceExhausted;
      }
      // Sometimes the part loses the write to one block of the grant.
      const bool lose = want == absl::StatusCode::kOk && *rc::gen::inRange(0, 8) == 0;
      if (lose) model.DropWritesTo(bc::BlockPerm(static_cast<uint32_t>(first / 4)));
      const absl::StatusCode got = fw.Grant(who, pages, access).code();
      model.StopDroppingWrites();
      if (lose) {
        // Lost only if the word had to change; then nothing changed.
        RC_ASSERT(got == absl::StatusCode::kOk || got == absl::StatusCode::kInternal);
      } else {
        RC_ASSERT(got == want);
      }
      if (got == absl::StatusCode::kOk) live.push_back({who, pages, access});
    } else {
      const size_t k = *rc::gen::inRange<size_t>(0, live.size());
      const RefGrant g = live[k];
      fw.Revoke(g.initiator, g.pages);
      // The driver removes the earliest grant of the same range.
      for (auto it = live.begin(); it != live.end(); ++it) {
        if (it->initiator == g.initiator && it->pages == g.pages) {
          live.erase(it);
          break;
        }
      }
    }

    // Reference: per page, the OR of the live grants of each domain.
    std::vector<bool> ref(kSmallPages * kDomains * 2, false);
    for (const RefGrant& g : live) {
      const uint32_t d = domains.at(g.initiator);
      for (uint64_t p = g.pages.first().value(); p < g.pages.end().value(); ++p) {
        const uint64_t page = p - (kBase >> kPageShift);
        if (Covers(g.access, Access::kRead)) ref[(page * kDomains + d) * 2] = true;
        if (Covers(g.access, Access::kWrite)) ref[(page * kDomains + d) * 2 + 1] = true;
      }
    }
    for (uint64_t page = 0; page < kSmallPages; ++page) {
      for (uint32_t d = 0; d < kDomains; ++d) {
        for (bool w : {false, true}) {
          const bool permitted = model.Permits({kBase + page * kPageSize, w, d, false});
          if (permitted != ref[(page * kDomains + d) * 2 + (w ? 1 : 0)]) {
            RC_FAIL(absl::StrCat("step ", step, ": page ", page, " domain ", d,
                                 w ? " write" : " read", " permitted=", permitted));
          }
        }
      }
    }
  }
  while (!live.empty()) {
    fw.Revoke(live.back().initiator, live.back().pages);
    live.pop_back();
  }
  for (uint32_t b = 0; b < kSmallBlocks; ++b) RC_ASSERT(model.Read32(bc::BlockPerm(b)) == 0u);
}

}  // namespace
}  // namespace rmem

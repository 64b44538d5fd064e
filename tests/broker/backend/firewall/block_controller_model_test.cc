// BlockControllerModel (a MODEL of block-granular firewall hardware this
// machine lacks), register by register: geometry, reset state, per-domain
// read/write bits, accesses outside the window and from the Secure world,
// fault capture with overrun and clear, the dropped-write hook, counters and
// the write observer.
#include "broker/backend/firewall/block_controller_model.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "broker/backend/firewall/block_controller_registers.h"

namespace rmem {
namespace {

namespace bc = block_controller;

constexpr uint64_t kBase = 0x8'8000'0000;  // above 4 GiB: the high words matter
constexpr uint64_t kBlock = 64 * 1024;
constexpr uint32_t kBlocks = 16;

BlockControllerModel::Options Opts() { return {kBase, kBlocks * kBlock, kBlock}; }

BusAccess At(uint32_t block, uint32_t domain, bool write, uint64_t offset = 0) {
  return BusAccess{kBase + block * kBlock + offset, write, domain, false};
}

TEST(BlockControllerModel, Geometry_RegistersReportBlockSizeDomainsCountAndWindow) {
  BlockControllerModel m(Opts());
  const uint32_t config = m.Read32(bc::kConfig);
  EXPECT_EQ(config & bc::kConfigBlockShiftMask, 16u);
  EXPECT_EQ((config >> bc::kConfigDomainsShift) & bc::kConfigDomainsMask, bc::kDomains);
  EXPECT_EQ((config >> bc::kConfigRevisionShift) & bc::kConfigRevisionMask, bc::kMapRevision);
  EXPECT_EQ(m.Read32(bc::kBlockCount), kBlocks);
  EXPECT_EQ(m.Read32(bc::kWindowBaseLow), 0x8000'0000u);
  EXPECT_EQ(m.Read32(bc::kWindowBaseHigh), 0x8u);
}

TEST(BlockControllerModel, Geometry_ReadOnlyRegistersIgnoreWrites) {
  BlockControllerModel m(Opts());
  for (uint32_t reg : {bc::kConfig, bc::kBlockCount, bc::kWindowBaseLow, bc::kWindowBaseHigh,
                       bc::kFaultStatus, bc::kFaultAddrLow, bc::kFaultAddrHigh}) {
    const uint32_t before = m.Read32(reg);
    m.Write32(reg, 0xdead'beef);
    EXPECT_EQ(m.Read32(reg), before) << "offset " << reg;
  }
}

TEST(BlockControllerModel, Reset_DisabledPermitsEverything) {
  BlockControllerModel m(Opts());
  EXPECT_EQ(m.Read32(bc::kCtrl), 0u);
  for (uint32_t b = 0; b < kBlocks; ++b) {
    EXPECT_EQ(m.Read32(bc::BlockPerm(b)), 0u);
    EXPECT_TRUE(m.Permits(At(b, 0, false)));
    EXPECT_TRUE(m.Permits(At(b, 7, true)));
  }
}

TEST(BlockControllerModel, Reset_OnceEnabledEveryBlockDeniesEveryDomain) {
  BlockControllerModel m(Opts());
  m.Write32(bc::kCtrl, bc::kCtrlEnable);
  for (uint32_t b = 0; b < kBlocks; ++b) {
    for (uint32_t d = 0; d < bc::kDomains; ++d) {
      EXPECT_FALSE(m.Permits(At(b, d, false)));
      EXPECT_FALSE(m.Permits(At(b, d, true)));
    }
  }
}

TEST(BlockControllerModel, Ctrl_KeepsOnlyDefinedBits) {
  BlockControllerModel m(Opts());
  m.Write32(bc::kCtrl, 0xffff'ffff);
  EXPECT_EQ(m.Read32(bc::kCtrl), bc::kCtrlMask);
}

TEST(BlockControllerModel, PermWord_GivesEachDomainItsReadAndWriteBit) {
  BlockControllerModel m(Opts());
  m.Write32(bc::kCtrl, bc::kCtrlEnable);
  m.Write32(bc::BlockPerm(3), bc::ReadBit(2) | bc::WriteBit(2) | bc::ReadBit(9) | bc::WriteBit(15));
  EXPECT_EQ(m.Read32(bc::BlockPerm(3)),
            bc::ReadBit(2) | bc::WriteBit(2) | bc::ReadBit(9) | bc::WriteBit(15));
  for (uint32_t d = 0; d < bc::kDomains; ++d) {
    EXPECT_EQ(m.Permits(At(3, d, false)), d == 2 || d == 9) << d;
    EXPECT_EQ(m.Permits(At(3, d, true)), d == 2 || d == 15) << d;
    // The whole block, and only it.
    EXPECT_EQ(m.Permits(At(3, d, false, kBlock - 1)), d == 2 || d == 9) << d;
    EXPECT_FALSE(m.Permits(At(2, d, false, kBlock - 1))) << d;
    EXPECT_FALSE(m.Permits(At(4, d, false))) << d;
  }
}

TEST(BlockControllerModel, PermWord_PastBlockCountReadsZeroAndIgnoresWrites) {
  BlockControllerModel m(Opts());
  m.Write32(bc::BlockPerm(kBlocks), 0xffff'ffff);
  EXPECT_EQ(m.Read32(bc::BlockPerm(kBlocks)), 0u);
  m.Write32(bc::BlockPerm(bc::kMaxBlocks - 1), 0xffff'ffff);
  EXPECT_EQ(m.Read32(bc::BlockPerm(bc::kMaxBlocks - 1)), 0u);
  m.Write32(0x030, 1);  // unallocated
  EXPECT_EQ(m.Read32(0x030), 0u);
}

TEST(BlockControllerModel, OutsideWindow_NotThisControllersBusinessPermitted) {
  BlockControllerModel m(Opts());
  m.Write32(bc::kCtrl, bc::kCtrlEnable);
  EXPECT_TRUE(m.Permits({kBase - 1, true, 0, false}));
  EXPECT_TRUE(m.Permits({kBase + kBlocks * kBlock, true, 0, false}));
  EXPECT_FALSE(m.Permits({kBase + kBlocks * kBlock - 1, true, 0, false}));
  EXPECT_TRUE(m.Access({kBase - 1, true, 0, false}));
  EXPECT_EQ(m.failures(), 0u);
}

TEST(BlockControllerModel, SecureAccess_AlwaysPermitted) {
  BlockControllerModel m(Opts());
  m.Write32(bc::kCtrl, bc::kCtrlEnable);
  EXPECT_TRUE(m.Permits({kBase, true, 4, true}));
  EXPECT_TRUE(m.Access({kBase, false, 4, true}));
  EXPECT_EQ(m.failures(), 0u);
}

TEST(BlockControllerModel, DomainWithoutBits_Denied) {
  BlockControllerModel m(Opts());
  m.Write32(bc::kCtrl, bc::kCtrlEnable);
  m.Write32(bc::BlockPerm(0), 0xffff'ffff);
  EXPECT_TRUE(m.Permits(At(0, 15, true)));
  EXPECT_FALSE(m.Permits(At(0, 16, false)));
}

TEST(BlockControllerModel, Permits_HasNoSideEffects) {
  BlockControllerModel m(Opts());
  m.Write32(bc::kCtrl, bc::kCtrlEnable);
  EXPECT_FALSE(m.Permits(At(1, 1, true)));
  EXPECT_EQ(m.failures(), 0u);
  EXPECT_EQ(m.Read32(bc::kFaultStatus), 0u);
}

TEST(BlockControllerModel, Fault_FirstCapturedLaterSetOverrun) {
  BlockControllerModel m(Opts());
  m.Write32(bc::kCtrl, bc::kCtrlEnable | bc::kCtrlFaultIrq);
  EXPECT_FALSE(m.interrupt());
  EXPECT_FALSE(m.Access(At(5, 3, true, 0x10)));
  EXPECT_EQ(m.Read32(bc::kFaultStatus),
            bc::kFaultValid | bc::kFaultWrite | (3u << bc::kFaultDomainShift));
  EXPECT_EQ(m.Read32(bc::kFaultAddrLow), static_cast<uint32_t>(kBase + 5 * kBlock + 0x10));
  EXPECT_EQ(m.Read32(bc::kFaultAddrHigh), 0x8u);
  EXPECT_TRUE(m.interrupt());

  EXPECT_FALSE(m.Access(At(7, 1, false)));
  EXPECT_EQ(m.Read32(bc::kFaultStatus), bc::kFaultValid | bc::kFaultOverrun | bc::kFaultWrite |
                                            (3u << bc::kFaultDomainShift));
  EXPECT_EQ(m.Read32(bc::kFaultAddrLow), static_cast<uint32_t>(kBase + 5 * kBlock + 0x10));
  EXPECT_EQ(m.failures(), 2u);
}

TEST(BlockControllerModel, FaultClear_OverrunAloneThenWholeCapture) {
  BlockControllerModel m(Opts());
  m.Write32(bc::kCtrl, bc::kCtrlEnable | bc::kCtrlFaultIrq);
  m.Access(At(2, 4, false));
  m.Access(At(2, 4, false));
  m.Write32(bc::kFaultClear, bc::kFaultOverrun);
  EXPECT_EQ(m.Read32(bc::kFaultStatus), bc::kFaultValid | (4u << bc::kFaultDomainShift));
  m.Write32(bc::kFaultClear, bc::kFaultValid);
  EXPECT_EQ(m.Read32(bc::kFaultStatus), 0u);
  EXPECT_EQ(m.Read32(bc::kFaultAddrLow), 0u);
  EXPECT_FALSE(m.interrupt());
  EXPECT_EQ(m.Read32(bc::kFaultClear), 0u);  // write-only
  // The next fault is captured afresh.
  m.Access(At(9, 6, true));
  EXPECT_EQ(m.Read32(bc::kFaultStatus),
            bc::kFaultValid | bc::kFaultWrite | (6u << bc::kFaultDomainShift));
  EXPECT_EQ(m.failures(), 3u);
}

TEST(BlockControllerModel, Interrupt_OnlyWithFaultIrq) {
  BlockControllerModel m(Opts());
  m.Write32(bc::kCtrl, bc::kCtrlEnable);
  m.Access(At(0, 0, false));
  EXPECT_FALSE(m.interrupt());
  m.Write32(bc::kCtrl, bc::kCtrlEnable | bc::kCtrlFaultIrq);
  EXPECT_TRUE(m.interrupt());
}

TEST(BlockControllerModel, DropWritesTo_LosesWritesButCountsAndObservesThem) {
  BlockControllerModel m(Opts());
  std::vector<std::pair<uint32_t, uint32_t>> seen;
  m.set_write_observer([&](uint32_t offset, uint32_t value) { seen.push_back({offset, value}); });
  m.DropWritesTo(bc::BlockPerm(4));
  m.Write32(bc::BlockPerm(4), 0xff);
  m.Write32(bc::BlockPerm(5), 0xff);
  EXPECT_EQ(m.Read32(bc::BlockPerm(4)), 0u);
  EXPECT_EQ(m.Read32(bc::BlockPerm(5)), 0xffu);
  EXPECT_EQ(m.writes(), 2u);
  EXPECT_EQ(seen.size(), 2u);
  m.StopDroppingWrites();
  m.Write32(bc::BlockPerm(4), 0xff);
  EXPECT_EQ(m.Read32(bc::BlockPerm(4)), 0xffu);
}

TEST(BlockControllerModel, Counters_CountEveryReadAndWriteIncludingIgnored) {
  BlockControllerModel m(Opts());
  m.Read32(bc::kConfig);
  m.Read32(0x0ff0);
  m.Write32(bc::kConfig, 1);  // ignored, still a write
  m.Write32(bc::kCtrl, 1);
  EXPECT_EQ(m.reads(), 2u);
  EXPECT_EQ(m.writes(), 2u);
}

TEST(BlockControllerModel, Observer_SeesTheWriteAlreadyInEffect) {
  BlockControllerModel m(Opts());
  m.Write32(bc::kCtrl, bc::kCtrlEnable);
  std::vector<bool> permitted;
  m.set_write_observer([&](uint32_t offset, uint32_t value) {
    EXPECT_EQ(offset, bc::BlockPerm(1));
    permitted.push_back(m.Permits(At(1, 0, false)));
    EXPECT_EQ(value, m.Read32(offset));
  });
  m.Write32(bc::BlockPerm(1), bc::ReadBit(0));
  m.Write32(bc::BlockPerm(1), 0);
  EXPECT_EQ(permitted, (std::vector<bool>{true, false}));
}

TEST(BlockControllerModelDeathTest, Options_NonsenseCheckFails) {
  EXPECT_DEATH(BlockControllerModel({kBase, kBlocks * kBlock, 3 * 4096}), "CHECK failed");
  EXPECT_DEATH(BlockControllerModel({kBase, kBlocks * 2048, 2048}), "CHECK failed");
  EXPECT_DEATH(BlockControllerModel({kBase + 4096, kBlocks * kBlock, kBlock}), "CHECK failed");
  EXPECT_DEATH(BlockControllerModel({kBase, kBlock + 4096, kBlock}), "CHECK failed");
  EXPECT_DEATH(BlockControllerModel({kBase, 0, kBlock}), "CHECK failed");
  EXPECT_DEATH(BlockControllerModel({kBase, uint64_t{bc::kMaxBlocks + 1} * 4096, 4096}),
               "CHECK failed");
  EXPECT_DEATH(BlockControllerModel({~uint64_t{0} - kBlock + 1, 2 * kBlock, kBlock}),
               "CHECK failed");
}

}  // namespace
}  // namespace rmem

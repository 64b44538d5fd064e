// Tzc400Model against the TZC-400 TRM's register behaviour: build_config,
// reset state, region selection (region 0 as background, no priority among
// regions 1..n: overlap on one filter is denied and flagged), granules and
// inclusive tops, NSAID bitmaps, Secure checks, failure latching, overrun,
// int_clear and tzc_int, the gate keeper, several filters, the address
// width, the test hooks and counters; and a property test against a small
// reference evaluator written here from the TRM's rules.
#include "broker/backend/firewall/tzc400_model.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace rmem {
namespace {

using namespace tzc400;  // NOLINT: register names read better unqualified

constexpr uint32_t kAllGates = 0xf;
constexpr uint32_t kNsAll = 0xffffffffu;  // every NSAID may read and write

BusAccess NsRead(uint64_t address, uint32_t id) { return {address, false, id, false}; }
BusAccess NsWrite(uint64_t address, uint32_t id) { return {address, true, id, false}; }
BusAccess SRead(uint64_t address) { return {address, false, 0, true}; }
BusAccess SWrite(uint64_t address) { return {address, true, 0, true}; }

void OpenGates(Tzc400Model& tzc) { tzc.Write32(kGateKeeper, kAllGates); }

// Programs region r as a driver does: addresses and ids first, enable last.
void ProgramRegion(Tzc400Model& tzc, uint32_t r, uint64_t base, uint64_t top,
                   uint32_t attributes, uint32_t id_access) {
  tzc.Write32(RegionBaseLow(r), static_cast<uint32_t>(base));
  tzc.Write32(RegionBaseHigh(r), static_cast<uint32_t>(base >> 32));
  tzc.Write32(RegionTopLow(r), static_cast<uint32_t>(top));
  tzc.Write32(RegionTopHigh(r), static_cast<uint32_t>(top >> 32));
  tzc.Write32(RegionIdAccess(r), id_access);
  tzc.Write32(RegionAttributes(r), attributes);
}

uint32_t Field(uint32_t value, uint32_t shift, uint32_t mask) { return (value >> shift) & mask; }

// --- build configuration and reset -----------------------------------------

TEST(Tzc400Model, BuildConfig_DefaultOptions_HoldValueMinusOne) {
  Tzc400Model tzc;
  const uint32_t config = tzc.Read32(kBuildConfig);
  EXPECT_EQ(Field(config, kBuildNoOfRegionsShift, kBuildNoOfRegionsMask), 8u);
  EXPECT_EQ(Field(config, kBuildAddressWidthShift, kBuildAddressWidthMask), 39u);
  EXPECT_EQ(Field(config, kBuildNoOfFiltersShift, kBuildNoOfFiltersMask), 0u);
  EXPECT_EQ(config, 0x00002708u);
}

TEST(Tzc400Model, BuildConfig_OtherOptions_Decode) {
  Tzc400Model tzc({.regions = 5, .filters = 4, .address_width = 64});
  EXPECT_EQ(tzc.Read32(kBuildConfig), 0x03003f04u);
  tzc.Write32(kBuildConfig, 0);  // RO
  EXPECT_EQ(tzc.Read32(kBuildConfig), 0x03003f04u);
}

TEST(Tzc400Model, Reset_RegisterValues) {
  Tzc400Model tzc({.regions = 9, .filters = 2, .address_width = 40});
  EXPECT_EQ(tzc.Read32(kAction), kActionLowOkay);
  EXPECT_EQ(tzc.Read32(kGateKeeper), 0u);
  EXPECT_EQ(tzc.Read32(kSpeculationCtrl), 0u);
  EXPECT_EQ(tzc.Read32(kIntStatus), 0u);
  for (uint32_t f = 0; f < 2; ++f) {
    EXPECT_EQ(tzc.Read32(FailAddressLow(f)), 0u);
    EXPECT_EQ(tzc.Read32(FailAddressHigh(f)), 0u);
    EXPECT_EQ(tzc.Read32(FailControl(f)), 0u);
    EXPECT_EQ(tzc.Read32(FailId(f)), 0u);
  }
  // Region 0 covers the whole 40-bit space; filter_en is set for both filters.
  EXPECT_EQ(tzc.Read32(RegionBaseLow(0)), 0u);
  EXPECT_EQ(tzc.Read32(RegionBaseHigh(0)), 0u);
  EXPECT_EQ(tzc.Read32(RegionTopLow(0)), 0xffffffffu);
  EXPECT_EQ(tzc.Read32(RegionTopHigh(0)), 0xffu);
  EXPECT_EQ(tzc.Read32(RegionAttributes(0)), 0x3u);
  EXPECT_EQ(tzc.Read32(RegionIdAccess(0)), 0u);
  for (uint32_t r = 1; r < 9; ++r) {
    EXPECT_EQ(tzc.Read32(RegionBaseLow(r)), 0u) << r;
    EXPECT_EQ(tzc.Read32(RegionBaseHigh(r)), 0u) << r;
    EXPECT_EQ(tzc.Read32(RegionTopLow(r)), 0xfffu) << r;  // [11:0] read as ones
    EXPECT_EQ(tzc.Read32(RegionTopHigh(r)), 0u) << r;
    EXPECT_EQ(tzc.Read32(RegionAttributes(r)), 0u) << r;  // filter_en 0: disabled
    EXPECT_EQ(tzc.Read32(RegionIdAccess(r)), 0u) << r;
  }
  EXPECT_FALSE(tzc.interrupt());
}

TEST(Tzc400Model, Reset_DeniesEveryAccessOnceGatesOpen) {
  Tzc400Model tzc;
  OpenGates(tzc);
  for (uint64_t address : {uint64_t{0}, uint64_t{0x80000000}, uint64_t{0xff'ffff'ffff}}) {
    for (uint32_t id = 0; id < kNsaids; ++id) {
      EXPECT_FALSE(tzc.Permits(NsRead(address, id))) << address << " " << id;
      EXPECT_FALSE(tzc.Permits(NsWrite(address, id))) << address << " " << id;
    }
    EXPECT_FALSE(tzc.Permits(SRead(address)));   // s_rd_en resets to 0 too
    EXPECT_FALSE(tzc.Permits(SWrite(address)));
  }
}

// --- gate keeper ------------------------------------------------------------

TEST(Tzc400Model, GateKeeper_ClosedAtReset_AccessStallsWithoutFailure) {
  Tzc400Model tzc;
  tzc.Write32(RegionIdAccess(0), kNsAll);
  EXPECT_FALSE(tzc.Permits(NsRead(0x1000, 1)));
  EXPECT_FALSE(tzc.Access(NsRead(0x1000, 1)));
  EXPECT_EQ(tzc.stalled(), 1u);
  EXPECT_EQ(tzc.failures(), 0u);
  EXPECT_EQ(tzc.Read32(kIntStatus), 0u);
}

TEST(Tzc400Model, GateKeeper_StatusFollowsRequest_UnimplementedFiltersRazWi) {
  Tzc400Model tzc({.filters = 2});
  tzc.Write32(kGateKeeper, 0xffffffffu);
  EXPECT_EQ(tzc.Read32(kGateKeeper), 0x00030003u);
  tzc.Write32(kGateKeeper, 0x2);
  EXPECT_EQ(tzc.Read32(kGateKeeper), 0x00020002u);
  tzc.Write32(RegionIdAccess(0), kNsAll);
  EXPECT_FALSE(tzc.PermitsThrough(0, NsRead(0, 1)));  // gate 0 closed again
  EXPECT_TRUE(tzc.PermitsThrough(1, NsRead(0, 1)));
}

// --- region 0 -----------------------------------------------------------------

TEST(Tzc400Model, Region0_OnlySecureEnablesAndIdAccessAreWritable) {
  Tzc400Model tzc({.filters = 4});
  tzc.Write32(RegionAttributes(0), 0xffffffffu);
  EXPECT_EQ(tzc.Read32(RegionAttributes(0)), 0xc000000fu);
  tzc.Write32(RegionAttributes(0), 0);
  EXPECT_EQ(tzc.Read32(RegionAttributes(0)), 0x0000000fu);  // filter_en stays set
  tzc.Write32(RegionBaseLow(0), 0x1000);
  tzc.Write32(RegionTopLow(0), 0x1fff);
  tzc.Write32(RegionTopHigh(0), 0);
  EXPECT_EQ(tzc.Read32(RegionBaseLow(0)), 0u);
  EXPECT_EQ(tzc.Read32(RegionTopLow(0)), 0xffffffffu);
  EXPECT_EQ(tzc.Read32(RegionTopHigh(0)), 0xffu);
  tzc.Write32(RegionIdAccess(0), 0x12345678u);
  EXPECT_EQ(tzc.Read32(RegionIdAccess(0)), 0x12345678u);
}

TEST(Tzc400Model, Region0_IdAccessGrantsPerIdAndDirection) {
  Tzc400Model tzc;
  OpenGates(tzc);
  tzc.Write32(RegionIdAccess(0), IdAccess(/*read_ids=*/1 << 3, /*write_ids=*/1 << 5));
  EXPECT_TRUE(tzc.Permits(NsRead(0x4000'0000, 3)));
  EXPECT_FALSE(tzc.Permits(NsWrite(0x4000'0000, 3)));
  EXPECT_TRUE(tzc.Permits(NsWrite(0x4000'0000, 5)));
  EXPECT_FALSE(tzc.Permits(NsRead(0x4000'0000, 5)));
}

// --- region matching ----------------------------------------------------------

TEST(Tzc400Model, Region_DisabledRegionNeverMatches) {
  Tzc400Model tzc;
  OpenGates(tzc);
  // Every permission granted, but filter_en is 0.
  ProgramRegion(tzc, 1, 0x8000'0000, 0x8fff'ffff, kAttrSecureReadEnable | kAttrSecureWriteEnable,
                kNsAll);
  EXPECT_FALSE(tzc.Permits(NsRead(0x8000'0000, 1)));
  EXPECT_FALSE(tzc.Permits(SRead(0x8000'0000)));
  tzc.Write32(RegionAttributes(1), kAttrSecureReadEnable | kAttrSecureWriteEnable | 0x1);
  EXPECT_TRUE(tzc.Permits(NsRead(0x8000'0000, 1)));
  EXPECT_TRUE(tzc.Permits(SRead(0x8000'0000)));
}

TEST(Tzc400Model, Region_GranuleBaseRazTopRaoAndTopInclusive) {
  Tzc400Model tzc;
  OpenGates(tzc);
  ProgramRegion(tzc, 1, 0x1234, 0x5000, 0x1, kNsAll);
  EXPECT_EQ(tzc.Read32(RegionBaseLow(1)), 0x1000u);
  EXPECT_EQ(tzc.Read32(RegionTopLow(1)), 0x5fffu);
  EXPECT_FALSE(tzc.Permits(NsRead(0x0fff, 0)));
  EXPECT_TRUE(tzc.Permits(NsRead(0x1000, 0)));
  EXPECT_TRUE(tzc.Permits(NsRead(0x5fff, 0)));  // the last byte of the top page
  EXPECT_FALSE(tzc.Permits(NsRead(0x6000, 0)));
}

TEST(Tzc400Model, Region_HigherRegionOverridesRegion0_Restricting) {
  Tzc400Model tzc;
  OpenGates(tzc);
  tzc.Write32(RegionIdAccess(0), kNsAll);
  ProgramRegion(tzc, 1, 0x10'0000, 0x1f'ffff, 0x1, IdAccess(1 << 2, 0));
  EXPECT_TRUE(tzc.Permits(NsWrite(0x0f'ffff, 7)));
  EXPECT_FALSE(tzc.Permits(NsWrite(0x10'0000, 7)));
  EXPECT_FALSE(tzc.Permits(NsRead(0x10'0000, 7)));
  EXPECT_TRUE(tzc.Permits(NsRead(0x10'0000, 2)));
  EXPECT_FALSE(tzc.Permits(NsWrite(0x10'0000, 2)));
  EXPECT_TRUE(tzc.Permits(NsWrite(0x20'0000, 7)));
}

TEST(Tzc400Model, Region_HigherRegionOverridesRegion0_Granting) {
  Tzc400Model tzc;
  OpenGates(tzc);
  ProgramRegion(tzc, 8, 0x10'0000, 0x1f'ffff, kAttrSecureReadEnable | 0x1, IdAccess(0, 1 << 9));
  EXPECT_TRUE(tzc.Permits(NsWrite(0x18'0000, 9)));
  EXPECT_TRUE(tzc.Permits(SRead(0x18'0000)));
  EXPECT_FALSE(tzc.Permits(SWrite(0x18'0000)));
  EXPECT_FALSE(tzc.Permits(NsWrite(0x20'0000, 9)));
}

// The TZC-400 has no region priority (the TZC-380 had): two enabled regions
// matching on one filter is an overlap, denied here and flagged.
TEST(Tzc400Model, Overlap_HigherNarrowerRegionDoesNotWin) {
  Tzc400Model tzc;
  OpenGates(tzc);
  ProgramRegion(tzc, 1, 0x10'0000, 0x4f'ffff, 0x1, 0);       // wide, denies
  ProgramRegion(tzc, 2, 0x20'0000, 0x2f'ffff, 0x1, kNsAll);  // narrow, grants
  EXPECT_FALSE(tzc.Permits(NsRead(0x20'0000, 1)));
  EXPECT_FALSE(tzc.Access(NsRead(0x20'0000, 1)));
  EXPECT_EQ(tzc.Read32(kIntStatus), (1u << kIntOverlapShift) | 1u);
  EXPECT_FALSE(tzc.Permits(NsRead(0x30'0000, 1)));  // only region 1
}

TEST(Tzc400Model, Overlap_HigherWiderRegionDoesNotWin) {
  Tzc400Model tzc;
  OpenGates(tzc);
  ProgramRegion(tzc, 1, 0x20'0000, 0x2f'ffff, 0x1, kNsAll);  // narrow, grants
  ProgramRegion(tzc, 2, 0x10'0000, 0x4f'ffff, 0x1, kNsAll);  // wide, grants too
  EXPECT_TRUE(tzc.Permits(NsRead(0x10'0000, 1)));   // only region 2
  EXPECT_FALSE(tzc.Permits(NsRead(0x20'0000, 1)));  // both: overlap, even if both grant
  EXPECT_FALSE(tzc.Access(NsRead(0x2f'ffff, 1)));
  EXPECT_EQ(Field(tzc.Read32(kIntStatus), kIntOverlapShift, 0xf), 1u);
  EXPECT_EQ(tzc.Read32(FailAddressLow(0)), 0x2f'ffffu);
}

TEST(Tzc400Model, Overlap_OnDifferentFiltersIsAllowed) {
  Tzc400Model tzc({.filters = 2});
  OpenGates(tzc);
  ProgramRegion(tzc, 1, 0x10'0000, 0x1f'ffff, 0x1, kNsAll);  // filter 0 only
  ProgramRegion(tzc, 2, 0x10'0000, 0x1f'ffff, 0x2, 0);       // filter 1 only
  EXPECT_TRUE(tzc.PermitsThrough(0, NsRead(0x10'0000, 4)));
  EXPECT_FALSE(tzc.AccessThrough(1, NsRead(0x10'0000, 4)));
  EXPECT_EQ(tzc.Read32(kIntStatus), 1u << 1);  // a denial on filter 1, no overlap
}

// --- permissions ------------------------------------------------------------------

TEST(Tzc400Model, Nsaid_ReadAndWriteBitmapsPerId) {
  Tzc400Model tzc;
  OpenGates(tzc);
  const uint16_t read_ids = 0x00a5, write_ids = 0x5a00;
  ProgramRegion(tzc, 1, 0x1000'0000, 0x1000'0fff, 0x1, IdAccess(read_ids, write_ids));
  for (uint32_t id = 0; id < kNsaids; ++id) {
    EXPECT_EQ(tzc.Permits(NsRead(0x1000'0000, id)), ((read_ids >> id) & 1) != 0) << id;
    EXPECT_EQ(tzc.Permits(NsWrite(0x1000'0000, id)), ((write_ids >> id) & 1) != 0) << id;
  }
}

TEST(Tzc400Model, Nsaid_IdsOf16AndAboveAreNeverPermitted) {
  Tzc400Model tzc;
  OpenGates(tzc);
  tzc.Write32(RegionIdAccess(0), kNsAll);
  EXPECT_TRUE(tzc.Permits(NsRead(0, 15)));
  for (uint32_t id : {16u, 17u, 31u, 32u, 1000u}) {
    EXPECT_FALSE(tzc.Permits(NsRead(0, id))) << id;
    EXPECT_FALSE(tzc.Permits(NsWrite(0, id))) << id;
  }
}

TEST(Tzc400Model, Secure_ChecksOnlySecureEnables) {
  Tzc400Model tzc;
  OpenGates(tzc);
  ProgramRegion(tzc, 1, 0x1000, 0x1fff, 0x1, kNsAll);  // every NSAID, no Secure
  EXPECT_TRUE(tzc.Permits(NsWrite(0x1000, 0)));
  EXPECT_FALSE(tzc.Permits(SRead(0x1000)));
  EXPECT_FALSE(tzc.Permits(SWrite(0x1000)));
  tzc.Write32(RegionIdAccess(1), 0);
  tzc.Write32(RegionAttributes(1), kAttrSecureReadEnable | 0x1);
  EXPECT_TRUE(tzc.Permits(SRead(0x1000)));
  EXPECT_FALSE(tzc.Permits(SWrite(0x1000)));
  EXPECT_FALSE(tzc.Permits(NsRead(0x1000, 0)));
}

// --- failure recording and the interrupt ----------------------------------------------

TEST(Tzc400Model, Failure_FirstLatchedSecondSetsOverrun) {
  Tzc400Model tzc;
  OpenGates(tzc);
  EXPECT_FALSE(tzc.Access(NsWrite(0x12'3456'7890, 0xabc)));
  EXPECT_EQ(tzc.Read32(kIntStatus), 1u);
  EXPECT_EQ(tzc.Read32(FailAddressLow(0)), 0x3456'7890u);
  EXPECT_EQ(tzc.Read32(FailAddressHigh(0)), 0x12u);
  EXPECT_EQ(tzc.Read32(FailControl(0)), kFailControlWrite | kFailControlNonSecure);
  EXPECT_EQ(tzc.Read32(FailId(0)), 0xabcu);

  EXPECT_FALSE(tzc.Access(SRead(0x2000)));
  EXPECT_EQ(tzc.Read32(kIntStatus), (1u << kIntOverrunShift) | 1u);
  EXPECT_EQ(tzc.Read32(FailAddressLow(0)), 0x3456'7890u);  // not overwritten
  EXPECT_EQ(tzc.Read32(FailControl(0)), kFailControlWrite | kFailControlNonSecure);
  EXPECT_EQ(tzc.failures(), 2u);
}

TEST(Tzc400Model, Failure_PermittedAccessRecordsNothing) {
  Tzc400Model tzc;
  OpenGates(tzc);
  tzc.Write32(RegionAttributes(0), kAttrSecureReadEnable);
  EXPECT_TRUE(tzc.Access(SRead(0x2000)));
  EXPECT_EQ(tzc.Read32(kIntStatus), 0u);
  EXPECT_EQ(tzc.failures(), 0u);
}

TEST(Tzc400Model, IntClear_ClearsStatusOverrunOverlapAndReopensLatch) {
  Tzc400Model tzc;
  OpenGates(tzc);
  ProgramRegion(tzc, 1, 0x1000, 0x1fff, 0x1, 0);
  ProgramRegion(tzc, 2, 0x1000, 0x1fff, 0x1, 0);
  tzc.Access(NsRead(0x1000, 1));
  tzc.Access(NsRead(0x1800, 2));
  EXPECT_EQ(tzc.Read32(kIntStatus), 0x00010101u);
  tzc.Write32(kIntStatus, 0);  // RO
  EXPECT_EQ(tzc.Read32(kIntStatus), 0x00010101u);
  tzc.Write32(kIntClear, 0x1);
  EXPECT_EQ(tzc.Read32(kIntStatus), 0u);
  EXPECT_EQ(tzc.Read32(kIntClear), 0u);  // write-only
  tzc.Access(SWrite(0x9000));
  EXPECT_EQ(tzc.Read32(kIntStatus), 1u);
  EXPECT_EQ(tzc.Read32(FailAddressLow(0)), 0x9000u);
  EXPECT_EQ(tzc.Read32(FailControl(0)), kFailControlWrite);  // Secure: non_secure 0
  EXPECT_EQ(tzc.Read32(FailId(0)), 0u);
}

TEST(Tzc400Model, Interrupt_FollowsActionAndStatus) {
  Tzc400Model tzc;
  OpenGates(tzc);
  tzc.Access(NsRead(0, 1));
  EXPECT_FALSE(tzc.interrupt());  // action 0: tzc_int LOW
  tzc.Write32(kAction, kActionLowDecerr);
  EXPECT_FALSE(tzc.interrupt());
  tzc.Write32(kAction, kActionHighOkay);
  EXPECT_TRUE(tzc.interrupt());
  tzc.Write32(kAction, 0xffffffffu);
  EXPECT_EQ(tzc.Read32(kAction), kActionHighDecerr);
  EXPECT_TRUE(tzc.interrupt());
  tzc.Write32(kIntClear, 0x1);
  EXPECT_FALSE(tzc.interrupt());
}

// --- several filters --------------------------------------------------------------

TEST(Tzc400Model, MultiFilter_FailuresLatchPerFilterAndClearPerFilter) {
  Tzc400Model tzc({.filters = 4});
  OpenGates(tzc);
  ProgramRegion(tzc, 1, 0x1000, 0x1fff, 0x4, kNsAll);  // filter 2 only
  EXPECT_TRUE(tzc.AccessThrough(2, NsRead(0x1000, 3)));
  EXPECT_FALSE(tzc.AccessThrough(1, NsRead(0x1000, 3)));
  EXPECT_FALSE(tzc.AccessThrough(3, NsWrite(0x1abc, 6)));
  EXPECT_EQ(tzc.Read32(kIntStatus), 0xau);
  EXPECT_EQ(tzc.Read32(FailAddressLow(1)), 0x1000u);
  EXPECT_EQ(tzc.Read32(FailAddressLow(3)), 0x1abcu);
  EXPECT_EQ(tzc.Read32(FailId(3)), 6u);
  EXPECT_EQ(tzc.Read32(FailAddressLow(0)), 0u);
  tzc.Write32(kIntClear, 0x2);
  EXPECT_EQ(tzc.Read32(kIntStatus), 0x8u);
}

// --- address width ------------------------------------------------------------------

TEST(Tzc400Model, AddressWidth_HighWordsMaskedAndRegion0Top) {
  Tzc400Model narrow({.address_width = 36});
  narrow.Write32(RegionBaseHigh(1), 0xffffffffu);
  narrow.Write32(RegionTopHigh(1), 0xffffffffu);
  EXPECT_EQ(narrow.Read32(RegionBaseHigh(1)), 0xfu);
  EXPECT_EQ(narrow.Read32(RegionTopHigh(1)), 0xfu);
  EXPECT_EQ(narrow.Read32(RegionTopHigh(0)), 0xfu);

  Tzc400Model w32({.address_width = 32});
  w32.Write32(RegionBaseHigh(1), 0xffffffffu);
  EXPECT_EQ(w32.Read32(RegionBaseHigh(1)), 0u);
  EXPECT_EQ(w32.Read32(RegionTopHigh(0)), 0u);

  Tzc400Model w64({.address_width = 64});
  w64.Write32(RegionTopHigh(1), 0xffffffffu);
  EXPECT_EQ(w64.Read32(RegionTopHigh(1)), 0xffffffffu);
  EXPECT_EQ(w64.Read32(RegionTopHigh(0)), 0xffffffffu);
}

TEST(Tzc400Model, AddressWidth_AddressBeyondWidthIsDenied) {
  Tzc400Model tzc({.address_width = 36});
  OpenGates(tzc);
  tzc.Write32(RegionIdAccess(0), kNsAll);
  EXPECT_TRUE(tzc.Permits(NsRead(0xf'ffff'ffff, 0)));
  EXPECT_FALSE(tzc.Permits(NsRead(0x10'0000'0000, 0)));
  EXPECT_FALSE(tzc.Access(NsRead(0x13'0000'1000, 0)));
  EXPECT_EQ(tzc.Read32(FailAddressHigh(0)), 0x3u);  // bits above the width dropped
}

// --- test hooks, unknown offsets, counters ----------------------------------------------------

TEST(Tzc400Model, DropWritesTo_DropsOnlyThatOffsetUntilCleared) {
  Tzc400Model tzc;
  OpenGates(tzc);
  tzc.DropWritesTo(RegionAttributes(1));
  int observed = 0;
  tzc.set_write_observer([&](uint32_t, uint32_t) { ++observed; });
  ProgramRegion(tzc, 1, 0x1000, 0x1fff, 0x1, kNsAll);
  EXPECT_EQ(tzc.Read32(RegionIdAccess(1)), kNsAll);
  EXPECT_EQ(tzc.Read32(RegionAttributes(1)), 0u);
  EXPECT_FALSE(tzc.Permits(NsRead(0x1000, 0)));
  EXPECT_EQ(observed, 6);  // dropped writes are still observed
  tzc.ClearDroppedWrites();
  tzc.Write32(RegionAttributes(1), 0x1);
  EXPECT_TRUE(tzc.Permits(NsRead(0x1000, 0)));
}

TEST(Tzc400Model, UnknownOffsets_ReadZeroAndIgnoreWrites) {
  Tzc400Model tzc({.regions = 5, .filters = 1});
  const std::vector<uint32_t> unknown = {
      0x018,               // reserved global
      FailAddressLow(1),   // unimplemented filter
      RegionBaseLow(5),    // unimplemented region
      RegionIdAccess(8),   // unimplemented region
      0x118,               // reserved word in region 0's frame
      0x138,               // reserved word in region 1's frame
      0x102,               // unaligned
      0x800,               // reserved gap
      0x1000, 0xffffffffu, // outside the frame
  };
  for (uint32_t offset : unknown) {
    tzc.Write32(offset, 0xffffffffu);
    EXPECT_EQ(tzc.Read32(offset), 0u) << std::hex << offset;
  }
  EXPECT_EQ(tzc.Read32(RegionAttributes(1)), 0u);
  EXPECT_EQ(tzc.Read32(RegionBaseLow(1)), 0u);
  EXPECT_EQ(tzc.writes(), unknown.size());
}

TEST(Tzc400Model, IdRegisters_ReadTzc400Values) {
  Tzc400Model tzc;
  const uint32_t part = tzc.Read32(kPid0) | ((tzc.Read32(kPid1) & 0xf) << 8);
  EXPECT_EQ(part, kPartNumber);
  EXPECT_EQ(tzc.Read32(kCid0), 0x0du);
  EXPECT_EQ(tzc.Read32(kCid1), 0xf0u);
  EXPECT_EQ(tzc.Read32(kCid2), 0x05u);
  EXPECT_EQ(tzc.Read32(kCid3), 0xb1u);
  tzc.Write32(kPid0, 0);  // RO
  EXPECT_EQ(tzc.Read32(kPid0), 0x60u);
}

TEST(Tzc400Model, SpeculationCtrl_TwoBitsReadWrite) {
  Tzc400Model tzc;
  tzc.Write32(kSpeculationCtrl, 0xffffffffu);
  EXPECT_EQ(tzc.Read32(kSpeculationCtrl), 0x3u);
}

TEST(Tzc400Model, Counters_CountEveryReadAndWriteIncludingIgnored) {
  Tzc400Model tzc;
  tzc.Read32(kBuildConfig);
  tzc.Read32(0x2000);
  tzc.Write32(kBuildConfig, 1);  // RO
  tzc.Write32(kAction, 1);
  tzc.Write32(0x3, 1);           // unaligned
  EXPECT_EQ(tzc.reads(), 2u);
  EXPECT_EQ(tzc.writes(), 3u);
}

TEST(Tzc400Model, WriteObserver_RunsAfterTheWriteTakesEffect) {
  Tzc400Model tzc;
  OpenGates(tzc);
  std::vector<std::pair<uint32_t, bool>> seen;
  tzc.set_write_observer([&](uint32_t offset, uint32_t) {
    seen.emplace_back(offset, tzc.Permits(NsRead(0x1000, 0)));
  });
  ProgramRegion(tzc, 1, 0x1000, 0x1fff, 0x1, kNsAll);
  ASSERT_EQ(seen.size(), 6u);
  for (size_t i = 0; i + 1 < seen.size(); ++i) EXPECT_FALSE(seen[i].second) << i;
  EXPECT_EQ(seen.back().first, RegionAttributes(1));
  EXPECT_TRUE(seen.back().second);  // the enabling write is visible inside the observer
}

// --- property: the model agrees with a reference evaluator ---------------------------

// The TRM's rules, restated independently of the model: regions 1..n as page
// ranges; none matching -> region 0, one -> it, two or more -> denied.
struct RefRegion {
  uint32_t filters = 0;  // filter_en
  uint64_t first_page = 0, last_page = 0;
  bool s_rd = false, s_wr = false;
  uint16_t ns_rd = 0, ns_wr = 0;
};

bool RefAllows(const RefRegion& r, const BusAccess& a) {
  if (a.secure) return a.write ? r.s_wr : r.s_rd;
  if (a.id >= 16) return false;
  return (((a.write ? r.ns_wr : r.ns_rd) >> a.id) & 1) != 0;
}

bool RefPermits(const RefRegion& background, const std::vector<RefRegion>& regions,
                uint32_t filter, uint64_t page_base, const BusAccess& a) {
  const uint64_t page = (a.address - page_base) / kRegionGranule;
  const RefRegion* hit = &background;
  int hits = 0;
  for (const RefRegion& r : regions) {
    if (((r.filters >> filter) & 1) && r.first_page <= page && page <= r.last_page) {
      hit = &r;
      ++hits;
    }
  }
  return hits <= 1 && RefAllows(*hit, a);
}

RC_GTEST_PROP(Tzc400ModelProperty, AgreesWithReferenceEvaluator, ()) {
  constexpr uint64_t kPageBase = 0x12'0000'0000;  // exercises the high words
  constexpr uint64_t kPages = 48;
  constexpr uint32_t kFilters = 2;
  Tzc400Model tzc({.regions = 9, .filters = kFilters, .address_width = 40});
  OpenGates(tzc);

  auto gen_region = [&]() {
    RefRegion r;
    r.filters = *rc::gen::inRange<uint32_t>(0, 1u << kFilters);
    const uint64_t a = *rc::gen::inRange<uint64_t>(0, kPages);
    const uint64_t b = *rc::gen::inRange<uint64_t>(0, kPages);
    r.first_page = std::min(a, b);
    r.last_page = std::max(a, b);
    r.s_rd = *rc::gen::arbitrary<bool>();
    r.s_wr = *rc::gen::arbitrary<bool>();
    r.ns_rd = *rc::gen::arbitrary<uint16_t>();
    r.ns_wr = *rc::gen::arbitrary<uint16_t>();
    return r;
  };
  auto attributes = [](const RefRegion& r) {
    return (r.s_wr ? kAttrSecureWriteEnable : 0) | (r.s_rd ? kAttrSecureReadEnable : 0) | r.filters;
  };

  RefRegion background = gen_region();
  tzc.Write32(RegionAttributes(0), attributes(background));
  tzc.Write32(RegionIdAccess(0), IdAccess(background.ns_rd, background.ns_wr));
  background.filters = 0;  // unused for region 0

  const int count = *rc::gen::inRange(0, 9);
  std::vector<RefRegion> regions;
  for (int i = 0; i < count; ++i) {
    regions.push_back(gen_region());
    const RefRegion& r = regions.back();
    ProgramRegion(tzc, i + 1, kPageBase + r.first_page * kRegionGranule,
                  kPageBase + r.last_page * kRegionGranule + (kRegionGranule - 1), attributes(r),
                  IdAccess(r.ns_rd, r.ns_wr));
  }

  for (int i = 0; i < 64; ++i) {
    const uint64_t offset = *rc::gen::inRange<uint64_t>(0, (kPages + 2) * kRegionGranule);
    BusAccess access{kPageBase + offset, *rc::gen::arbitrary<bool>(),
                     *rc::gen::inRange<uint32_t>(0, 18), *rc::gen::arbitrary<bool>()};
    const uint32_t filter = *rc::gen::inRange<uint32_t>(0, kFilters);
    const bool expected = RefPermits(background, regions, filter, kPageBase, access);
    RC_ASSERT(tzc.PermitsThrough(filter, access) == expected);
    const uint64_t failures = tzc.failures();
    RC_ASSERT(tzc.AccessThrough(filter, access) == expected);
    RC_ASSERT(tzc.failures() == failures + (expected ? 0 : 1));
    if (!expected) RC_ASSERT(((tzc.Read32(kIntStatus) >> filter) & 1) == 1u);
  }
}

}  // namespace
}  // namespace rmem

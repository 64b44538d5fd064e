// The TZC-400 (Arm CoreLink TrustZone Address Space Controller) register
// frame, as its Technical Reference Manual (Arm DDI 0504) describes it:
// offsets in the 4 KiB frame and field layouts. Shared by the driver
// (Tzc400Firewall) and the model (Tzc400Model), so both read the same map.
#pragma once

#include <cstdint>

namespace rmem::tzc400 {

inline constexpr uint32_t kFrameSize = 0x1000;
inline constexpr uint32_t kMaxRegions = 9;  // region 0 + 8 programmable
inline constexpr uint32_t kMaxFilters = 4;
inline constexpr uint32_t kNsaids = 16;
inline constexpr uint64_t kRegionGranule = 4096;  // base[11:0] RAZ, top[11:0] RAO

// Global registers.
inline constexpr uint32_t kBuildConfig = 0x000;     // RO
inline constexpr uint32_t kAction = 0x004;          // RW
inline constexpr uint32_t kGateKeeper = 0x008;      // RW
inline constexpr uint32_t kSpeculationCtrl = 0x00c; // RW: [1] write, [0] read disable
inline constexpr uint32_t kIntStatus = 0x010;       // RO
inline constexpr uint32_t kIntClear = 0x014;        // WO

// build_config fields (each holds "value - 1").
inline constexpr uint32_t kBuildNoOfRegionsShift = 0, kBuildNoOfRegionsMask = 0x1f;
inline constexpr uint32_t kBuildAddressWidthShift = 8, kBuildAddressWidthMask = 0x3f;
inline constexpr uint32_t kBuildNoOfFiltersShift = 24, kBuildNoOfFiltersMask = 0x3;

// action.reaction_value[1:0]: tzc_int level and the bus response on a
// failed access.
inline constexpr uint32_t kActionMask = 0x3;
inline constexpr uint32_t kActionLowOkay = 0x0;   // no interrupt, OKAY (reads return 0)
inline constexpr uint32_t kActionLowDecerr = 0x1; // no interrupt, DECERR
inline constexpr uint32_t kActionHighOkay = 0x2;  // interrupt, OKAY
inline constexpr uint32_t kActionHighDecerr = 0x3;// interrupt, DECERR

// gate_keeper: open_request[3:0] (RW), open_status[19:16] (RO), per filter.
inline constexpr uint32_t kGateOpenRequestShift = 0;
inline constexpr uint32_t kGateOpenStatusShift = 16;

// int_status: status[3:0], overrun[11:8], overlap[19:16], per filter.
inline constexpr uint32_t kIntStatusShift = 0;
inline constexpr uint32_t kIntOverrunShift = 8;
inline constexpr uint32_t kIntOverlapShift = 16;
// int_clear: writing 1 to bit f clears status, overrun and overlap of filter f.
inline constexpr uint32_t kIntClearMask = 0xf;

// Per-filter fail registers: 0x020 + 0x10 * filter.
constexpr uint32_t FailAddressLow(uint32_t filter) { return 0x020 + 0x10 * filter; }
constexpr uint32_t FailAddressHigh(uint32_t filter) { return 0x024 + 0x10 * filter; }
constexpr uint32_t FailControl(uint32_t filter) { return 0x028 + 0x10 * filter; }
constexpr uint32_t FailId(uint32_t filter) { return 0x02c + 0x10 * filter; }
// fail_control fields.
inline constexpr uint32_t kFailControlPrivileged = 1u << 20;
inline constexpr uint32_t kFailControlNonSecure = 1u << 21;
inline constexpr uint32_t kFailControlWrite = 1u << 24;  // direction: 0 read, 1 write
// fail_id fields: id[N:0] is the ACE-Lite AxID of the failed access (N+1 =
// the AID_WIDTH build parameter, at most 24 bits); vnet[27:24] is its
// virtual network (ARVNET/AWVNET). The NSAID is not reported.
inline constexpr uint32_t kFailIdIdMask = 0x00ffffff;
inline constexpr uint32_t kFailIdVnetShift = 24;

// Per-region registers: 0x100 + 0x20 * region.
constexpr uint32_t RegionBaseLow(uint32_t r) { return 0x100 + 0x20 * r; }
constexpr uint32_t RegionBaseHigh(uint32_t r) { return 0x104 + 0x20 * r; }
constexpr uint32_t RegionTopLow(uint32_t r) { return 0x108 + 0x20 * r; }
constexpr uint32_t RegionTopHigh(uint32_t r) { return 0x10c + 0x20 * r; }
constexpr uint32_t RegionAttributes(uint32_t r) { return 0x110 + 0x20 * r; }
constexpr uint32_t RegionIdAccess(uint32_t r) { return 0x114 + 0x20 * r; }
// region_attributes fields.
inline constexpr uint32_t kAttrSecureWriteEnable = 1u << 31;
inline constexpr uint32_t kAttrSecureReadEnable = 1u << 30;
// filter_en[3:0], one bit per filter; in region 0 it is read-only, all
// implemented filters' bits set.
inline constexpr uint32_t kAttrFilterEnableMask = 0xf;
// region_id_access fields: nsaid_rd_en[15:0], nsaid_wr_en[31:16].
inline constexpr uint32_t kIdReadShift = 0;
inline constexpr uint32_t kIdWriteShift = 16;
constexpr uint32_t IdAccess(uint16_t read_ids, uint16_t write_ids) {
  return (uint32_t{read_ids} << kIdReadShift) | (uint32_t{write_ids} << kIdWriteShift);
}

// Peripheral and component id registers (part number 0x460; the CIDs read
// 0x0d, 0xf0, 0x05, 0xb1).
inline constexpr uint32_t kPid4 = 0xfd0, kPid5 = 0xfd4, kPid6 = 0xfd8, kPid7 = 0xfdc;
inline constexpr uint32_t kPid0 = 0xfe0, kPid1 = 0xfe4, kPid2 = 0xfe8, kPid3 = 0xfec;
inline constexpr uint32_t kCid0 = 0xff0, kCid1 = 0xff4, kCid2 = 0xff8, kCid3 = 0xffc;
inline constexpr uint32_t kPartNumber = 0x460;

}  // namespace rmem::tzc400

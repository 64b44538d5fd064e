// The register frame of a block-granular bus firewall: OUR OWN register map
// for a model of this class of controller (the memory block checker of NXP's
// TRDC, Xilinx's XMPU and similar), not the map of any one part. The window
// of physical memory behind the controller is cut into fixed-size blocks (a
// power of two, at least 4 KiB) and each block has one 32-bit permission
// word with a read and a write enable per domain (a domain is the id a bus
// master carries at this controller). Shared by the driver (BlockFirewall)
// and the model (BlockControllerModel), so both read the same map.
//
//   offset        name            access  contents
//   0x000         CONFIG          RO      [7:0] log2(block size), [15:8] domains,
//                                         [31:24] map revision (1)
//   0x004         BLOCK_COUNT     RO      blocks in the window
//   0x008/0x00c   WINDOW_BASE     RO      guarded window base, low/high word
//   0x010         CTRL            RW      [0] ENABLE, [1] FAULT_IRQ, [2] FAULT_ERR
//   0x020         FAULT_STATUS    RO      [0] VALID, [1] OVERRUN, [2] WRITE,
//                                         [15:8] DOMAIN of the captured fault
//   0x024/0x028   FAULT_ADDR      RO      captured address, low/high word
//   0x02c         FAULT_CLEAR     WO      write 1 to VALID: clear the capture
//                                         (and overrun); 1 to OVERRUN: only it
//   0x100 + 4*b   BLOCK_PERM(b)   RW      [15:0] read enable per domain,
//                                         [31:16] write enable per domain
//
// Unlisted offsets, and permission words past BLOCK_COUNT, read as zero and
// ignore writes; so do writes to read-only registers.
#pragma once

#include <cstdint>

namespace rmem::block_controller {

// 1 MiB: room for 262,080 blocks (1 GiB in 4 KiB blocks).
inline constexpr uint32_t kFrameSize = 0x100000;
inline constexpr uint32_t kMapRevision = 1;
inline constexpr uint32_t kDomains = 16;
inline constexpr uint32_t kMinBlockShift = 12;  // 4 KiB

// Global registers.
inline constexpr uint32_t kConfig = 0x000;
inline constexpr uint32_t kBlockCount = 0x004;
inline constexpr uint32_t kWindowBaseLow = 0x008;
inline constexpr uint32_t kWindowBaseHigh = 0x00c;
inline constexpr uint32_t kCtrl = 0x010;
inline constexpr uint32_t kFaultStatus = 0x020;
inline constexpr uint32_t kFaultAddrLow = 0x024;
inline constexpr uint32_t kFaultAddrHigh = 0x028;
inline constexpr uint32_t kFaultClear = 0x02c;

// CONFIG fields.
inline constexpr uint32_t kConfigBlockShiftShift = 0, kConfigBlockShiftMask = 0xff;
inline constexpr uint32_t kConfigDomainsShift = 8, kConfigDomainsMask = 0xff;
inline constexpr uint32_t kConfigRevisionShift = 24, kConfigRevisionMask = 0xff;

// CTRL fields. ENABLE = 0 (the reset value) passes every access: the
// controller does not check until firmware or the broker has set it up, as
// a part whose default action is "allow" does. FAULT_IRQ raises the fault
// interrupt while a capture is valid; FAULT_ERR answers a denied access with
// a bus error instead of read-as-zero / write-ignored.
inline constexpr uint32_t kCtrlEnable = 1u << 0;
inline constexpr uint32_t kCtrlFaultIrq = 1u << 1;
inline constexpr uint32_t kCtrlFaultErr = 1u << 2;
inline constexpr uint32_t kCtrlMask = kCtrlEnable | kCtrlFaultIrq | kCtrlFaultErr;

// FAULT_STATUS fields (FAULT_CLEAR uses VALID and OVERRUN).
inline constexpr uint32_t kFaultValid = 1u << 0;
inline constexpr uint32_t kFaultOverrun = 1u << 1;
inline constexpr uint32_t kFaultWrite = 1u << 2;
inline constexpr uint32_t kFaultDomainShift = 8, kFaultDomainMask = 0xff;

// Per-block permission words.
inline constexpr uint32_t kBlockPermBase = 0x100;
inline constexpr uint32_t kMaxBlocks = (kFrameSize - kBlockPermBase) / 4;  // 262080
constexpr uint32_t BlockPerm(uint32_t block) { return kBlockPermBase + 4 * block; }
inline constexpr uint32_t kPermReadShift = 0;
inline constexpr uint32_t kPermWriteShift = 16;
constexpr uint32_t ReadBit(uint32_t domain) { return 1u << (kPermReadShift + domain); }
constexpr uint32_t WriteBit(uint32_t domain) { return 1u << (kPermWriteShift + domain); }

}  // namespace rmem::block_controller

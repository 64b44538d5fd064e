// What firmware handed over: the restricted-memory carve-outs read from a
// flattened device tree or an Arm Firmware Handoff Transfer List, validated
// exactly as the carve-out contract v1 says (../shared/bindings/
// rmem-carveout-contract.md; docs/bindings/rmem-carveout.yaml): the checks,
// their order, one error kind per failure; and the device initiators with
// their owning VMs (docs/bindings/rmem-initiator.yaml). A rejected blob
// yields nothing.
//
// The readers are pure functions over bytes the caller owns: no I/O, no
// allocation beyond the result, safe on any input (fuzzed).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "broker/rights.h"
#include "broker/types.h"

namespace rmem::firmware_handoff {

// The contract's error kinds (section 5), in its order.
enum class ErrorKind {
  kTlTruncated,
  kTlBadSignature,
  kTlBadVersion,
  kTlBadHdrSize,
  kTlBadSize,
  kTlSizeExceedsMax,
  kTlBadChecksum,
  kTlBadEntry,
  kTlNoFdt,
  kTlDuplicateFdt,
  kFdtBadMagic,
  kFdtCorrupt,
  kRmemBadCells,
  kRmemMissingReg,
  kRmemBadReg,
  kRmemZeroSize,
  kRmemUnaligned,
  kRmemRangeOverflow,
  kRmemMissingUseCase,
  kRmemBadFirewall,
  kRmemOutsideMemory,
  kRmemOverlap,
  // Not in contract v1: our device-initiator binding
  // (docs/bindings/rmem-initiator.yaml). Only a tree that uses it can get it,
  // and only after every contract rule passed.
  kRmemBadInitiator,
};
// "TL_TRUNCATED", ..., "RMEM_OVERLAP": the names the contract uses;
// "RMEM_BAD_INITIATOR" for ours.
const char* ErrorKindName(ErrorKind kind);

// `rmem,firewall = <&phandle index>`, resolved.
struct FirewallRef {
  std::string node;  // the target node's full path, e.g. "/soc/tzc@ff000000"
  uint32_t index = 0;
  bool operator==(const FirewallRef&) const = default;
};

struct HandoffCarveout {
  PhysAddr base;
  uint64_t size = 0;
  std::string use_case;  // verbatim
  bool no_map = false;
  std::optional<FirewallRef> firewall;
  std::string node;  // the carve-out's own node path (for messages and status)
  bool operator==(const HandoffCarveout&) const = default;
};

struct HandoffError {
  ErrorKind kind;
  std::string message;  // names the node or entry and the reason
};

// Accept: the carve-outs sorted by ascending base. Reject: one error.
using HandoffResult = std::variant<std::vector<HandoffCarveout>, HandoffError>;

// Contract section 3.
HandoffResult ParseFdt(std::span<const uint8_t> blob);
// Contract section 2; the FDT entry goes through ParseFdt.
HandoffResult ParseTransferList(std::span<const uint8_t> blob);

// A device initiator (DMA master: a video decoder, a display controller),
// the VM that owns it and how the bus firewall knows it
// (docs/bindings/rmem-initiator.yaml).
struct HandoffInitiator {
  std::string node;      // the device's node path
  std::string owner_vm;  // `rmem,owner-vm`, a VM name of rmemd's configuration
  Access max_access = Access::kReadWrite;  // `rmem,max-access`: never more than this
  // `access-controllers = <&controller id>, ...`: its id at each controller
  // in front of memory it may reach; at least one, no controller twice.
  std::vector<FirewallRef> firewalls;
  bool operator==(const HandoffInitiator&) const = default;
};

// A firewall controller that a carve-out or an initiator names: what it is
// (its compatible list: "arm,tzc-400", "rmem,block-firewall-model"), so
// that rmemd can pick its driver.
struct HandoffController {
  std::string node;  // full path
  std::vector<std::string> compatible;
  // `rmem,block-size` (one cell), read for block-granular controllers.
  std::optional<uint32_t> block_size;
  bool operator==(const HandoffController&) const = default;
};

// Everything rmemd reads from firmware: the contract's carve-outs (sorted by
// base), the device initiators (in tree order) and the firewall controllers
// they name (sorted by path).
struct Platform {
  std::vector<HandoffCarveout> carveouts;
  std::vector<HandoffInitiator> initiators;
  std::vector<HandoffController> controllers;
};
using PlatformResult = std::variant<Platform, HandoffError>;

// The contract's checks first (so its verdicts are unchanged), then the
// initiator binding's, on the same tree.
PlatformResult ReadPlatformFromFdt(std::span<const uint8_t> blob);
PlatformResult ReadPlatformFromTransferList(std::span<const uint8_t> blob);

// The `rmemd --check-firmware` JSON object (contract section 6), one line.
// An accepted platform prints exactly the contract's object (carve-outs
// only); a rejection may name RMEM_BAD_INITIATOR.
std::string ToJson(const HandoffResult& result);
std::string ToJson(const PlatformResult& result);

}  // namespace rmem::firmware_handoff

// What firmware handed over: the restricted-memory carve-outs read from a
// flattened device tree or an Arm Firmware Handoff Transfer List, validated
// exactly as the carve-out contract v1 says (../shared/bindings/
// rmem-carveout-contract.md; docs/bindings/rmem-carveout.yaml): the checks,
// their order, one error kind per failure. A rejected blob yields nothing.
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
};
// "TL_TRUNCATED", ..., "RMEM_OVERLAP": the names the contract uses.
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

// The `rmemd --check-firmware` JSON object (contract section 6), one line.
std::string ToJson(const HandoffResult& result);

}  // namespace rmem::firmware_handoff

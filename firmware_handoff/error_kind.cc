#include "firmware_handoff/handoff.h"

namespace rmem::firmware_handoff {

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kTlTruncated: return "TL_TRUNCATED";
    case ErrorKind::kTlBadSignature: return "TL_BAD_SIGNATURE";
    case ErrorKind::kTlBadVersion: return "TL_BAD_VERSION";
    case ErrorKind::kTlBadHdrSize: return "TL_BAD_HDR_SIZE";
    case ErrorKind::kTlBadSize: return "TL_BAD_SIZE";
    case ErrorKind::kTlSizeExceedsMax: return "TL_SIZE_EXCEEDS_MAX";
    case ErrorKind::kTlBadChecksum: return "TL_BAD_CHECKSUM";
    case ErrorKind::kTlBadEntry: return "TL_BAD_ENTRY";
    case ErrorKind::kTlNoFdt: return "TL_NO_FDT";
    case ErrorKind::kTlDuplicateFdt: return "TL_DUPLICATE_FDT";
    case ErrorKind::kFdtBadMagic: return "FDT_BAD_MAGIC";
    case ErrorKind::kFdtCorrupt: return "FDT_CORRUPT";
    case ErrorKind::kRmemBadCells: return "RMEM_BAD_CELLS";
    case ErrorKind::kRmemMissingReg: return "RMEM_MISSING_REG";
    case ErrorKind::kRmemBadReg: return "RMEM_BAD_REG";
    case ErrorKind::kRmemZeroSize: return "RMEM_ZERO_SIZE";
    case ErrorKind::kRmemUnaligned: return "RMEM_UNALIGNED";
    case ErrorKind::kRmemRangeOverflow: return "RMEM_RANGE_OVERFLOW";
    case ErrorKind::kRmemMissingUseCase: return "RMEM_MISSING_USE_CASE";
    case ErrorKind::kRmemBadFirewall: return "RMEM_BAD_FIREWALL";
    case ErrorKind::kRmemOutsideMemory: return "RMEM_OUTSIDE_MEMORY";
    case ErrorKind::kRmemOverlap: return "RMEM_OVERLAP";
    case ErrorKind::kRmemBadInitiator: return "RMEM_BAD_INITIATOR";
  }
  return "UNKNOWN";
}

}  // namespace rmem::firmware_handoff

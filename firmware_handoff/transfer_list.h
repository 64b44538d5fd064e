// Internal to firmware_handoff/: the transfer-list walk (contract section 2,
// checks 2.1 to 2.10), shared by ParseTransferList and
// ReadPlatformFromTransferList.
#pragma once

#include <cstdint>
#include <span>
#include <variant>

#include "firmware_handoff/handoff.h"

namespace rmem::firmware_handoff {

// The one FDT entry's data (a view into `blob`), or the first failed check.
std::variant<std::span<const uint8_t>, HandoffError> FdtOfTransferList(
    std::span<const uint8_t> blob);

}  // namespace rmem::firmware_handoff

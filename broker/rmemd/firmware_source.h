// Where rmemd's carve-outs and device initiators come from: a device tree file (--fdt), a transfer
// list file (--transfer-list) or the embedded default platform.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "firmware_handoff/handoff.h"

namespace rmem::rmemd {

struct FirmwareSource {
  enum class Kind { kDefault, kFdt, kTransferList } kind = Kind::kDefault;
  std::string path;  // for kFdt and kTransferList
};

// "the embedded default platform", "device tree /boot/x.dtb", ...
std::string Describe(const FirmwareSource& source);

// Reads the source (into an 8-byte aligned buffer, as the contract wants)
// and runs the matching reader. A Status error only if the file cannot be
// read (NotFound, PermissionDenied, ...); a rejected blob is a PlatformResult.
absl::StatusOr<firmware_handoff::PlatformResult> ReadFirmware(const FirmwareSource& source);

}  // namespace rmem::rmemd

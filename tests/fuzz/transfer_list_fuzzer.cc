// libFuzzer target: ParseTransferList and ReadPlatformFromTransferList on
// arbitrary bytes (copied into an 8-byte aligned buffer, as the contract
// promises the reader).
#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/fuzz/check_accept.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint64_t> words((size + 7) / 8);
  if (size > 0) std::memcpy(words.data(), data, size);
  const std::span<const uint8_t> blob(reinterpret_cast<const uint8_t*>(words.data()), size);
  const rmem::firmware_handoff::HandoffResult contract =
      rmem::firmware_handoff::ParseTransferList(blob);
  rmem::firmware_handoff::CheckResult(contract);
  rmem::firmware_handoff::CheckPlatform(
      contract, rmem::firmware_handoff::ReadPlatformFromTransferList(blob));
  return 0;
}

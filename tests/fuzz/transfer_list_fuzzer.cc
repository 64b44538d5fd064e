// libFuzzer target: ParseTransferList on arbitrary bytes (copied into an
// 8-byte aligned buffer, as the contract promises the reader).
#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/fuzz/check_accept.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint64_t> words((size + 7) / 8);
  if (size > 0) std::memcpy(words.data(), data, size);
  rmem::firmware_handoff::CheckResult(rmem::firmware_handoff::ParseTransferList(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(words.data()), size)));
  return 0;
}

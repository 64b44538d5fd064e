// libFuzzer target: ParseFdt on arbitrary bytes. Any outcome is fine; a
// crash, a sanitizer report or an accept that breaks the contract's promises
// (sorted, non-overlapping, aligned, non-empty carve-outs) is a bug.
#include <cstdint>
#include <cstdlib>

#include "tests/fuzz/check_accept.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rmem::firmware_handoff::CheckResult(
      rmem::firmware_handoff::ParseFdt(std::span<const uint8_t>(data, size)));
  return 0;
}

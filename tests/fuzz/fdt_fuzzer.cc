// libFuzzer target: ParseFdt and ReadPlatformFromFdt on arbitrary bytes. Any
// outcome is fine; a crash, a sanitizer report, an accept that breaks the
// contract's promises (sorted, non-overlapping, aligned, non-empty
// carve-outs) or the two readers disagreeing is a bug.
#include <cstdint>
#include <cstdlib>

#include "tests/fuzz/check_accept.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> blob(data, size);
  const rmem::firmware_handoff::HandoffResult contract = rmem::firmware_handoff::ParseFdt(blob);
  rmem::firmware_handoff::CheckResult(contract);
  rmem::firmware_handoff::CheckPlatform(contract,
                                        rmem::firmware_handoff::ReadPlatformFromFdt(blob));
  return 0;
}

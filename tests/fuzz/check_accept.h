// What every accepted result must satisfy, whatever the input: the
// contract's promises about carve-outs. Fuzz targets abort if one breaks.
#pragma once

#include <cstdlib>

#include "firmware_handoff/handoff.h"

namespace rmem::firmware_handoff {

inline void CheckResult(const HandoffResult& result) {
  (void)ToJson(result);  // the JSON writer must cope with any message or use-case
  const auto* list = std::get_if<std::vector<HandoffCarveout>>(&result);
  if (list == nullptr) return;
  for (size_t i = 0; i < list->size(); ++i) {
    const HandoffCarveout& c = (*list)[i];
    if (c.size == 0 || c.base.value() % 4096 != 0 || c.size % 4096 != 0 || c.use_case.empty() ||
        (c.base.value() != 0 && c.size > 0 - c.base.value())) {
      std::abort();
    }
    if (i > 0) {
      const HandoffCarveout& p = (*list)[i - 1];
      if (c.base.value() <= p.base.value() + (p.size - 1)) std::abort();  // sorted, disjoint
    }
  }
}

}  // namespace rmem::firmware_handoff

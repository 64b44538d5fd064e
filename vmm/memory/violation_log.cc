#include "vmm/memory/violation_log.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace rmem::vmm {

void ViolationLog::Record(int vcpu, absl::string_view what, absl::string_view outcome) {
  // The count decides who reports, so concurrent vCPUs log exactly
  // log_limit_ lines and one "more" line between them.
  const uint64_t n = count_.fetch_add(1, std::memory_order_relaxed);
  if (n < log_limit_) {
    sink_(absl::StrCat("rmem-vmm: vCPU ", vcpu, ": isolation violation: ", what, ": ", outcome));
  } else if (n == log_limit_) {
    sink_("rmem-vmm: more isolation violations are counted but not logged");
  }
}

std::string ViolationLog::Summary() const {
  const uint64_t n = count();
  if (n == 0) return "";
  return absl::StrCat("rmem-vmm: isolation violations: ", n, " (", std::min(n, log_limit_),
                      " logged)");
}

}  // namespace rmem::vmm

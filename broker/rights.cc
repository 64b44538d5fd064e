// Names of rights and access kinds, as they appear in messages.
#include "broker/rights.h"

#include <vector>

#include "absl/strings/str_join.h"

namespace rmem {

const char* AccessName(Access a) {
  switch (a) {
    case Access::kNone:
      return "none";
    case Access::kRead:
      return "read";
    case Access::kWrite:
      return "write";
    case Access::kReadWrite:
      return "read+write";
  }
  return "invalid";
}

std::string Rights::ToString() const {
  std::vector<const char*> parts;
  if (read()) parts.push_back("read");
  if (write()) parts.push_back("write");
  if (cpu_map()) parts.push_back("cpu-map");
  if (parts.empty()) return "none";
  return absl::StrJoin(parts, "+");
}

}  // namespace rmem

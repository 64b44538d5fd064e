// MemoryScrubber: memset through a host mapping.
#include "broker/backend/scrubber.h"

#include <cstring>

#include "broker/check.h"

namespace rmem {

void MemoryScrubber::Scrub(PageRange pages) {
  RMEM_CHECK(covered_.Contains(pages));
  const uint64_t offset = pages.base().value() - covered_.base().value();
  std::memset(static_cast<char*>(mapping_) + offset, 0, pages.size_bytes());
}

}  // namespace rmem

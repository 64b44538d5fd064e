// MemoryScrubber: memset through a host mapping; CarveoutScrubber: the same
// through a mapping made for the scrub.
#include "broker/backend/scrubber.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "broker/check.h"

namespace rmem {

void MemoryScrubber::Scrub(PageRange pages) {
  RMEM_CHECK(covered_.Contains(pages));
  const uint64_t offset = pages.base().value() - covered_.base().value();
  std::memset(static_cast<char*>(mapping_) + offset, 0, pages.size_bytes());
}

void CarveoutScrubber::Scrub(PageRange pages) {
  absl::StatusOr<CarveoutMemory::Piece> piece = memory_.Locate(pages);
  RMEM_CHECK(piece.ok());  // the broker scrubs only its own carve-outs' pages
  void* p = mmap(nullptr, pages.size_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, piece->fd,
                 static_cast<off_t>(piece->offset));
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "rmemd: FATAL: cannot map %s for scrubbing through %s: %s\n",
                 pages.base().ToString().c_str(), memory_.Describe().c_str(),
                 std::strerror(errno));
    std::abort();
  }
  std::memset(p, 0, pages.size_bytes());
  munmap(p, pages.size_bytes());
  scrubbed_bytes_ += pages.size_bytes();
}

}  // namespace rmem

// Scrubber: zeroes pages before they can reach a different VM.
// Implementations: MemoryScrubber (zeroes through a host mapping of the
// carve-out: the memfd stand-in, or a mapping of real carve-out memory) and
// FakeScrubber (tracks which pages are dirty; fake_backends.h). There is no
// null scrubber: memory that cannot be scrubbed must not be reused.
#pragma once

#include <cstddef>
#include <cstdint>

#include "broker/types.h"

namespace rmem {

class Scrubber {
 public:
  virtual ~Scrubber() = default;
  // Zeroes `pages`; cannot fail (a backend that can fail must stop the
  // broker rather than return).
  virtual void Scrub(PageRange pages) = 0;
};

// Zeroes through a host mapping of one physical range.
class MemoryScrubber : public Scrubber {
 public:
  // `mapping` maps `covered`: the byte at mapping[i] is physical address
  // covered.base() + i.
  MemoryScrubber(void* mapping, PageRange covered) : mapping_(mapping), covered_(covered) {}
  void Scrub(PageRange pages) override;  // CHECKs pages lie inside `covered`

 private:
  void* mapping_;
  PageRange covered_;
};

}  // namespace rmem

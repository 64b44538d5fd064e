// Scrubber: zeroes pages before they can reach a different VM.
// Implementations: MemoryScrubber (zeroes through a host mapping of the
// carve-out: the memfd stand-in, or a mapping of real carve-out memory),
// CarveoutScrubber (maps the pages from a CarveoutMemory only while zeroing
// them, so rmemd keeps no carve-out mapped) and FakeScrubber (tracks which
// pages are dirty; fake_backends.h). There is no null scrubber: memory that
// cannot be scrubbed must not be reused.
#pragma once

#include "broker/backend/carveout_memory.h"

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

// Zeroes through a short-lived mapping of exactly the pages, from `memory`
// (which must outlive it). A mapping that fails is fatal: memory that
// cannot be scrubbed must not be handed out again, so the broker stops.
class CarveoutScrubber : public Scrubber {
 public:
  explicit CarveoutScrubber(const CarveoutMemory& memory) : memory_(memory) {}
  void Scrub(PageRange pages) override;
  // Bytes zeroed so far (the broker's start-up scrub included).
  uint64_t scrubbed_bytes() const { return scrubbed_bytes_; }

 private:
  const CarveoutMemory& memory_;
  uint64_t scrubbed_bytes_ = 0;
};

}  // namespace rmem

// A carve-out: a physically contiguous range of restricted memory that
// firmware reserved, as the broker receives it (from firmware_handoff/ or a
// test), and its validation.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "broker/types.h"

namespace rmem {

struct Carveout {
  std::string name;      // e.g. the device-tree node name "video@a0000000"
  PhysAddr base;         // page aligned
  uint64_t size = 0;     // bytes, a non-zero multiple of 4 KiB
  std::string use_case;  // what firmware reserved it for ("secure-video")
  // The largest alignment allocations from it may ask for: a power of two,
  // at least 4 KiB (2 MiB is typical for video frames).
  uint64_t max_align = kPageSize;
};

// Checks one carve-out and returns its page range.
// InvalidArgument: empty name, unaligned or empty or overflowing range,
// max_align not a power of two >= 4 KiB.
absl::StatusOr<PageRange> ValidateCarveout(const Carveout& c);

// Checks each carve-out and that names are unique and ranges do not overlap.
// InvalidArgument naming the carve-out(s) at fault.
absl::Status ValidateCarveouts(absl::Span<const Carveout> carveouts);

}  // namespace rmem

// Validation of carve-outs handed to the broker.
#include "broker/carveout/carveout.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace rmem {

absl::StatusOr<PageRange> ValidateCarveout(const Carveout& c) {
  if (c.name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("carve-out at ", c.base.ToString(), " has no name"));
  }
  const std::string what = absl::StrCat("carve-out '", c.name, "'");
  if (c.size == 0) return absl::InvalidArgumentError(what + " has size 0");
  if (!c.base.IsPageAligned() || c.size % kPageSize != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " base ", c.base.ToString(), " or size ",
                                                   Hex(c.size), " is not a multiple of 4 KiB"));
  }
  const std::optional<PageRange> range = PageRange::FromBytes(c.base, c.size);
  if (!range) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " base ", c.base.ToString(), " + size ", Hex(c.size), " overflows"));
  }
  if (!IsPowerOfTwo(c.max_align) || c.max_align < kPageSize) {
    return absl::InvalidArgumentError(absl::StrCat(what, " max alignment ", Hex(c.max_align),
                                                   " is not a power of two >= 0x1000"));
  }
  return *range;
}

absl::Status ValidateCarveouts(absl::Span<const Carveout> carveouts) {
  absl::flat_hash_set<std::string> names;
  std::vector<std::pair<PageRange, const Carveout*>> ranges;
  for (const Carveout& c : carveouts) {
    absl::StatusOr<PageRange> range = ValidateCarveout(c);
    if (!range.ok()) return range.status();
    if (!names.insert(c.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("carve-out name '", c.name, "' is used twice"));
    }
    ranges.emplace_back(*range, &c);
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const auto& a, const auto& b) { return a.first.first() < b.first.first(); });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i - 1].first.Overlaps(ranges[i].first)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "carve-outs '", ranges[i - 1].second->name, "' ", ranges[i - 1].first.ToString(),
          " and '", ranges[i].second->name, "' ", ranges[i].first.ToString(), " overlap"));
    }
  }
  return absl::OkStatus();
}

}  // namespace rmem

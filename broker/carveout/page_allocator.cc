// Best-fit page allocator over free extents; see page_allocator.h.
#include "broker/carveout/page_allocator.h"

#include <cstdlib>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "broker/check.h"

namespace rmem {

PageAllocator::PageAllocator(PageRange range, Options options) : range_(range), options_(options) {
  if (!range.empty()) Insert(range.first().value(), range.count().value());
}

void PageAllocator::Insert(uint64_t first, uint64_t count) {
  by_addr_.emplace(first, count);
  by_size_.emplace(count, first);
  free_pages_ += count;
}

void PageAllocator::Erase(uint64_t first, uint64_t count) {
  RMEM_CHECK(by_addr_.erase(first) == 1);
  RMEM_CHECK(by_size_.erase({count, first}) == 1);
  free_pages_ -= count;
}

void PageAllocator::Carve(uint64_t ext_first, uint64_t ext_count, uint64_t first, uint64_t count) {
  Erase(ext_first, ext_count);
  if (first > ext_first) Insert(ext_first, first - ext_first);
  const uint64_t ext_end = ext_first + ext_count;
  const uint64_t end = first + count;
  if (end < ext_end) Insert(end, ext_end - end);
}

std::optional<uint64_t> PageAllocator::FitLow(uint64_t ext_first, uint64_t ext_count,
                                              uint64_t count, uint64_t align) {
  const uint64_t start = (ext_first + align - 1) & ~(align - 1);
  if (start - ext_first + count > ext_count) return std::nullopt;
  return start;
}

std::optional<PageRange> PageAllocator::Allocate(PageCount count_pages, PageCount align_pages) {
  const uint64_t count = count_pages.value();
  const uint64_t align = align_pages.value();
  RMEM_CHECK(count > 0);
  RMEM_CHECK(IsPowerOfTwo(align));
  if (count > free_pages_) return std::nullopt;

  auto chosen = by_size_.end();
  auto it = by_size_.lower_bound({count, 0});
  if (align == 1) {
    chosen = it;
  } else {
    // Extents at least this long fit at any alignment.
    const uint64_t always_fits = count + align - 1;
    int scanned = 0;
    for (; it != by_size_.end() && it->first < always_fits && scanned < kAlignedBandScan;
         ++it, ++scanned) {
      if (FitLow(it->second, it->first, count, align)) {
        chosen = it;
        break;
      }
    }
    if (chosen == by_size_.end()) {
      auto sure = by_size_.lower_bound({always_fits, 0});
      if (sure != by_size_.end()) {
        chosen = sure;
      } else {
        // Rare: only band extents beyond the scan limit remain.
        for (; it != by_size_.end(); ++it) {
          if (FitLow(it->second, it->first, count, align)) {
            chosen = it;
            break;
          }
        }
      }
    }
  }
  if (chosen == by_size_.end()) return std::nullopt;

  const auto [ext_count, ext_first] = *chosen;
  uint64_t first;
  if (align == 1 && count < options_.small_threshold.value()) {
    first = ext_first + ext_count - count;  // small: from the high end
  } else {
    first = *FitLow(ext_first, ext_count, count, align);
  }
  Carve(ext_first, ext_count, first, count);
  return PageRange::FromPages(Pfn(first), PageCount(count));
}

std::vector<PageRange> PageAllocator::FreeRuns() const {
  std::vector<PageRange> out;
  out.reserve(by_addr_.size());
  for (const auto& [first, count] : by_addr_) {
    out.push_back(*PageRange::FromPages(Pfn(first), PageCount(count)));
  }
  return out;
}

bool PageAllocator::AllocateAt(PageRange pages) {
  if (pages.empty() || !range_.Contains(pages)) return false;
  auto it = by_addr_.upper_bound(pages.first().value());
  if (it == by_addr_.begin()) return false;
  --it;
  const auto [ext_first, ext_count] = *it;
  if (ext_first + ext_count < pages.end().value()) return false;
  Carve(ext_first, ext_count, pages.first().value(), pages.count().value());
  return true;
}

void PageAllocator::Free(PageRange pages) {
  RMEM_CHECK(!pages.empty());
  RMEM_CHECK(range_.Contains(pages));
  RMEM_CHECK(IsAllAllocated(pages));
  uint64_t first = pages.first().value();
  uint64_t count = pages.count().value();
  // Coalesce with the free neighbours on either side.
  auto next = by_addr_.lower_bound(first);
  if (next != by_addr_.end() && next->first == first + count) {
    const auto [n_first, n_count] = *next;
    Erase(n_first, n_count);
    count += n_count;
  }
  auto prev = by_addr_.lower_bound(first);
  if (prev != by_addr_.begin()) {
    --prev;
    if (prev->first + prev->second == first) {
      const auto [p_first, p_count] = *prev;
      Erase(p_first, p_count);
      first = p_first;
      count += p_count;
    }
  }
  Insert(first, count);
}

bool PageAllocator::IsAllFree(PageRange pages) const {
  if (pages.empty()) return true;
  auto it = by_addr_.upper_bound(pages.first().value());
  if (it == by_addr_.begin()) return false;
  --it;
  return it->first + it->second >= pages.end().value();
}

bool PageAllocator::IsAllAllocated(PageRange pages) const {
  // No free extent may intersect the range.
  auto it = by_addr_.lower_bound(pages.first().value());
  if (it != by_addr_.end() && it->first < pages.end().value()) return false;
  if (it != by_addr_.begin()) {
    --it;
    if (it->first + it->second > pages.first().value()) return false;
  }
  return true;
}

PageAllocator::Stats PageAllocator::stats() const {
  Stats s;
  s.total = range_.count();
  s.free = PageCount(free_pages_);
  s.free_extents = by_addr_.size();
  if (!by_size_.empty()) s.largest_free = PageCount(by_size_.rbegin()->first);
  if (free_pages_ > 0) {
    s.fragmentation =
        1.0 - static_cast<double>(s.largest_free.value()) / static_cast<double>(free_pages_);
  }
  return s;
}

std::string PageAllocator::DebugString() const {
  std::string out;
  for (const auto& [first, count] : by_addr_) absl::StrAppend(&out, Hex(first), "+", count, " ");
  return out;
}

}  // namespace rmem

// The page allocator of one carve-out: physically contiguous runs of 4 KiB
// pages, aligned up to the carve-out's maximum alignment.
//
// Strategy: best fit over free extents, O(log n).
//  - Free extents are kept twice: by address (to coalesce neighbours on
//    free) and by (length, address) (to find the best fit).
//  - Unaligned requests take the smallest free extent that is long enough
//    (exact best fit, one lower_bound).
//  - Aligned requests look at extents whose length is in the band where
//    alignment decides whether they fit ([n, n + align - 1) pages), best
//    first, up to kAlignedBandScan of them; then at the smallest extent of
//    length >= n + align - 1, which always fits. Only if none of those
//    exists does it scan the rest of the band, so a fit is never missed.
//  - Placement inside the chosen extent: small requests (below
//    small_threshold, unaligned) are cut from its high end, everything else
//    from its low end, so small buffers gather at the top of the carve-out
//    and do not split the large holes video frames need.
// Every request is checked for consistency by CHECKs: the allocator's inputs
// come from the broker, never from a guest.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "broker/types.h"

namespace rmem {

class PageAllocator {
 public:
  static constexpr int kAlignedBandScan = 32;

  struct Options {
    // Requests shorter than this with 1-page alignment are placed at the
    // high end of the extent they come from. 0 disables it.
    PageCount small_threshold{512};  // 2 MiB
  };

  struct Stats {
    PageCount total;
    PageCount free;
    PageCount largest_free;
    uint64_t free_extents = 0;
    // 1 - largest_free / free: 0 when all free memory is one extent (or
    // nothing is free), approaching 1 as free memory splinters.
    double fragmentation = 0;
  };

  explicit PageAllocator(PageRange range) : PageAllocator(range, Options()) {}
  PageAllocator(PageRange range, Options options);

  // `count` pages whose first pfn is a multiple of `align` (a power of two,
  // in pages). nullopt when no free extent can hold it.
  std::optional<PageRange> Allocate(PageCount count, PageCount align);
  // Returns pages obtained from Allocate (or a part of them). CHECKs that
  // none of them is free already.
  void Free(PageRange pages);
  // Takes exactly these pages if they are all free (used to rebuild state).
  bool AllocateAt(PageRange pages);

  bool IsAllFree(PageRange pages) const;
  bool IsAllAllocated(PageRange pages) const;
  PageRange range() const { return range_; }
  PageCount free_pages() const { return PageCount(free_pages_); }
  Stats stats() const;
  // The free extents, lowest first.
  std::vector<PageRange> FreeRuns() const;
  // The free extents, "first+count ..." in pfns (for state dumps).
  std::string DebugString() const;

 private:
  using Extent = std::pair<uint64_t, uint64_t>;  // (first pfn, count)

  void Insert(uint64_t first, uint64_t count);
  void Erase(uint64_t first, uint64_t count);
  // Removes [first, first+count) from the free extent at `ext_first`.
  void Carve(uint64_t ext_first, uint64_t ext_count, uint64_t first, uint64_t count);
  // Where an aligned run of `count` would start inside the extent, if it fits.
  static std::optional<uint64_t> FitLow(uint64_t ext_first, uint64_t ext_count, uint64_t count,
                                        uint64_t align);

  PageRange range_;
  Options options_;
  uint64_t free_pages_ = 0;
  absl::btree_map<uint64_t, uint64_t> by_addr_;             // first pfn -> count
  absl::btree_set<std::pair<uint64_t, uint64_t>> by_size_;  // (count, first pfn)
};

}  // namespace rmem

// The page allocator: best fit, alignment, coalescing, placement,
// statistics, and a property test against a page bitmap.
#include "broker/carveout/page_allocator.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <vector>

namespace rmem {
namespace {

PageRange Pages(uint64_t first, uint64_t count) {
  return *PageRange::FromPages(Pfn(first), PageCount(count));
}

PageAllocator::Options NoHighPlacement() {
  PageAllocator::Options o;
  o.small_threshold = PageCount(0);
  return o;
}

TEST(PageAllocator, StartsWithOneFreeExtent) {
  PageAllocator a(Pages(0x80000, 1024));
  const auto s = a.stats();
  EXPECT_EQ(s.total, PageCount(1024));
  EXPECT_EQ(s.free, PageCount(1024));
  EXPECT_EQ(s.largest_free, PageCount(1024));
  EXPECT_EQ(s.free_extents, 1u);
  EXPECT_EQ(s.fragmentation, 0.0);
}

TEST(PageAllocator, AllocatesAlignedToPhysicalAddresses) {
  // The carve-out starts 1 page past a 2 MiB boundary: a 2 MiB-aligned
  // allocation must start at the next physical 2 MiB boundary, not at the
  // start of the carve-out.
  PageAllocator a(Pages(0x80001, 2048));
  auto r = a.Allocate(PageCount(512), PageCount(512));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first().value() % 512, 0u);
  EXPECT_EQ(r->first(), Pfn(0x80200));
}

TEST(PageAllocator, BestFitPicksTheSmallestHoleThatFits) {
  PageAllocator a(Pages(0, 100), NoHighPlacement());
  // Carve holes of 10, 4 and 6 pages separated by allocated runs.
  auto h10 = a.Allocate(PageCount(10), PageCount(1));
  auto s1 = a.Allocate(PageCount(1), PageCount(1));
  auto h4 = a.Allocate(PageCount(4), PageCount(1));
  auto s2 = a.Allocate(PageCount(1), PageCount(1));
  auto h6 = a.Allocate(PageCount(6), PageCount(1));
  auto s3 = a.Allocate(PageCount(1), PageCount(1));
  a.Free(*h10);
  a.Free(*h4);
  a.Free(*h6);
  auto r = a.Allocate(PageCount(5), PageCount(1));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first(), h6->first());  // the 6-page hole, not the 10 or the tail
  auto q = a.Allocate(PageCount(4), PageCount(1));
  EXPECT_EQ(q->first(), h4->first());
  (void)s1, (void)s2, (void)s3;
}

TEST(PageAllocator, SmallRequestsComeFromTheHighEnd) {
  PageAllocator a(Pages(0, 4096));
  auto small = a.Allocate(PageCount(16), PageCount(1));
  EXPECT_EQ(small->end(), Pfn(4096));
  auto big = a.Allocate(PageCount(2048), PageCount(512));
  EXPECT_EQ(big->first(), Pfn(0));
}

TEST(PageAllocator, FreeCoalescesWithBothNeighbours) {
  PageAllocator a(Pages(0, 30), NoHighPlacement());
  auto x = a.Allocate(PageCount(10), PageCount(1));
  auto y = a.Allocate(PageCount(10), PageCount(1));
  auto z = a.Allocate(PageCount(10), PageCount(1));
  a.Free(*x);
  a.Free(*z);
  EXPECT_EQ(a.stats().free_extents, 2u);
  a.Free(*y);
  EXPECT_EQ(a.stats().free_extents, 1u);
  EXPECT_EQ(a.stats().largest_free, PageCount(30));
}

TEST(PageAllocator, FragmentationFigure) {
  PageAllocator a(Pages(0, 40), NoHighPlacement());
  std::vector<PageRange> runs;
  for (int i = 0; i < 4; ++i) runs.push_back(*a.Allocate(PageCount(10), PageCount(1)));
  a.Free(runs[0]);
  a.Free(runs[2]);
  // 20 pages free in two 10-page extents: 1 - 10/20.
  EXPECT_DOUBLE_EQ(a.stats().fragmentation, 0.5);
}

TEST(PageAllocator, FailsOnlyWhenNothingFits) {
  PageAllocator a(Pages(0, 16), NoHighPlacement());
  EXPECT_FALSE(a.Allocate(PageCount(17), PageCount(1)).has_value());
  // Larger than the pool's alignment span, but pfn 0 is 32-aligned: fits.
  EXPECT_TRUE(a.Allocate(PageCount(1), PageCount(32)).has_value());
  EXPECT_FALSE(a.Allocate(PageCount(16), PageCount(1)).has_value());
}

TEST(PageAllocator, AlignedRequestFindsAFitBeyondTheScanLimit) {
  // Many band extents that cannot hold an aligned run, and one that can far
  // down the size order: the fallback scan must find it.
  const uint64_t n = 2, align = 8;
  PageAllocator a(Pages(0, 4096), NoHighPlacement());
  std::vector<PageRange> all;
  while (auto r = a.Allocate(PageCount(1), PageCount(1))) all.push_back(*r);
  // Free 2-page holes at pfn 8k+3 (never 8-aligned) and one at 4000 (aligned).
  int holes = 0;
  for (uint64_t base = 3; base + 2 < 3900 && holes < 3 * PageAllocator::kAlignedBandScan;
       base += 8, ++holes) {
    a.Free(Pages(base, 2));
  }
  a.Free(Pages(4000, 2));
  auto r = a.Allocate(PageCount(n), PageCount(align));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first(), Pfn(4000));
}

TEST(PageAllocator, AllocateAtTakesExactlyFreePages) {
  PageAllocator a(Pages(0, 64));
  EXPECT_TRUE(a.AllocateAt(Pages(10, 5)));
  EXPECT_FALSE(a.AllocateAt(Pages(12, 5)));  // overlaps
  EXPECT_FALSE(a.AllocateAt(Pages(60, 5)));  // outside
  EXPECT_TRUE(a.IsAllAllocated(Pages(10, 5)));
  EXPECT_TRUE(a.IsAllFree(Pages(0, 10)));
  EXPECT_EQ(a.free_pages(), PageCount(59));
}

TEST(PageAllocatorDeathTest, DoubleFreeIsOurBugAndCrashes) {
  PageAllocator a(Pages(0, 64));
  auto r = a.Allocate(PageCount(4), PageCount(1));
  a.Free(*r);
  EXPECT_DEATH(a.Free(*r), "CHECK failed");
}

// The bitmap model: one bool per page.
struct Bitmap {
  uint64_t first;
  std::vector<bool> used;
  bool FitExists(uint64_t n, uint64_t align) const {
    for (uint64_t s = (first + align - 1) / align * align; s + n <= first + used.size();
         s += align) {
      bool ok = true;
      for (uint64_t p = s; p < s + n && ok; ++p) ok = !used[p - first];
      if (ok) return true;
    }
    return false;
  }
  uint64_t LargestRun(uint64_t& runs) const {
    uint64_t best = 0, cur = 0;
    runs = 0;
    for (size_t i = 0; i < used.size(); ++i) {
      if (!used[i]) {
        if (cur++ == 0) ++runs;
        best = std::max(best, cur);
      } else {
        cur = 0;
      }
    }
    return best;
  }
};

RC_GTEST_PROP(PageAllocatorProperty, AgreesWithABitmap, ()) {
  const uint64_t first = *rc::gen::inRange<uint64_t>(0, 1000);
  const uint64_t count = *rc::gen::inRange<uint64_t>(1, 300);
  const uint64_t threshold = *rc::gen::element<uint64_t>(0, 4, 512);
  PageAllocator::Options options;
  options.small_threshold = PageCount(threshold);
  PageAllocator a(Pages(first, count), options);
  Bitmap model{first, std::vector<bool>(count, false)};
  std::vector<PageRange> live;
  const int steps = *rc::gen::inRange(1, 200);
  for (int i = 0; i < steps; ++i) {
    if (live.empty() || *rc::gen::inRange(0, 3) != 0) {
      const uint64_t n = *rc::gen::inRange<uint64_t>(1, 40);
      const uint64_t align = uint64_t{1} << *rc::gen::inRange(0, 6);
      const bool fits = model.FitExists(n, align);
      const std::optional<PageRange> r = a.Allocate(PageCount(n), PageCount(align));
      RC_ASSERT(r.has_value() == fits);
      if (!r) continue;
      RC_ASSERT(r->count().value() == n);
      RC_ASSERT(r->first().value() % align == 0);
      RC_ASSERT(Pages(first, count).Contains(*r));
      for (uint64_t p = r->first().value(); p < r->end().value(); ++p) {
        RC_ASSERT(!model.used[p - first]);
        model.used[p - first] = true;
      }
      live.push_back(*r);
    } else {
      const size_t k = *rc::gen::inRange<size_t>(0, live.size());
      a.Free(live[k]);
      for (uint64_t p = live[k].first().value(); p < live[k].end().value(); ++p) {
        model.used[p - first] = false;
      }
      live.erase(live.begin() + static_cast<ptrdiff_t>(k));
    }
    uint64_t runs = 0;
    const uint64_t largest = model.LargestRun(runs);
    const uint64_t free =
        static_cast<uint64_t>(std::count(model.used.begin(), model.used.end(), false));
    const PageAllocator::Stats s = a.stats();
    RC_ASSERT(s.free.value() == free);
    RC_ASSERT(s.largest_free.value() == largest);
    RC_ASSERT(s.free_extents == runs);  // neighbours always coalesced
  }
}

}  // namespace
}  // namespace rmem

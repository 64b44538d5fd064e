// fragmentation_bench: how full a 1 GiB carve-out gets on a video-like
// trace before the first allocation fails, for rmem's page allocator and
// for a first-fit bitmap allocator like Linux genalloc's
// gen_pool_first_fit_align (the allocator behind the Linux TEE
// restricted-memory pool), written here as the baseline.
//
// The trace (fixed seeds): each step frees the buffers whose lifetime ended,
// then allocates one: 60% 8 MiB video frames at 2 MiB alignment, 30%
// 64-512 KiB, 10% 4-64 KiB; lifetimes uniform in [1, L] steps, with L set so
// that the mean demand is 90% of the carve-out (so failures come from
// fragmentation and load peaks after much churn, not from a filling phase).
// Both allocators see the same sequence. Printed per seed and on average:
// the fill ratio (allocated / capacity) at the first failure, the step it
// happened, and the fragmentation figure (1 - largest free run / free).
//
//   fragmentation_bench [--seeds N]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "broker/carveout/page_allocator.h"
#include "broker/check.h"

namespace rmem::bench {
namespace {

constexpr uint64_t kCapacityPages = (uint64_t{1} << 30) / kPageSize;  // 1 GiB
constexpr uint64_t kBasePfn = 0x100000;                               // 4 GiB: 2 MiB aligned

// The baseline: one bit per page; first fit with alignment by physical
// address: from the first zero bit, round up to the alignment, and if a
// used page lies in the window, restart just past it.
class FirstFitBitmap {
 public:
  FirstFitBitmap() : used_(kCapacityPages, false) {}
  std::optional<uint64_t> Allocate(uint64_t n, uint64_t align) {
    uint64_t start = 0;
    const uint64_t size = used_.size();
    for (;;) {
      uint64_t index = start;
      while (index < size && used_[index]) ++index;
      const uint64_t pfn = kBasePfn + index;
      index = (pfn + align - 1) / align * align - kBasePfn;
      if (index + n > size) return std::nullopt;
      uint64_t i = index;
      while (i < index + n && !used_[i]) ++i;
      if (i == index + n) {
        std::fill(used_.begin() + static_cast<long>(index),
                  used_.begin() + static_cast<long>(index + n), true);
        return index;
      }
      start = i + 1;
    }
  }
  void Free(uint64_t index, uint64_t n) {
    std::fill(used_.begin() + static_cast<long>(index),
              used_.begin() + static_cast<long>(index + n), false);
  }
  double Fragmentation() const {
    uint64_t free = 0, run = 0, largest = 0;
    for (bool u : used_) {
      run = u ? 0 : run + 1;
      free += !u;
      largest = std::max(largest, run);
    }
    return free == 0 ? 0 : 1.0 - static_cast<double>(largest) / static_cast<double>(free);
  }

 private:
  std::vector<bool> used_;
};

class RmemAllocator {
 public:
  RmemAllocator() : a_(*PageRange::FromPages(Pfn(kBasePfn), PageCount(kCapacityPages))) {}
  std::optional<uint64_t> Allocate(uint64_t n, uint64_t align) {
    std::optional<PageRange> r = a_.Allocate(PageCount(n), PageCount(align));
    if (!r) return std::nullopt;
    return r->first().value() - kBasePfn;
  }
  void Free(uint64_t index, uint64_t n) {
    a_.Free(*PageRange::FromPages(Pfn(kBasePfn + index), PageCount(n)));
  }
  double Fragmentation() const { return a_.stats().fragmentation; }

 private:
  PageAllocator a_;
};

struct Item {
  uint64_t pages;
  uint64_t align;
  uint64_t lifetime;
};

class Trace {
 public:
  Trace(uint64_t seed, uint64_t max_lifetime) : rng_(seed), max_lifetime_(max_lifetime) {}
  Item Next() {
    const uint64_t kind = rng_() % 100;
    Item it;
    if (kind < 60) {
      it = {2048, 512, 0};  // 8 MiB frame at 2 MiB
    } else if (kind < 90) {
      it = {16 + rng_() % 113, 1, 0};  // 64-512 KiB
    } else {
      it = {1 + rng_() % 16, 1, 0};  // 4-64 KiB
    }
    it.lifetime = 1 + rng_() % max_lifetime_;
    return it;
  }

 private:
  std::mt19937_64 rng_;
  uint64_t max_lifetime_;
};

struct Result {
  double fill = 0;
  uint64_t step = 0;
  double fragmentation = 0;
};

template <typename Allocator>
Result Run(uint64_t seed, uint64_t max_lifetime) {
  Allocator a;
  Trace trace(seed, max_lifetime);
  std::multimap<uint64_t, std::pair<uint64_t, uint64_t>> expiry;  // step -> (index, pages)
  uint64_t allocated = 0;
  for (uint64_t step = 0; step < 10000000; ++step) {
    for (auto it = expiry.begin(); it != expiry.end() && it->first <= step; it = expiry.erase(it)) {
      a.Free(it->second.first, it->second.second);
      allocated -= it->second.second;
    }
    const Item item = trace.Next();
    std::optional<uint64_t> index = a.Allocate(item.pages, item.align);
    if (!index) {
      return Result{static_cast<double>(allocated) / kCapacityPages, step, a.Fragmentation()};
    }
    allocated += item.pages;
    expiry.emplace(step + item.lifetime, std::make_pair(*index, item.pages));
  }
  return Result{1.0, 10000000, 0};
}

}  // namespace
}  // namespace rmem::bench

int main(int argc, char** argv) {
  uint64_t seeds = 20;
  double load = 0.9;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
      seeds = std::strtoull(argv[++i], nullptr, 0);
    } else if (std::strcmp(argv[i], "--load") == 0 && i + 1 < argc) {
      load = std::strtod(argv[++i], nullptr);
    } else {
      std::printf("usage: fragmentation_bench [--seeds N]\n");
      return std::strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  using namespace rmem::bench;
  // Mean item: 0.6 * 2048 + 0.3 * 72 + 0.1 * 8.5 pages; mean live items =
  // (L + 1) / 2; choose L for a mean demand of 90% of capacity.
  const double mean_pages = 0.6 * 2048 + 0.3 * 72 + 0.1 * 8.5;
  const uint64_t max_lifetime =
      static_cast<uint64_t>(2 * load * static_cast<double>(kCapacityPages) / mean_pages) - 1;
  std::printf("fragmentation on a video-like trace, 1 GiB carve-out, lifetimes 1-%llu steps\n",
              static_cast<unsigned long long>(max_lifetime));
  std::printf("%6s | %-31s | %-31s\n", "seed", "rmem best-fit (fill, step, frag)",
              "first-fit bitmap (genalloc-like)");
  double sum_ours = 0, sum_base = 0, min_ours = 1, min_base = 1;
  int wins = 0, ties = 0;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    const Result ours = Run<RmemAllocator>(seed, max_lifetime);
    const Result base = Run<FirstFitBitmap>(seed, max_lifetime);
    std::printf("%6llu | %5.1f%% %9llu %6.3f        | %5.1f%% %9llu %6.3f\n",
                static_cast<unsigned long long>(seed), 100 * ours.fill,
                static_cast<unsigned long long>(ours.step), ours.fragmentation, 100 * base.fill,
                static_cast<unsigned long long>(base.step), base.fragmentation);
    sum_ours += ours.fill;
    sum_base += base.fill;
    min_ours = std::min(min_ours, ours.fill);
    min_base = std::min(min_base, base.fill);
    wins += ours.step > base.step;
    ties += ours.step == base.step;
  }
  const double n = static_cast<double>(seeds);
  std::printf(
      "mean fill at first failure: rmem %.1f%%, first-fit %.1f%% (ratio %.3f); "
      "worst seed: rmem %.1f%%, first-fit %.1f%%\n",
      100 * sum_ours / n, 100 * sum_base / n, sum_ours / sum_base, 100 * min_ours, 100 * min_base);
  std::printf("rmem lasted longer on %d of %llu seeds (%d ties); target rmem >= baseline: %s\n",
              wins, static_cast<unsigned long long>(seeds), ties,
              sum_ours >= sum_base ? "met" : "NOT MET");
  return 0;
}

// Typed addresses, page ranges and checked arithmetic.
#include "broker/types.h"

#include <gtest/gtest.h>

#include "broker/rights.h"

namespace rmem {
namespace {

TEST(CheckedMath, AddAndMulReportOverflow) {
  EXPECT_EQ(CheckedAdd(1, 2), 3u);
  EXPECT_EQ(CheckedAdd(UINT64_MAX, 1), std::nullopt);
  EXPECT_EQ(CheckedMul(uint64_t{1} << 32, uint64_t{1} << 31), uint64_t{1} << 63);
  EXPECT_EQ(CheckedMul(uint64_t{1} << 32, uint64_t{1} << 32), std::nullopt);
}

TEST(CheckedMath, BytesToPagesRoundsUpAndCatchesOverflow) {
  EXPECT_EQ(BytesToPagesRoundUp(0), 0u);
  EXPECT_EQ(BytesToPagesRoundUp(1), 1u);
  EXPECT_EQ(BytesToPagesRoundUp(4096), 1u);
  EXPECT_EQ(BytesToPagesRoundUp(4097), 2u);
  EXPECT_EQ(BytesToPagesRoundUp(UINT64_MAX), std::nullopt);
  EXPECT_EQ(BytesToPagesRoundUp(UINT64_MAX - 4095), kPfnLimit - 1);
}

TEST(PageRange, FromBytesAcceptsAlignedRanges) {
  auto r = PageRange::FromBytes(PhysAddr(0x80000000), 0x200000);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first(), Pfn(0x80000));
  EXPECT_EQ(r->count(), PageCount(512));
  EXPECT_EQ(r->base(), PhysAddr(0x80000000));
  EXPECT_EQ(r->size_bytes(), 0x200000u);
  EXPECT_EQ(r->end(), Pfn(0x80200));
  EXPECT_EQ(r->ToString(), "[0x80000000, 0x80200000)");
}

TEST(PageRange, FromBytes_Unaligned_Rejected) {
  EXPECT_FALSE(PageRange::FromBytes(PhysAddr(0x80000001), 0x1000));
  EXPECT_FALSE(PageRange::FromBytes(PhysAddr(0x80000000), 0x1001));
}

TEST(PageRange, FromBytes_EndPastAddressSpace_Rejected) {
  EXPECT_FALSE(PageRange::FromBytes(PhysAddr(0xfffffffffffff000), 0x2000));
  // Ending exactly at 2^64 is representable.
  EXPECT_TRUE(PageRange::FromBytes(PhysAddr(0xfffffffffffff000), 0x1000));
}

TEST(PageRange, FromPages_EndPastPfnLimit_Rejected) {
  EXPECT_FALSE(PageRange::FromPages(Pfn(kPfnLimit - 1), PageCount(2)));
  EXPECT_FALSE(PageRange::FromPages(Pfn(UINT64_MAX), PageCount(UINT64_MAX)));
}

TEST(PageRange, ContainsAndOverlapsAreHalfOpen) {
  const PageRange a = *PageRange::FromPages(Pfn(10), PageCount(10));  // [10, 20)
  const PageRange b = *PageRange::FromPages(Pfn(20), PageCount(5));   // [20, 25)
  const PageRange c = *PageRange::FromPages(Pfn(19), PageCount(2));   // [19, 21)
  EXPECT_FALSE(a.Overlaps(b));
  EXPECT_TRUE(a.Overlaps(c));
  EXPECT_TRUE(b.Overlaps(c));
  EXPECT_TRUE(a.Contains(Pfn(19)));
  EXPECT_FALSE(a.Contains(Pfn(20)));
  EXPECT_TRUE(a.Contains(*PageRange::FromPages(Pfn(12), PageCount(8))));
  EXPECT_FALSE(a.Contains(c));
  const PageRange empty = *PageRange::FromPages(Pfn(15), PageCount(0));
  EXPECT_FALSE(a.Overlaps(empty));
}

TEST(Address, PlusIsChecked) {
  EXPECT_EQ(PhysAddr(0x1000).Plus(0x1000), PhysAddr(0x2000));
  EXPECT_EQ(PhysAddr(UINT64_MAX).Plus(1), std::nullopt);
}

TEST(Rights, FromBitsRejectsUnknownBits) {
  EXPECT_TRUE(Rights::FromBits(7).has_value());
  EXPECT_FALSE(Rights::FromBits(8).has_value());
  EXPECT_FALSE(Rights::FromBits(0x80000001).has_value());
}

TEST(Rights, AccessAndCpuAccess) {
  const Rights device_rw = Rights::Of(Rights::kRead | Rights::kWrite);
  EXPECT_EQ(device_rw.access(), Access::kReadWrite);
  EXPECT_EQ(device_rw.cpu_access(), Access::kNone);
  const Rights cpu_r = Rights::Of(Rights::kRead | Rights::kCpuMap);
  EXPECT_EQ(cpu_r.cpu_access(), Access::kRead);
  EXPECT_TRUE(Rights::Of(Rights::kCpuMap).empty());
  EXPECT_TRUE(device_rw.Includes(Rights::Of(Rights::kRead)));
  EXPECT_FALSE(device_rw.Includes(cpu_r));
  EXPECT_EQ(Rights::Of(7).ToString(), "read+write+cpu-map");
  EXPECT_EQ(Rights().ToString(), "none");
}

}  // namespace
}  // namespace rmem

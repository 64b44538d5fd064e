// Carve-out validation: one named test per rule.
#include "broker/carveout/carveout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace rmem {
namespace {

using ::testing::HasSubstr;

Carveout Video() { return {"video", PhysAddr(0x80000000), 0x400000, "secure-video", 0x200000}; }

TEST(Carveout, Valid_ReturnsItsPageRange) {
  auto r = ValidateCarveout(Video());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->base(), PhysAddr(0x80000000));
  EXPECT_EQ(r->count(), PageCount(1024));
}

TEST(Carveout, NoName_Invalid) {
  Carveout c = Video();
  c.name = "";
  EXPECT_EQ(ValidateCarveout(c).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Carveout, ZeroSize_Invalid) {
  Carveout c = Video();
  c.size = 0;
  EXPECT_THAT(ValidateCarveout(c).status().message(), HasSubstr("size 0"));
}

TEST(Carveout, UnalignedBase_Invalid) {
  Carveout c = Video();
  c.base = PhysAddr(0x80000800);
  EXPECT_THAT(ValidateCarveout(c).status().message(), HasSubstr("not a multiple of 4 KiB"));
}

TEST(Carveout, UnalignedSize_Invalid) {
  Carveout c = Video();
  c.size = 0x400001;
  EXPECT_EQ(ValidateCarveout(c).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Carveout, RangeOverflow_Invalid) {
  Carveout c = Video();
  c.base = PhysAddr(0xffffffffff000000);
  c.size = 0x2000000;
  EXPECT_THAT(ValidateCarveout(c).status().message(), HasSubstr("overflows"));
}

TEST(Carveout, MaxAlignNotPowerOfTwo_Invalid) {
  Carveout c = Video();
  c.max_align = 0x300000;
  EXPECT_THAT(ValidateCarveout(c).status().message(), HasSubstr("not a power of two"));
}

TEST(Carveout, MaxAlignBelowPage_Invalid) {
  Carveout c = Video();
  c.max_align = 0x800;
  EXPECT_EQ(ValidateCarveout(c).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Carveouts, DuplicateName_Invalid) {
  Carveout b = Video();
  b.base = PhysAddr(0x90000000);
  const absl::Status s = ValidateCarveouts({Video(), b});
  EXPECT_THAT(s.message(), HasSubstr("'video' is used twice"));
}

TEST(Carveouts, Overlap_InvalidNamingBoth) {
  Carveout b = Video();
  b.name = "display";
  b.base = PhysAddr(0x803ff000);
  const absl::Status s = ValidateCarveouts({b, Video()});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'video'"));
  EXPECT_THAT(s.message(), HasSubstr("'display'"));
  EXPECT_THAT(s.message(), HasSubstr("overlap"));
}

TEST(Carveouts, Touching_Valid) {
  Carveout b = Video();
  b.name = "display";
  b.base = PhysAddr(0x80400000);
  EXPECT_TRUE(ValidateCarveouts({Video(), b}).ok());
}

}  // namespace
}  // namespace rmem

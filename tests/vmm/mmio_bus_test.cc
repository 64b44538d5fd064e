#include "vmm/devices/mmio_bus.h"

#include <vector>

#include "gtest/gtest.h"

namespace rmem::vmm {
namespace {

class Recorder : public MmioDevice {
 public:
  void MmioRead(uint64_t offset, std::span<uint8_t> data) override {
    reads.push_back(offset);
    for (uint8_t& b : data) b = 0xab;
  }
  void MmioWrite(uint64_t offset, std::span<const uint8_t> data) override {
    writes.push_back({offset, data.size()});
  }
  std::vector<uint64_t> reads;
  std::vector<std::pair<uint64_t, size_t>> writes;
};

TEST(MmioBusTest, RoutesByWindowWithRelativeOffsets) {
  Recorder a, b;
  MmioBus bus;
  ASSERT_TRUE(bus.Add("a", GuestAddr(0x1000), 0x100, &a).ok());
  ASSERT_TRUE(bus.Add("b", GuestAddr(0x2000), 0x200, &b).ok());
  uint8_t data[4] = {};
  EXPECT_TRUE(bus.Read(GuestAddr(0x1010), data));
  EXPECT_EQ(data[3], 0xab);
  EXPECT_TRUE(bus.Write(GuestAddr(0x21fc), data));
  ASSERT_EQ(a.reads.size(), 1u);
  EXPECT_EQ(a.reads[0], 0x10u);
  ASSERT_EQ(b.writes.size(), 1u);
  EXPECT_EQ(b.writes[0].first, 0x1fcu);
  EXPECT_EQ(b.writes[0].second, 4u);
}

TEST(MmioBusTest, UnclaimedAndStraddlingAccessesAreRefused) {
  Recorder a;
  MmioBus bus;
  ASSERT_TRUE(bus.Add("a", GuestAddr(0x1000), 0x100, &a).ok());
  uint8_t data[8] = {};
  EXPECT_FALSE(bus.Read(GuestAddr(0xfff), std::span<uint8_t>(data, 1)));
  EXPECT_FALSE(bus.Read(GuestAddr(0x1100), std::span<uint8_t>(data, 1)));
  EXPECT_FALSE(bus.Write(GuestAddr(0x10fc), data));  // 8 bytes from 0x10fc cross the end
  EXPECT_TRUE(a.reads.empty());
  EXPECT_TRUE(a.writes.empty());
}

TEST(MmioBusTest, RejectsOverlapsEmptyAndWrappingWindows) {
  Recorder a;
  MmioBus bus;
  ASSERT_TRUE(bus.Add("a", GuestAddr(0x1000), 0x100, &a).ok());
  const absl::Status overlap = bus.Add("b", GuestAddr(0x10ff), 0x10, &a);
  EXPECT_EQ(overlap.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(overlap.message().find("overlaps a"), absl::string_view::npos) << overlap;
  EXPECT_EQ(bus.Add("c", GuestAddr(0x3000), 0, &a).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bus.Add("d", GuestAddr(~uint64_t{0} - 0xf), 0x20, &a).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(bus.Add("e", GuestAddr(0x1100), 0x10, &a).ok());  // adjacent is fine
}

}  // namespace
}  // namespace rmem::vmm

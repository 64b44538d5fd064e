#include "vmm/arch/arm64/boot_layout.h"

#include <vector>

#include "gtest/gtest.h"

namespace rmem::vmm::arm64 {
namespace {

std::vector<uint8_t> Header(uint64_t text_offset, uint64_t image_size, size_t file_size = 4096) {
  std::vector<uint8_t> h(file_size);
  for (int i = 0; i < 8; ++i) {
    h[8 + i] = static_cast<uint8_t>(text_offset >> (8 * i));
    h[16 + i] = static_cast<uint8_t>(image_size >> (8 * i));
  }
  h[0x38] = 'A';
  h[0x39] = 'R';
  h[0x3a] = 'M';
  h[0x3b] = 0x64;
  return h;
}

TEST(BootLayoutTest, ParsesTheHeader) {
  absl::StatusOr<ImageHeader> h = ParseImageHeader(Header(0, 0x2000000));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->text_offset, 0u);
  EXPECT_EQ(h->image_size, 0x2000000u);
}

TEST(BootLayoutTest, RejectsCompressedShortAndImplausibleImages) {
  std::vector<uint8_t> gz = Header(0, 0x2000000);
  gz[0x3b] = 0;
  const absl::Status s = ParseImageHeader(gz).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("decompress"), absl::string_view::npos) << s;
  EXPECT_FALSE(ParseImageHeader(std::vector<uint8_t>(63)).ok());
  EXPECT_FALSE(ParseImageHeader(Header(0x1234, 0x2000000)).ok());  // text_offset not 4K aligned
  EXPECT_FALSE(ParseImageHeader(Header(0, 100)).ok());  // image_size below the file size
}

TEST(BootLayoutTest, KernelAtBottomDtbAtTopInitrdBelowIt) {
  const ImageHeader h{.text_offset = 0, .image_size = 0x2500000};
  absl::StatusOr<BootLayout> l =
      PlanBootLayout(GuestAddr(0x40000000), 256 << 20, h, 0x2000000, 0x300001);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->kernel, GuestAddr(0x40000000));
  EXPECT_EQ(l->dtb, GuestAddr(0x40000000 + (256 << 20) - (2 << 20)));
  EXPECT_EQ(l->initrd.value() + 0x301000, l->dtb.value());  // page-rounded, right below
  EXPECT_EQ(l->initrd_size, 0x300001u);
  EXPECT_GE(l->initrd.value(), 0x40000000u + 0x2600000u);  // clear of the kernel's bss
}

TEST(BootLayoutTest, TooLittleRamIsAClearError) {
  const ImageHeader h{.text_offset = 0, .image_size = 0x2500000};
  const absl::Status s =
      PlanBootLayout(GuestAddr(0x40000000), 32 << 20, h, 0x2000000, 16 << 20).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("give the guest more memory"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace rmem::vmm::arm64

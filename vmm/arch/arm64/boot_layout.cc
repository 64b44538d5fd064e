#include "vmm/arch/arm64/boot_layout.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace rmem::vmm::arm64 {
namespace {

constexpr uint64_t k2M = 2 << 20;
constexpr uint64_t kHeaderSize = 64;
constexpr uint32_t kMagic = 0x644d5241;  // "ARM\x64", little-endian at offset 0x38

uint64_t Le64(std::span<const uint8_t> b, size_t off) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[off + i];
  return v;
}
uint64_t AlignDown(uint64_t v, uint64_t a) { return v & ~(a - 1); }
uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

}  // namespace

absl::StatusOr<ImageHeader> ParseImageHeader(std::span<const uint8_t> image) {
  if (image.size() < kHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel image is ", image.size(), " bytes, shorter than the arm64 header"));
  }
  if (static_cast<uint32_t>(Le64(image, 0x38)) != kMagic) {
    return absl::InvalidArgumentError(
        "kernel image has no arm64 Image magic \"ARM\\x64\" at 0x38 (a compressed vmlinuz? "
        "decompress it first)");
  }
  ImageHeader h{.text_offset = Le64(image, 8), .image_size = Le64(image, 16)};
  // image_size 0 means a kernel older than 3.17; assume text_offset 0x80000 and the file size.
  if (h.image_size == 0) {
    h.text_offset = 0x80000;
    h.image_size = image.size();
  }
  if (h.text_offset >= k2M || h.text_offset % 4096 != 0 || h.image_size < image.size() ||
      h.image_size > (uint64_t{1} << 32)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kernel image header is implausible: text_offset ", Hex(h.text_offset), ", image_size ",
        Hex(h.image_size), ", file ", Hex(image.size()), " bytes"));
  }
  return h;
}

absl::StatusOr<BootLayout> PlanBootLayout(GuestAddr ram_base, uint64_t ram_size,
                                          const ImageHeader& image, uint64_t image_file_size,
                                          uint64_t initrd_size) {
  BootLayout l;
  const uint64_t base = AlignUp(ram_base.value(), k2M);
  const uint64_t ram_end = ram_base.value() + ram_size;
  l.kernel = GuestAddr(base + image.text_offset);
  const uint64_t kernel_end =
      AlignUp(l.kernel.value() + std::max(image.image_size, image_file_size), k2M);
  // The device tree gets the last 2 MiB slot of RAM, the initramfs the pages below it.
  const uint64_t top = AlignDown(ram_end, k2M);
  const uint64_t initrd_pages = AlignUp(initrd_size, 4096);
  if (top < kernel_end || top - kernel_end < kMaxDtbSize + initrd_pages) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "guest RAM of ", ram_size >> 20, " MiB is too small for a kernel of ",
        std::max(image.image_size, image_file_size) >> 10, " KiB, an initramfs of ",
        initrd_size >> 10, " KiB and a 2 MiB device tree slot; give the guest more memory"));
  }
  const uint64_t dtb = top - kMaxDtbSize;
  const uint64_t initrd = dtb - initrd_pages;
  l.dtb = GuestAddr(dtb);
  l.initrd = GuestAddr(initrd);
  l.initrd_size = initrd_size;
  return l;
}

}  // namespace rmem::vmm::arm64

// Where an arm64 Linux kernel, its initramfs and its device tree go in guest
// RAM, following the kernel's booting.rst: the Image is placed at a 2 MiB
// aligned base plus its header's text_offset and needs image_size bytes from
// there (bss included); the device tree is 8-byte aligned, at most 2 MiB and
// must not overlap the kernel; the initramfs is anywhere the kernel will not
// overwrite. We put the kernel at the bottom of RAM and the device tree and
// initramfs at the top, so the kernel's early allocations see one free hole.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "broker/types.h"

namespace rmem::vmm::arm64 {

struct ImageHeader {
  uint64_t text_offset = 0;
  uint64_t image_size = 0;  // bytes the kernel occupies from its load address, bss included
};

// Parses the 64-byte arm64 Image header. InvalidArgument if the file is too
// short, the magic "ARM\x64" at 0x38 is missing (e.g. a compressed vmlinuz),
// or the sizes are implausible.
absl::StatusOr<ImageHeader> ParseImageHeader(std::span<const uint8_t> image);

inline constexpr uint64_t kMaxDtbSize = 2 << 20;

struct BootLayout {
  GuestAddr kernel;  // load address = entry point
  GuestAddr initrd;  // 0 size if none
  uint64_t initrd_size = 0;
  GuestAddr dtb;
};

// Plans the layout in RAM [ram_base, ram_base + ram_size). ResourceExhausted
// naming the shortfall if the pieces do not fit without overlapping.
absl::StatusOr<BootLayout> PlanBootLayout(GuestAddr ram_base, uint64_t ram_size,
                                          const ImageHeader& image, uint64_t image_file_size,
                                          uint64_t initrd_size);

}  // namespace rmem::vmm::arm64

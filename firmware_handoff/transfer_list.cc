// Contract section 2: an Arm Firmware Handoff Transfer List (spec v2.0, every
// optional check mandatory), checked in the contract's order; the one FDT
// entry (tag 1) then goes through ParseFdt.
#include "firmware_handoff/transfer_list.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace rmem::firmware_handoff {
namespace {

constexpr uint32_t kSignature = 0x4a0fb10b;
constexpr uint32_t kMinHeader = 0x18;
constexpr uint32_t kTagFdt = 1;
constexpr uint32_t kFlagChecksum = 1;

uint32_t Le32(std::span<const uint8_t> b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);  // little-endian hosts only (static_assert in vmm)
  return v;
}
uint64_t Align8(uint64_t v) { return (v + 7) & ~uint64_t{7}; }

HandoffError Error(ErrorKind kind, std::string message) {
  return {kind, absl::StrCat("transfer list: ", message)};
}

}  // namespace

std::variant<std::span<const uint8_t>, HandoffError> FdtOfTransferList(
    std::span<const uint8_t> blob) {
  const uint64_t len = blob.size();
  if (len < kMinHeader) {  // 2.1
    return Error(ErrorKind::kTlTruncated,
                 absl::StrCat(len, " bytes is shorter than the ", kMinHeader, "-byte header"));
  }
  if (Le32(blob, 0) != kSignature) {  // 2.2
    return Error(ErrorKind::kTlBadSignature,
                 absl::StrCat("signature ", Hex(Le32(blob, 0)), ", want ", Hex(kSignature)));
  }
  const uint8_t version = blob[5];
  if (version == 0) return Error(ErrorKind::kTlBadVersion, "version 0");  // 2.3
  const uint32_t hdr_size = blob[6];
  if (hdr_size < kMinHeader) {  // 2.4
    return Error(ErrorKind::kTlBadHdrSize,
                 absl::StrCat("hdr_size ", Hex(hdr_size), " is below ", Hex(kMinHeader)));
  }
  const uint64_t size = Le32(blob, 8);
  const uint64_t max_size = Le32(blob, 0xc);
  if (size % 8 != 0 || max_size % 8 != 0 || size < hdr_size) {  // 2.5
    return Error(ErrorKind::kTlBadSize,
                 absl::StrCat("size ", Hex(size), " / max_size ", Hex(max_size),
                              ": both must be multiples of 8 and size at least hdr_size ",
                              Hex(hdr_size)));
  }
  if (size > max_size) {  // 2.6
    return Error(ErrorKind::kTlSizeExceedsMax,
                 absl::StrCat("size ", Hex(size), " exceeds max_size ", Hex(max_size)));
  }
  if (size > len || max_size > len) {  // 2.7
    return Error(ErrorKind::kTlTruncated,
                 absl::StrCat("size ", Hex(size), " / max_size ", Hex(max_size),
                              " run past the ", Hex(len), " bytes handed over"));
  }
  if (Le32(blob, 0x10) & kFlagChecksum) {  // 2.8
    uint8_t sum = 0;
    for (uint64_t i = 0; i < size; ++i) sum = static_cast<uint8_t>(sum + blob[i]);
    if (sum != 0) {
      return Error(ErrorKind::kTlBadChecksum,
                   absl::StrCat("bytes 0..", Hex(size), " sum to ", Hex(sum), " mod 256, want 0"));
    }
  }
  // 2.9: walk every entry, to the end, before 2.10 judges the FDT entries.
  std::optional<std::span<const uint8_t>> fdt;
  int fdt_entries = 0;
  uint64_t second_fdt_at = 0;
  for (uint64_t off = Align8(hdr_size); off < size;) {
    if (off + 8 > size) {
      return Error(ErrorKind::kTlBadEntry,
                   absl::StrCat("entry header at ", Hex(off), " runs past size ", Hex(size)));
    }
    const uint32_t word = Le32(blob, off);
    const uint32_t tag = word & 0xffffff;
    const uint64_t te_hdr = word >> 24;
    const uint64_t data_size = Le32(blob, off + 4);
    if (te_hdr < 8 || off + te_hdr + data_size > size) {  // all terms < 2^33: no overflow
      return Error(ErrorKind::kTlBadEntry,
                   absl::StrCat("entry at ", Hex(off), " (tag ", tag, ", hdr_len ", te_hdr,
                                ", data_size ", Hex(data_size), ") is malformed or runs past size ",
                                Hex(size)));
    }
    if (tag == kTagFdt && ++fdt_entries == 1) fdt = blob.subspan(off + te_hdr, data_size);
    if (tag == kTagFdt && fdt_entries == 2) second_fdt_at = off;
    off += Align8(te_hdr + data_size);
  }
  // 2.10: exactly one FDT entry; every other tag was skipped.
  if (fdt_entries == 0) return Error(ErrorKind::kTlNoFdt, "no FDT entry (tag 1)");
  if (fdt_entries > 1) {
    return Error(ErrorKind::kTlDuplicateFdt,
                 absl::StrCat(fdt_entries, " FDT entries; the second at ", Hex(second_fdt_at)));
  }
  return *fdt;
}

HandoffResult ParseTransferList(std::span<const uint8_t> blob) {
  std::variant<std::span<const uint8_t>, HandoffError> fdt = FdtOfTransferList(blob);
  if (auto* e = std::get_if<HandoffError>(&fdt)) return std::move(*e);
  return ParseFdt(std::get<std::span<const uint8_t>>(fdt));  // 2.11
}

PlatformResult ReadPlatformFromTransferList(std::span<const uint8_t> blob) {
  std::variant<std::span<const uint8_t>, HandoffError> fdt = FdtOfTransferList(blob);
  if (auto* e = std::get_if<HandoffError>(&fdt)) return std::move(*e);
  return ReadPlatformFromFdt(std::get<std::span<const uint8_t>>(fdt));
}

}  // namespace rmem::firmware_handoff

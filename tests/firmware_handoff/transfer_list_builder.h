// Builds Firmware Handoff Transfer Lists (spec v2.0) for tests and fuzz
// corpora: well-formed by default, with a knob for every field the carve-out
// contract (section 2) checks, so each rule can be broken on its own.
//
// Layout written (all little-endian):
//   header  0x00 u32 signature   0x04 u8 checksum   0x05 u8 version
//           0x06 u8 hdr_size     0x07 u8 alignment  0x08 u32 size
//           0x0c u32 max_size    0x10 u32 flags     0x14 u32 reserved
//           [0x18, hdr_size)     extra header bytes of a later version
//   entries from align8(hdr_size): u32 tag_id(23:0) | te_hdr(31:24),
//           u32 data_size, [off+8, off+te_hdr) filler, data at off+te_hdr,
//           next entry at align8(off + te_hdr + data bytes written)
//   slack   [size, max_size): not covered by the checksum
//
// The image is backed by uint64_t storage, so bytes() is 8-byte aligned as
// parse_tl requires.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace rmem::firmware_handoff::test_support {

inline constexpr uint32_t kTlSignature = 0x4a0fb10b;
inline constexpr uint8_t kTlVersion = 2;
inline constexpr uint8_t kTlHeaderSize = 0x18;
inline constexpr uint32_t kTlFlagChecksum = 1u << 0;
inline constexpr uint32_t kTagVoid = 0;
inline constexpr uint32_t kTagFdt = 1;  // XFERLIST_FDT

// One transfer entry. The defaults give a well-formed 8-byte entry header.
struct TlEntry {
  uint32_t tag_id = kTagVoid;  // only bits 23:0 are written
  uint8_t te_hdr = 8;          // data begins at off + te_hdr
  std::vector<uint8_t> data;
  // Written as data_size instead of data.size(): an overrun, a wrap, ...
  // The layout still uses the bytes actually written.
  std::optional<uint32_t> declared_data_size;
  uint8_t header_filler = 0xa5;  // bytes [off+8, off+te_hdr) when te_hdr > 8
};

// An 8-byte aligned TL image; `len` is what firmware "handed over".
class TlImage {
 public:
  TlImage(std::vector<uint64_t> storage, size_t len);

  std::span<const uint8_t> bytes() const;
  std::span<uint8_t> mutable_bytes();
  size_t len() const { return len_; }

 private:
  std::vector<uint64_t> storage_;
  size_t len_;
};

class TransferListBuilder {
 public:
  // --- entries, in list order ---
  TransferListBuilder& Add(TlEntry entry);
  TransferListBuilder& AddFdt(std::span<const uint8_t> fdt, uint8_t te_hdr = 8);
  TransferListBuilder& AddVoid(uint32_t data_size);
  TransferListBuilder& AddTag(uint32_t tag_id, std::vector<uint8_t> data);

  // --- header fields (defaults: a valid v2 header) ---
  TransferListBuilder& Signature(uint32_t signature);
  TransferListBuilder& Version(uint8_t version);
  // hdr_size > 0x18 leaves room for a later version's extra header bytes,
  // filled with `filler`; entries then start at align8(hdr_size).
  TransferListBuilder& HdrSize(uint8_t hdr_size, uint8_t filler = 0x5a);
  TransferListBuilder& Alignment(uint8_t alignment);
  TransferListBuilder& Flags(uint32_t flags);  // replaces all bits
  TransferListBuilder& ChecksumFlag(bool set);  // bit 0 only
  TransferListBuilder& Reserved(uint32_t reserved);
  // Writes a checksum byte that makes the sum over [0, size) come to `delta`
  // instead of 0 (delta 0 restores a correct checksum).
  TransferListBuilder& ChecksumOff(uint8_t delta);

  // --- sizes (defaults: size = align8(end of last entry), max_size = size + slack,
  // len = max_size) ---
  TransferListBuilder& Size(uint32_t size);          // the header field
  TransferListBuilder& MaxSize(uint32_t max_size);   // the header field
  TransferListBuilder& Slack(uint32_t bytes);        // default 0x40
  TransferListBuilder& SlackFill(uint8_t byte);      // default 0
  // Raw bytes written at `offset` after everything else (before the checksum
  // is computed): anything a knob above cannot express, e.g. an entry in the
  // slack.
  TransferListBuilder& Patch(size_t offset, std::vector<uint8_t> bytes);
  // The length handed to the reader; the backing store always covers it.
  TransferListBuilder& Len(size_t len);

  // Offset of entry `i` as laid out (for tests that patch an entry).
  size_t EntryOffset(size_t i) const;
  // align8(max(hdr_size, 0x18)): where the first entry is written.
  size_t FirstEntryOffset() const;
  // The size field a Build() would write if Size() was not called.
  uint32_t NaturalSize() const;

  TlImage Build() const;

 private:
  struct PatchBytes {
    size_t offset;
    std::vector<uint8_t> bytes;
  };

  std::vector<TlEntry> entries_;
  uint32_t signature_ = kTlSignature;
  uint8_t version_ = kTlVersion;
  uint8_t hdr_size_ = kTlHeaderSize;
  uint8_t hdr_filler_ = 0x5a;
  uint8_t alignment_ = 3;  // log2 of the 8-byte entry alignment
  uint32_t flags_ = kTlFlagChecksum;
  uint32_t reserved_ = 0;
  uint8_t checksum_delta_ = 0;
  std::optional<uint32_t> size_;
  std::optional<uint32_t> max_size_;
  uint32_t slack_ = 0x40;
  uint8_t slack_fill_ = 0;
  std::vector<PatchBytes> patches_;
  std::optional<size_t> len_;
};

// align8(x) as the spec writes it.
constexpr uint64_t Align8(uint64_t x) { return (x + 7) & ~uint64_t{7}; }

}  // namespace rmem::firmware_handoff::test_support

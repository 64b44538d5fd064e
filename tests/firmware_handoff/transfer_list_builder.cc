// Lays out a Transfer List image from the builder's entries and knobs.
#include "tests/firmware_handoff/transfer_list_builder.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace rmem::firmware_handoff::test_support {
namespace {

void PutLe32(std::span<uint8_t> b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

// Bytes an entry occupies before the next one: its 8-byte header (even when
// te_hdr claims less), the filler up to te_hdr, and the data written.
size_t EntryFootprint(const TlEntry& e) {
  return Align8(std::max<size_t>(e.te_hdr, 8) + e.data.size());
}

}  // namespace

TlImage::TlImage(std::vector<uint64_t> storage, size_t len) : storage_(std::move(storage)), len_(len) {}

std::span<const uint8_t> TlImage::bytes() const {
  return {reinterpret_cast<const uint8_t*>(storage_.data()), len_};
}

std::span<uint8_t> TlImage::mutable_bytes() {
  return {reinterpret_cast<uint8_t*>(storage_.data()), len_};
}

TransferListBuilder& TransferListBuilder::Add(TlEntry entry) {
  entries_.push_back(std::move(entry));
  return *this;
}

TransferListBuilder& TransferListBuilder::AddFdt(std::span<const uint8_t> fdt, uint8_t te_hdr) {
  return Add({.tag_id = kTagFdt, .te_hdr = te_hdr, .data = std::vector<uint8_t>(fdt.begin(), fdt.end())});
}

TransferListBuilder& TransferListBuilder::AddVoid(uint32_t data_size) {
  return Add({.tag_id = kTagVoid, .data = std::vector<uint8_t>(data_size, 0xee)});
}

TransferListBuilder& TransferListBuilder::AddTag(uint32_t tag_id, std::vector<uint8_t> data) {
  return Add({.tag_id = tag_id, .data = std::move(data)});
}

TransferListBuilder& TransferListBuilder::Signature(uint32_t signature) {
  signature_ = signature;
  return *this;
}
TransferListBuilder& TransferListBuilder::Version(uint8_t version) {
  version_ = version;
  return *this;
}
TransferListBuilder& TransferListBuilder::HdrSize(uint8_t hdr_size, uint8_t filler) {
  hdr_size_ = hdr_size;
  hdr_filler_ = filler;
  return *this;
}
TransferListBuilder& TransferListBuilder::Alignment(uint8_t alignment) {
  alignment_ = alignment;
  return *this;
}
TransferListBuilder& TransferListBuilder::Flags(uint32_t flags) {
  flags_ = flags;
  return *this;
}
TransferListBuilder& TransferListBuilder::ChecksumFlag(bool set) {
  flags_ = set ? (flags_ | kTlFlagChecksum) : (flags_ & ~kTlFlagChecksum);
  return *this;
}
TransferListBuilder& TransferListBuilder::Reserved(uint32_t reserved) {
  reserved_ = reserved;
  return *this;
}
TransferListBuilder& TransferListBuilder::ChecksumOff(uint8_t delta) {
  checksum_delta_ = delta;
  return *this;
}
TransferListBuilder& TransferListBuilder::Size(uint32_t size) {
  size_ = size;
  return *this;
}
TransferListBuilder& TransferListBuilder::MaxSize(uint32_t max_size) {
  max_size_ = max_size;
  return *this;
}
TransferListBuilder& TransferListBuilder::Slack(uint32_t bytes) {
  slack_ = bytes;
  return *this;
}
TransferListBuilder& TransferListBuilder::SlackFill(uint8_t byte) {
  slack_fill_ = byte;
  return *this;
}
TransferListBuilder& TransferListBuilder::Patch(size_t offset, std::vector<uint8_t> bytes) {
  patches_.push_back({offset, std::move(bytes)});
  return *this;
}
TransferListBuilder& TransferListBuilder::Len(size_t len) {
  len_ = len;
  return *this;
}

size_t TransferListBuilder::FirstEntryOffset() const {
  return Align8(std::max<size_t>(hdr_size_, kTlHeaderSize));
}

size_t TransferListBuilder::EntryOffset(size_t i) const {
  size_t off = FirstEntryOffset();
  for (size_t k = 0; k < i && k < entries_.size(); ++k) off += EntryFootprint(entries_[k]);
  return off;
}

uint32_t TransferListBuilder::NaturalSize() const {
  return static_cast<uint32_t>(EntryOffset(entries_.size()));
}

TlImage TransferListBuilder::Build() const {
  const size_t content_end = EntryOffset(entries_.size());
  const uint32_t size = size_.value_or(static_cast<uint32_t>(content_end));
  const uint32_t max_size = max_size_.value_or(size + slack_);
  const size_t len = len_.value_or(max_size);

  size_t store = std::max({content_end, size_t{size}, size_t{max_size}, len});
  for (const PatchBytes& p : patches_) store = std::max(store, p.offset + p.bytes.size());
  std::vector<uint64_t> storage(Align8(store) / 8, 0);
  std::span<uint8_t> b(reinterpret_cast<uint8_t*>(storage.data()), storage.size() * 8);

  // Header.
  PutLe32(b, 0x00, signature_);
  b[0x05] = version_;
  b[0x06] = hdr_size_;
  b[0x07] = alignment_;
  PutLe32(b, 0x08, size);
  PutLe32(b, 0x0c, max_size);
  PutLe32(b, 0x10, flags_);
  PutLe32(b, 0x14, reserved_);
  for (size_t i = kTlHeaderSize; i < hdr_size_; ++i) b[i] = hdr_filler_;

  // Entries.
  size_t off = FirstEntryOffset();
  for (const TlEntry& e : entries_) {
    const uint32_t data_size = e.declared_data_size.value_or(static_cast<uint32_t>(e.data.size()));
    PutLe32(b, off, (e.tag_id & 0xffffff) | (uint32_t{e.te_hdr} << 24));
    PutLe32(b, off + 4, data_size);
    const size_t data_at = off + std::max<size_t>(e.te_hdr, 8);
    std::fill(b.begin() + off + 8, b.begin() + data_at, e.header_filler);
    std::copy(e.data.begin(), e.data.end(), b.begin() + data_at);
    off += EntryFootprint(e);
  }

  // Slack after the list (never before the content written).
  for (size_t i = std::max(content_end, size_t{size}); i < std::max(content_end, size_t{max_size}); ++i) {
    b[i] = slack_fill_;
  }

  for (const PatchBytes& p : patches_) std::copy(p.bytes.begin(), p.bytes.end(), b.begin() + p.offset);

  // Checksum over [0, size), clipped to what exists; written even when the
  // flag is clear, so a clear flag with a wrong byte needs ChecksumOff().
  b[0x04] = 0;
  uint8_t sum = 0;
  for (size_t i = 0; i < std::min(size_t{size}, b.size()); ++i) sum = static_cast<uint8_t>(sum + b[i]);
  b[0x04] = static_cast<uint8_t>(checksum_delta_ - sum);

  return TlImage(std::move(storage), len);
}

}  // namespace rmem::firmware_handoff::test_support

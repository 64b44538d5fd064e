// The carve-out contract's section 2 (Transfer List): one named test per rule
// and side, plus the order tests (a blob that breaks two rules gets the error
// of the earlier one). Lists come from TransferListBuilder; the FDT payload is
// the compiled fixture accept_two_carveouts_cells22.dtb.
//
// Environment (set by tests/firmware_handoff/meson.build):
//   RMEM_FDT_FIXTURE_DIR  the directory holding the compiled .dtb fixtures
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "firmware_handoff/handoff.h"
#include "tests/firmware_handoff/transfer_list_builder.h"

namespace rmem::firmware_handoff {
namespace {

using test_support::Align8;
using test_support::kTagFdt;
using test_support::kTagVoid;
using test_support::TlEntry;
using test_support::TlImage;
using test_support::TransferListBuilder;

std::vector<uint8_t> ReadFixture(const std::string& name) {
  const char* dir = std::getenv("RMEM_FDT_FIXTURE_DIR");
  if (dir == nullptr) return {};
  std::ifstream in(std::filesystem::path(dir) / (name + ".dtb"), std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string Describe(const HandoffResult& result) {
  if (const auto* error = std::get_if<HandoffError>(&result)) {
    return std::string("reject ") + ErrorKindName(error->kind) + ": " + error->message;
  }
  return "accept with " + std::to_string(std::get<0>(result).size()) + " carve-out(s)";
}

class TransferList : public ::testing::Test {
 protected:
  void SetUp() override {
    fdt_ = ReadFixture("accept_two_carveouts_cells22");
    ASSERT_FALSE(fdt_.empty()) << "accept_two_carveouts_cells22.dtb not found (RMEM_FDT_FIXTURE_DIR)";
    auto direct = ParseFdt(fdt_);
    ASSERT_TRUE(std::holds_alternative<std::vector<HandoffCarveout>>(direct))
        << "the payload fixture itself does not parse: " << Describe(direct);
    carveouts_ = std::get<std::vector<HandoffCarveout>>(direct);
    ASSERT_EQ(carveouts_.size(), 2u);
  }

  // A valid list holding just the fixture FDT; tests break one thing in it.
  TransferListBuilder Valid() const {
    TransferListBuilder b;
    b.AddFdt(fdt_);
    return b;
  }

  static HandoffResult Parse(const TlImage& image) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(image.bytes().data()) % 8, 0u);
    return ParseTransferList(image.bytes());
  }

  // Passes when `image` is accepted with exactly the fixture's carve-outs.
  void ExpectAccepted(const TlImage& image) const {
    HandoffResult r = Parse(image);
    const auto* got = std::get_if<std::vector<HandoffCarveout>>(&r);
    ASSERT_NE(got, nullptr) << "want accept, got " << Describe(r);
    ASSERT_EQ(got->size(), carveouts_.size());
    for (size_t i = 0; i < got->size(); ++i) {
      EXPECT_TRUE((*got)[i] == carveouts_[i]) << "carve-out #" << i << " differs from ParseFdt's";
    }
  }

  static void ExpectRejected(const TlImage& image, ErrorKind want) {
    HandoffResult r = Parse(image);
    const auto* error = std::get_if<HandoffError>(&r);
    ASSERT_NE(error, nullptr) << "want reject " << ErrorKindName(want) << ", got " << Describe(r);
    EXPECT_EQ(std::string(ErrorKindName(error->kind)), ErrorKindName(want)) << "message: " << error->message;
  }

  std::vector<uint8_t> fdt_;
  std::vector<HandoffCarveout> carveouts_;
};

TEST_F(TransferList, Valid_AcceptsTheFdtsCarveouts) { ExpectAccepted(Valid().Build()); }

// --- rule 1: len < 0x18 ---------------------------------------------------------

TEST_F(TransferList, R1_LenZero_Truncated) { ExpectRejected(Valid().Len(0).Build(), ErrorKind::kTlTruncated); }

TEST_F(TransferList, R1_LenOneShortOfTheHeader_Truncated) {
  ExpectRejected(Valid().Len(0x17).Build(), ErrorKind::kTlTruncated);
}

TEST_F(TransferList, R1_ShortAndBadSignature_TruncatedFirst) {
  ExpectRejected(Valid().Signature(0xdeadbeef).Len(0x10).Build(), ErrorKind::kTlTruncated);
}

// --- rule 2: signature ----------------------------------------------------------

TEST_F(TransferList, R2_WrongSignature_BadSignature) {
  ExpectRejected(Valid().Signature(0x4a0fb10c).Build(), ErrorKind::kTlBadSignature);
}

TEST_F(TransferList, R2_BigEndianSignature_BadSignature) {
  ExpectRejected(Valid().Signature(0x0bb10f4a).Build(), ErrorKind::kTlBadSignature);
}

TEST_F(TransferList, R2_BadSignatureAndVersionZero_BadSignatureFirst) {
  ExpectRejected(Valid().Signature(0).Version(0).Build(), ErrorKind::kTlBadSignature);
}

// --- rule 3: version --------------------------------------------------------------

TEST_F(TransferList, R3_VersionZero_BadVersion) {
  ExpectRejected(Valid().Version(0).Build(), ErrorKind::kTlBadVersion);
}

TEST_F(TransferList, R3_VersionZeroAndSmallHdrSize_BadVersionFirst) {
  ExpectRejected(Valid().Version(0).HdrSize(0x10).Build(), ErrorKind::kTlBadVersion);
}

TEST_F(TransferList, R3_Version1_ReadLikeVersion2) { ExpectAccepted(Valid().Version(1).Build()); }

// A later version's extra header bytes are skipped: entries start at
// align8(hdr_size). The extra bytes here look like an empty FDT entry header,
// so a reader that starts at 0x18 finds a bogus tag-1 entry.
TEST_F(TransferList, R3_HigherVersionLargerHeader_ExtraBytesSkipped) {
  TransferListBuilder b = Valid();
  b.Version(3).HdrSize(0x20).Patch(0x18, {0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00});
  ASSERT_EQ(b.FirstEntryOffset(), 0x20u);
  ExpectAccepted(b.Build());
}

TEST_F(TransferList, R3_Version255UnalignedHdrSize_EntriesAtAlign8) {
  TransferListBuilder b = Valid();
  b.Version(0xff).HdrSize(0x1c, 0xff);
  ASSERT_EQ(b.FirstEntryOffset(), 0x20u);
  ExpectAccepted(b.Build());
}

// --- rule 4: hdr_size ---------------------------------------------------------------

TEST_F(TransferList, R4_HdrSizeZero_BadHdrSize) {
  ExpectRejected(Valid().HdrSize(0).Build(), ErrorKind::kTlBadHdrSize);
}

TEST_F(TransferList, R4_HdrSize0x10_BadHdrSize) {
  ExpectRejected(Valid().HdrSize(0x10).Build(), ErrorKind::kTlBadHdrSize);
}

TEST_F(TransferList, R4_HdrSize0x17_BadHdrSize) {
  ExpectRejected(Valid().HdrSize(0x17).Build(), ErrorKind::kTlBadHdrSize);
}

TEST_F(TransferList, R4_SmallHdrSizeAndSizeNotMultipleOf8_BadHdrSizeFirst) {
  TransferListBuilder b = Valid();
  b.HdrSize(0x10).Size(b.NaturalSize() + 4);
  ExpectRejected(b.Build(), ErrorKind::kTlBadHdrSize);
}

// --- rule 5: size and max_size ------------------------------------------------------

TEST_F(TransferList, R5_SizeNotMultipleOf8_BadSize) {
  TransferListBuilder b = Valid();
  b.Size(b.NaturalSize() + 4).MaxSize(b.NaturalSize() + 0x40);
  ExpectRejected(b.Build(), ErrorKind::kTlBadSize);
}

TEST_F(TransferList, R5_MaxSizeNotMultipleOf8_BadSize) {
  TransferListBuilder b = Valid();
  b.MaxSize(b.NaturalSize() + 0x44);
  ExpectRejected(b.Build(), ErrorKind::kTlBadSize);
}

TEST_F(TransferList, R5_SizeBelowHdrSize_BadSize) {
  TransferListBuilder b;
  b.Version(3).HdrSize(0x20).Size(0x18).MaxSize(0x40);
  ExpectRejected(b.Build(), ErrorKind::kTlBadSize);
}

TEST_F(TransferList, R5_SizeEqualsHdrSize_IsAnEmptyList) {
  TransferListBuilder b;
  b.Size(0x18).MaxSize(0x40);
  ExpectRejected(b.Build(), ErrorKind::kTlNoFdt);
}

TEST_F(TransferList, R5_SizeNotMultipleOf8AndAboveMaxSize_BadSizeFirst) {
  TransferListBuilder b = Valid();
  b.Size(b.NaturalSize() + 4).MaxSize(b.NaturalSize());
  ExpectRejected(b.Build(), ErrorKind::kTlBadSize);
}

// --- rule 6: size > max_size ----------------------------------------------------------

TEST_F(TransferList, R6_SizeAboveMaxSize_SizeExceedsMax) {
  TransferListBuilder b = Valid();
  b.MaxSize(b.NaturalSize() - 8).Len(b.NaturalSize());
  ExpectRejected(b.Build(), ErrorKind::kTlSizeExceedsMax);
}

TEST_F(TransferList, R6_SizeEqualsMaxSize_Accepts) {
  ExpectAccepted(Valid().Slack(0).Build());
}

TEST_F(TransferList, R6_SizeAboveMaxSizeAndBeyondLen_SizeExceedsMaxFirst) {
  TransferListBuilder b = Valid();
  b.Size(b.NaturalSize() + 0x40).MaxSize(b.NaturalSize()).Len(b.NaturalSize());
  ExpectRejected(b.Build(), ErrorKind::kTlSizeExceedsMax);
}

// --- rule 7: size or max_size beyond len ------------------------------------------------

TEST_F(TransferList, R7_SizeBeyondLen_Truncated) {
  TransferListBuilder b = Valid();
  b.Slack(0).Len(b.NaturalSize() - 8);
  ExpectRejected(b.Build(), ErrorKind::kTlTruncated);
}

TEST_F(TransferList, R7_MaxSizeBeyondLen_Truncated) {
  TransferListBuilder b = Valid();
  b.Slack(0x40).Len(b.NaturalSize() + 0x38);
  ExpectRejected(b.Build(), ErrorKind::kTlTruncated);
}

TEST_F(TransferList, R7_LenAboveMaxSize_Accepts) {
  TransferListBuilder b = Valid();
  b.Slack(0x40).Len(b.NaturalSize() + 0x80);
  ExpectAccepted(b.Build());
}

TEST_F(TransferList, R7_TruncatedAndBadChecksum_TruncatedFirst) {
  TransferListBuilder b = Valid();
  b.ChecksumOff(1).Slack(0x40).Len(b.NaturalSize());
  ExpectRejected(b.Build(), ErrorKind::kTlTruncated);
}

// --- rule 8: checksum ------------------------------------------------------------------

TEST_F(TransferList, R8_WrongChecksumWithFlag_BadChecksum) {
  ExpectRejected(Valid().ChecksumOff(1).Build(), ErrorKind::kTlBadChecksum);
}

TEST_F(TransferList, R8_ChecksumByteAloneWrong_BadChecksum) {
  TlImage image = Valid().Build();
  image.mutable_bytes()[4] ^= 0x80;
  ExpectRejected(image, ErrorKind::kTlBadChecksum);
}

TEST_F(TransferList, R8_FdtByteChangedWithFlag_BadChecksum) {
  TransferListBuilder b = Valid();
  TlImage image = b.Build();
  image.mutable_bytes()[b.EntryOffset(0) + 8 + fdt_.size() - 1] ^= 0x01;  // inside the tree's padding/strings
  ExpectRejected(image, ErrorKind::kTlBadChecksum);
}

TEST_F(TransferList, R8_WrongChecksumWithoutFlag_Accepts) {
  ExpectAccepted(Valid().ChecksumFlag(false).ChecksumOff(0x37).Build());
}

TEST_F(TransferList, R8_FlagBits31To1Ignored_WithoutBit0) {
  ExpectAccepted(Valid().Flags(0xfffffffe).ChecksumOff(1).Build());
}

TEST_F(TransferList, R8_FlagBits31To1Ignored_WithBit0) {
  ExpectAccepted(Valid().Flags(0xffffffff).Build());
}

TEST_F(TransferList, R8_BytesFromSizeToMaxSizeNotCovered) {
  ExpectAccepted(Valid().Slack(0x40).SlackFill(0x01).Build());
}

TEST_F(TransferList, R8_BadChecksumAndBadEntry_BadChecksumFirst) {
  TransferListBuilder b = Valid();
  b.Add({.tag_id = 0x42, .te_hdr = 4}).ChecksumOff(1);
  ExpectRejected(b.Build(), ErrorKind::kTlBadChecksum);
}

// --- rule 9: the entry walk ---------------------------------------------------------------

TEST_F(TransferList, R9_TeHdrZero_BadEntry) {
  ExpectRejected(Valid().Add({.tag_id = 0x42, .te_hdr = 0}).Build(), ErrorKind::kTlBadEntry);
}

TEST_F(TransferList, R9_TeHdr4_BadEntry) {
  ExpectRejected(Valid().Add({.tag_id = 0x42, .te_hdr = 4}).Build(), ErrorKind::kTlBadEntry);
}

TEST_F(TransferList, R9_TeHdr7_BadEntry) {
  ExpectRejected(Valid().Add({.tag_id = kTagVoid, .te_hdr = 7}).Build(), ErrorKind::kTlBadEntry);
}

TEST_F(TransferList, R9_TeHdrBelow8OnTheFdt_BadEntry) {
  TransferListBuilder b;
  b.AddFdt(fdt_, 4);
  ExpectRejected(b.Build(), ErrorKind::kTlBadEntry);
}

TEST_F(TransferList, R9_DataOverrunsSize_BadEntry) {
  TransferListBuilder b = Valid();
  b.Add({.tag_id = 0x42, .data = std::vector<uint8_t>(8, 0x11), .declared_data_size = 16});
  ExpectRejected(b.Build(), ErrorKind::kTlBadEntry);
}

TEST_F(TransferList, R9_DataOverrunsSizeIntoSlack_BadEntry) {
  // The declared data would still fit below max_size: only size counts.
  TransferListBuilder b = Valid();
  b.Add({.tag_id = 0x42, .data = std::vector<uint8_t>(8, 0x11), .declared_data_size = 24}).Slack(0x40);
  ExpectRejected(b.Build(), ErrorKind::kTlBadEntry);
}

TEST_F(TransferList, R9_FdtDataSizeOverrunsSize_BadEntry) {
  TransferListBuilder b;
  b.Add({.tag_id = kTagFdt,
         .data = fdt_,
         .declared_data_size = static_cast<uint32_t>(Align8(fdt_.size()) + 8)});
  ExpectRejected(b.Build(), ErrorKind::kTlBadEntry);
}

// off + te_hdr + data_size computed in 32 bits would wrap to 0 and "fit".
TEST_F(TransferList, R9_DataSizeWrapsIn32Bits_BadEntry) {
  TransferListBuilder b = Valid();
  const uint32_t off = static_cast<uint32_t>(b.EntryOffset(1));
  b.Add({.tag_id = 0x42, .declared_data_size = 0u - off - 8u});
  ExpectRejected(b.Build(), ErrorKind::kTlBadEntry);
}

TEST_F(TransferList, R9_MaximalTeHdrAndDataSize_BadEntry) {
  ExpectRejected(Valid().Add({.tag_id = 0x42, .te_hdr = 0xff, .declared_data_size = 0xffffffff}).Build(),
                 ErrorKind::kTlBadEntry);
}

// Data starts at off + te_hdr; the 8 filler bytes in between are not FDT.
TEST_F(TransferList, R9_TeHdr16_DataAtTeHdr) {
  TransferListBuilder b;
  b.AddFdt(fdt_, 16);
  ExpectAccepted(b.Build());
}

// te_hdr 12 puts the FDT 4 bytes off 8-byte alignment.
TEST_F(TransferList, R9_TeHdr12_MisalignedFdtStillParsed) {
  TransferListBuilder b;
  b.AddFdt(fdt_, 12);
  ExpectAccepted(b.Build());
}

TEST_F(TransferList, R9_TeHdr255_DataAtTeHdr) {
  TransferListBuilder b;
  b.AddFdt(fdt_, 0xff);
  ExpectAccepted(b.Build());
}

// The next entry is at off + align8(te_hdr + data_size): te_hdr 12 + 4 bytes
// of data is 16, not align8(12) + align8(4) = 24.
TEST_F(TransferList, R9_NextEntryAtAlign8OfHeaderPlusData) {
  TransferListBuilder b;
  b.Add({.tag_id = 0x42, .te_hdr = 12, .data = {1, 2, 3, 4}});
  ASSERT_EQ(b.EntryOffset(1) - b.EntryOffset(0), 16u);
  b.AddFdt(fdt_);
  ExpectAccepted(b.Build());
}

TEST_F(TransferList, R9_OddDataSizesAreSkippedToAlign8) {
  TransferListBuilder b;
  b.AddTag(0x42, {1, 2, 3, 4, 5}).AddVoid(3).AddTag(0x43, {9}).AddFdt(fdt_).AddVoid(1);
  ExpectAccepted(b.Build());
}

TEST_F(TransferList, R9_LastEntryHeaderEndsExactlyAtSize_Accepts) {
  TransferListBuilder b = Valid();
  b.AddVoid(0);
  ASSERT_EQ(b.EntryOffset(2), b.NaturalSize());
  ExpectAccepted(b.Build());
}

// With size, off and every step multiples of 8, an entry header that starts
// below size always fits (the `off + 8 <= size` check cannot fire alone); its
// nearest reachable form is a final header whose data runs past size.
TEST_F(TransferList, R9_FinalHeaderWithDataPastSize_BadEntry) {
  TransferListBuilder b = Valid();
  b.Add({.tag_id = kTagVoid, .declared_data_size = 1});
  ExpectRejected(b.Build(), ErrorKind::kTlBadEntry);
}

TEST_F(TransferList, R9_WalkContinuesAfterTheFdt_BadEntry) {
  ExpectRejected(Valid().AddVoid(16).Add({.tag_id = 0x42, .te_hdr = 0}).Build(), ErrorKind::kTlBadEntry);
}

// Entries in [size, max_size) are not part of the list.
TEST_F(TransferList, R9_FdtEntryInSlackNotWalked_NoFdt) {
  TransferListBuilder b;
  b.AddVoid(8);
  const uint32_t size = b.NaturalSize();
  std::vector<uint8_t> entry = {0x01, 0x00, 0x00, 0x08};
  const uint32_t n = static_cast<uint32_t>(fdt_.size());
  entry.insert(entry.end(), {uint8_t(n), uint8_t(n >> 8), uint8_t(n >> 16), uint8_t(n >> 24)});
  entry.insert(entry.end(), fdt_.begin(), fdt_.end());
  b.Slack(static_cast<uint32_t>(Align8(entry.size()))).Patch(size, entry);
  ExpectRejected(b.Build(), ErrorKind::kTlNoFdt);
}

// --- rule 10: only tag 1 is consumed; exactly one FDT -------------------------------------

TEST_F(TransferList, R10_NoEntries_NoFdt) { ExpectRejected(TransferListBuilder().Build(), ErrorKind::kTlNoFdt); }

TEST_F(TransferList, R10_OnlyVoidAndUnknownTags_NoFdt) {
  TransferListBuilder b;
  b.AddVoid(16).AddTag(0x2, {1, 2, 3, 4}).AddTag(0xfff000, {}).AddVoid(0);
  ExpectRejected(b.Build(), ErrorKind::kTlNoFdt);
}

// tag_id is the low 24 bits: 0x100001 is not tag 1, even though its low
// byte is 1.
TEST_F(TransferList, R10_TagWhoseLowByteIs1_IsNotAnFdt) {
  TransferListBuilder b;
  b.Add({.tag_id = 0x100001, .data = fdt_});
  ExpectRejected(b.Build(), ErrorKind::kTlNoFdt);
}

TEST_F(TransferList, R10_VoidUnknownAndReservedTagsSkipped) {
  TransferListBuilder b;
  b.AddVoid(24)
      .AddTag(0x2, {0xde, 0xad})          // HOB block
      .AddTag(0x5, std::vector<uint8_t>(fdt_.begin(), fdt_.begin() + 16))  // looks like an FDT, is not tag 1
      .AddTag(0x104, {1, 2, 3})           // reserved range
      .AddTag(0x100001, {0xd0, 0x0d})     // unknown
      .AddTag(0xfff000, {7})              // vendor range
      .AddTag(0xffffff, {})
      .AddFdt(fdt_)
      .AddVoid(5);
  ExpectAccepted(b.Build());
}

TEST_F(TransferList, R10_TwoFdts_DuplicateFdt) {
  ExpectRejected(Valid().AddFdt(fdt_).Build(), ErrorKind::kTlDuplicateFdt);
}

TEST_F(TransferList, R10_TwoFdtsSecondNotAnFdt_DuplicateFdtBeforeParsing) {
  ExpectRejected(Valid().AddTag(kTagFdt, {1, 2, 3, 4, 5, 6, 7, 8}).Build(), ErrorKind::kTlDuplicateFdt);
}

TEST_F(TransferList, R10_TwoFdtsThenBadEntry_BadEntryFirst) {
  ExpectRejected(Valid().AddFdt(fdt_).Add({.tag_id = 0x42, .te_hdr = 1}).Build(), ErrorKind::kTlBadEntry);
}

// --- rule 11: the FDT entry goes through parse_fdt(data, data_size) ------------------------

TEST_F(TransferList, R11_FdtDataNotAnFdt_FdtBadMagic) {
  TransferListBuilder b;
  b.AddTag(kTagFdt, std::vector<uint8_t>(64, 0x00));
  ExpectRejected(b.Build(), ErrorKind::kFdtBadMagic);
}

TEST_F(TransferList, R11_EmptyFdtEntry_FdtBadMagic) {
  TransferListBuilder b;
  b.AddTag(kTagFdt, {});
  ExpectRejected(b.Build(), ErrorKind::kFdtBadMagic);
}

TEST_F(TransferList, R11_FdtShorterThanItsTotalsize_FdtCorrupt) {
  TransferListBuilder b;
  b.AddFdt(std::span<const uint8_t>(fdt_.data(), fdt_.size() - 8));
  ExpectRejected(b.Build(), ErrorKind::kFdtCorrupt);
}

TEST_F(TransferList, R11_FdtEntryLongerThanTotalsize_Accepts) {
  std::vector<uint8_t> padded = fdt_;
  padded.resize(fdt_.size() + 24, 0);
  TransferListBuilder b;
  b.AddFdt(padded);
  ExpectAccepted(b.Build());
}

TEST_F(TransferList, R11_InvalidFdtThenBadEntry_WalkFinishesFirst) {
  TransferListBuilder b;
  b.AddTag(kTagFdt, std::vector<uint8_t>(16, 0x00)).Add({.tag_id = 0x42, .te_hdr = 2});
  ExpectRejected(b.Build(), ErrorKind::kTlBadEntry);
}

TEST_F(TransferList, R11_FdtRuleViolationPropagates_RmemOverlap) {
  const std::vector<uint8_t> overlap = ReadFixture("reject_overlap");
  ASSERT_FALSE(overlap.empty()) << "reject_overlap.dtb not found";
  TransferListBuilder b;
  b.AddFdt(overlap);
  ExpectRejected(b.Build(), ErrorKind::kRmemOverlap);
}

// --- fields the contract does not check -------------------------------------------------

TEST_F(TransferList, AlignmentFieldNotChecked) { ExpectAccepted(Valid().Alignment(0).Build()); }

TEST_F(TransferList, ReservedFieldNotChecked) { ExpectAccepted(Valid().Reserved(0xffffffff).Build()); }

// --- the platform reader: the same walk, then carve-outs and initiators -------

TEST_F(TransferList, Platform_SameCarveoutsAsTheContractReader) {
  const TlImage image = Valid().Build();
  const PlatformResult r = ReadPlatformFromTransferList(image.bytes());
  const auto* platform = std::get_if<Platform>(&r);
  ASSERT_NE(platform, nullptr) << ErrorKindName(std::get<HandoffError>(r).kind);
  EXPECT_EQ(platform->carveouts, carveouts_);
  EXPECT_TRUE(platform->initiators.empty());
}

TEST_F(TransferList, Platform_InitiatorsFromTheFdtEntry) {
  TransferListBuilder b;
  b.AddFdt(ReadFixture("initiator_accept_decoder_and_display"));
  const TlImage image = b.Build();
  const PlatformResult r = ReadPlatformFromTransferList(image.bytes());
  const auto* platform = std::get_if<Platform>(&r);
  ASSERT_NE(platform, nullptr) << ErrorKindName(std::get<HandoffError>(r).kind);
  ASSERT_EQ(platform->initiators.size(), 2u);
  EXPECT_EQ(platform->initiators[0].owner_vm, "decrypt");
  EXPECT_EQ(platform->initiators[1].owner_vm, "display");
  EXPECT_EQ(platform->initiators[1].max_access, Access::kRead);
}

TEST_F(TransferList, Platform_ListErrorsComeFirst) {
  const TlImage image = Valid().Signature(0xdeadbeef).Build();
  const PlatformResult r = ReadPlatformFromTransferList(image.bytes());
  ASSERT_TRUE(std::holds_alternative<HandoffError>(r));
  EXPECT_EQ(std::get<HandoffError>(r).kind, ErrorKind::kTlBadSignature);
}

TEST_F(TransferList, Platform_BadInitiatorInTheFdtEntry_Rejected) {
  TransferListBuilder b;
  b.AddFdt(ReadFixture("initiator_reject_duplicate_firewall_id"));
  const TlImage image = b.Build();
  const PlatformResult r = ReadPlatformFromTransferList(image.bytes());
  ASSERT_TRUE(std::holds_alternative<HandoffError>(r));
  EXPECT_EQ(std::get<HandoffError>(r).kind, ErrorKind::kRmemBadInitiator);
  // The contract reader accepts the same list: initiators are not its business.
  EXPECT_TRUE(std::holds_alternative<std::vector<HandoffCarveout>>(Parse(image)));
}

}  // namespace
}  // namespace rmem::firmware_handoff

// ShmRegionStage2, CarveoutScrubber and the memfd CarveoutMemory: offsets in
// each VM's region, what the VMM is asked to map (fd, offset, length,
// writable), unmap, detach, a VMM that refuses or does not confirm, mappings
// restored at their old offsets (MapAt, now or at the next Attach), a piece
// issued per mapping with its right and revoked as the mapping ends; the
// device's error when its module issues no pieces; and the
// broker driving them end to end over the memfd stand-in: a buffer's bytes
// as the owner writes them through the piece it was given, zeros for the
// next owner after free.
#include "broker/backend/shm_region_stage2.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

#include "broker/backend/carveout_memory.h"
#include "broker/backend/fake_backends.h"
#include "broker/backend/scrubber.h"
#include "broker/broker.h"
#include "tests/broker/oracle/test_platform.h"

namespace rmem {
namespace {

using ::testing::HasSubstr;

struct MapCall {
  uint64_t offset;
  int fd;
  uint64_t fd_offset;
  uint64_t length;
  bool writable;
};

// Records what the VMM is asked (and, given a log, in what order with the
// pieces' issues and revocations); can refuse maps or unmaps.
class RecordingMapper : public ShmRegionMapper {
 public:
  explicit RecordingMapper(std::vector<std::string>* log = nullptr) : log_(log) {}
  absl::Status Map(uint64_t offset, int fd, uint64_t fd_offset, uint64_t length,
                   bool writable) override {
    if (log_ != nullptr) log_->push_back(absl::StrCat("map fd ", fd, " at ", Hex(offset)));
    if (!map_error.ok()) return map_error;
    maps.push_back({offset, fd, fd_offset, length, writable});
    return absl::OkStatus();
  }
  absl::Status Unmap(uint64_t offset, uint64_t length) override {
    if (log_ != nullptr) log_->push_back(absl::StrCat("unmap at ", Hex(offset)));
    if (!unmap_error.ok()) return unmap_error;
    unmaps.push_back({offset, length});
    return absl::OkStatus();
  }
  std::vector<MapCall> maps;
  std::vector<std::pair<uint64_t, uint64_t>> unmaps;
  absl::Status map_error, unmap_error;

 private:
  std::vector<std::string>* log_;
};

// A CarveoutMemory that issues the memfd stand-in's pieces and logs each
// issue ("issue <first pfn> ro|rw fd N") and revocation ("revoke fd N").
class LoggingMemory : public CarveoutMemory {
 public:
  LoggingMemory(const CarveoutMemory& inner, std::vector<std::string>* log)
      : inner_(inner), log_(log) {}
  absl::StatusOr<Piece> Locate(PageRange pages) const override { return inner_.Locate(pages); }
  absl::StatusOr<std::unique_ptr<PieceFile>> Issue(PageRange pages,
                                                   bool writable) const override {
    if (!issue_error.ok()) return issue_error;
    absl::StatusOr<std::unique_ptr<PieceFile>> piece = inner_.Issue(pages, writable);
    if (!piece.ok()) return piece.status();
    log_->push_back(absl::StrCat("issue ", pages.base().ToString(), " ", writable ? "rw" : "ro",
                                 " fd ", (*piece)->fd()));
    return std::make_unique<Logged>(*std::move(piece), log_);
  }
  bool confined() const override { return inner_.confined(); }
  std::string Describe() const override { return inner_.Describe(); }
  absl::Status issue_error;

 private:
  class Logged : public PieceFile {
   public:
    Logged(std::unique_ptr<PieceFile> inner, std::vector<std::string>* log)
        : inner_(std::move(inner)), log_(log) {}
    ~Logged() override { log_->push_back(absl::StrCat("revoke fd ", inner_->fd())); }
    int fd() const override { return inner_->fd(); }
    uint64_t offset() const override { return inner_->offset(); }

   private:
    std::unique_ptr<PieceFile> inner_;
    std::vector<std::string>* log_;
  };
  const CarveoutMemory& inner_;
  std::vector<std::string>* log_;
};

// Whether two descriptors are the same file (a piece of the stand-in is a
// descriptor of its carve-out's memfd).
bool SameFile(int a, int b) {
  struct stat sa {}, sb {};
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

constexpr uint64_t kMiB = 1 << 20;
const VmId kVm(1), kOther(2);

std::vector<Carveout> TwoCarveouts() {
  return {{"video@80000000", PhysAddr(0x80000000), 8 * kMiB, "secure-video", 2 * kMiB},
          {"ui@90000000", PhysAddr(0x90000000), 1 * kMiB, "secure-ui", kPageSize}};
}

PageRange Pages(uint64_t base, uint64_t size) { return *PageRange::FromBytes(PhysAddr(base), size); }

class ShmRegionStage2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<CarveoutMemory>> m = MakeMemfdCarveoutMemory(TwoCarveouts());
    ASSERT_TRUE(m.ok()) << m.status();
    memory_ = *std::move(m);
    pieces_ = std::make_unique<LoggingMemory>(*memory_, &log_);
    stage2_ = std::make_unique<ShmRegionStage2>(*pieces_);
    ASSERT_TRUE(stage2_->Attach(kVm, 16 * kMiB, &mapper_, [this] { ++severed_; }).ok());
  }
  std::vector<std::string> log_;  // issues, maps, unmaps, revocations in order
  std::unique_ptr<CarveoutMemory> memory_;
  std::unique_ptr<LoggingMemory> pieces_;
  std::unique_ptr<ShmRegionStage2> stage2_;
  RecordingMapper mapper_{&log_};
  int severed_ = 0;
};

TEST_F(ShmRegionStage2Test, MemfdLocatesEachCarveoutFromOffsetZero) {
  absl::StatusOr<CarveoutMemory::Piece> a = memory_->Locate(Pages(0x80001000, 0x2000));
  absl::StatusOr<CarveoutMemory::Piece> b = memory_->Locate(Pages(0x90000000, 0x1000));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->offset, 0x1000u);
  EXPECT_EQ(b->offset, 0u);
  EXPECT_NE(a->fd, b->fd);
  EXPECT_THAT(memory_->Describe(), HasSubstr("stand-in"));
  EXPECT_EQ(memory_->Locate(Pages(0x807ff000, 0x2000)).status().code(),
            absl::StatusCode::kInvalidArgument);  // runs past the carve-out
}

TEST_F(ShmRegionStage2Test, MapAsksTheVmmForThePieceAndReturnsTheOffset) {
  absl::StatusOr<GuestAddr> at = stage2_->Map(kVm, Pages(0x80003000, 0x2000), Access::kRead);
  ASSERT_TRUE(at.ok()) << at.status();
  ASSERT_EQ(mapper_.maps.size(), 1u);
  const MapCall& call = mapper_.maps[0];
  EXPECT_EQ(call.offset, at->value());
  EXPECT_TRUE(SameFile(call.fd, memory_->Locate(Pages(0x80003000, 0x2000))->fd));
  EXPECT_EQ(call.fd_offset, 0x3000u);
  EXPECT_EQ(call.length, 0x2000u);
  EXPECT_FALSE(call.writable) << "read-only rights map read-only";
  EXPECT_EQ(stage2_->mapped_bytes(kVm), 0x2000u);
}

TEST_F(ShmRegionStage2Test, BlockSizedPiecesGetBlockAlignedOffsets) {
  ASSERT_TRUE(stage2_->Map(kVm, Pages(0x90000000, 0x1000), Access::kReadWrite).ok());
  absl::StatusOr<GuestAddr> big = stage2_->Map(kVm, Pages(0x80200000, 2 * kMiB), Access::kReadWrite);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->value() % (2 * kMiB), 0u);
  EXPECT_TRUE(mapper_.maps.back().writable);
}

TEST_F(ShmRegionStage2Test, DistinctPiecesGetDisjointOffsets) {
  absl::StatusOr<GuestAddr> a = stage2_->Map(kVm, Pages(0x80000000, 0x3000), Access::kRead);
  absl::StatusOr<GuestAddr> b = stage2_->Map(kVm, Pages(0x80010000, 0x1000), Access::kRead);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(b->value() >= a->value() + 0x3000 || b->value() + 0x1000 <= a->value());
}

TEST_F(ShmRegionStage2Test, UnmapTellsTheVmmAndFreesTheOffsets) {
  absl::StatusOr<GuestAddr> a = stage2_->Map(kVm, Pages(0x80000000, 0x3000), Access::kRead);
  ASSERT_TRUE(a.ok());
  stage2_->Unmap(kVm, Pages(0x80000000, 0x3000));
  ASSERT_EQ(mapper_.unmaps.size(), 1u);
  EXPECT_EQ(mapper_.unmaps[0], std::make_pair(a->value(), uint64_t{0x3000}));
  EXPECT_EQ(stage2_->mapped_bytes(kVm), 0u);
  EXPECT_EQ(severed_, 0);
}

TEST_F(ShmRegionStage2Test, NoVmm_Unavailable) {
  absl::StatusOr<GuestAddr> a = stage2_->Map(kOther, Pages(0x80000000, 0x1000), Access::kRead);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(a.status().message(), HasSubstr("vm 2 has no VMM"));
}

TEST_F(ShmRegionStage2Test, RegionFull_ResourceExhaustedAndNothingAsked) {
  RecordingMapper small;
  ASSERT_TRUE(stage2_->Attach(kOther, 0x2000, &small, [] {}).ok());
  absl::StatusOr<GuestAddr> a = stage2_->Map(kOther, Pages(0x80000000, 0x3000), Access::kRead);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(small.maps.empty());
}

TEST_F(ShmRegionStage2Test, VmmRefusesMap_ErrorPassesAndOffsetsAreFree) {
  mapper_.map_error = absl::UnavailableError("vhost-user backend channel closed");
  absl::StatusOr<GuestAddr> a = stage2_->Map(kVm, Pages(0x80000000, 0x1000), Access::kRead);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(stage2_->mapped_bytes(kVm), 0u);
}

TEST_F(ShmRegionStage2Test, UnconfirmedUnmap_SeversTheVmm) {
  ASSERT_TRUE(stage2_->Map(kVm, Pages(0x80000000, 0x1000), Access::kRead).ok());
  mapper_.unmap_error = absl::DeadlineExceededError("no ack within 1 s");
  stage2_->Unmap(kVm, Pages(0x80000000, 0x1000));
  EXPECT_EQ(severed_, 1);
  EXPECT_FALSE(stage2_->attached(kVm));
}

TEST_F(ShmRegionStage2Test, DetachForgetsMappingsAndLaterUnmapsAreNoOps) {
  ASSERT_TRUE(stage2_->Map(kVm, Pages(0x80000000, 0x1000), Access::kRead).ok());
  stage2_->Detach(kVm);
  stage2_->Unmap(kVm, Pages(0x80000000, 0x1000));
  EXPECT_TRUE(mapper_.unmaps.empty());
  EXPECT_EQ(severed_, 0);
}

TEST_F(ShmRegionStage2Test, AttachRejectsBadSizesAndDoubles) {
  RecordingMapper m;
  EXPECT_EQ(stage2_->Attach(kOther, 0, &m, [] {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stage2_->Attach(kOther, 0x1001, &m, [] {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stage2_->Attach(kVm, 0x1000, &m, [] {}).code(), absl::StatusCode::kFailedPrecondition);
}

// ---- MapAt: mappings restored after an rmemd restart -------------------------

TEST_F(ShmRegionStage2Test, MapAt_Attached_MapsAtExactlyThatOffset) {
  ASSERT_TRUE(
      stage2_->MapAt(kVm, Pages(0x80003000, 0x2000), Access::kReadWrite, GuestAddr(0x5000)).ok());
  ASSERT_EQ(mapper_.maps.size(), 1u);
  const MapCall& call = mapper_.maps[0];
  EXPECT_EQ(call.offset, 0x5000u);
  EXPECT_TRUE(SameFile(call.fd, memory_->Locate(Pages(0x80003000, 0x2000))->fd));
  EXPECT_EQ(call.fd_offset, 0x3000u);
  EXPECT_EQ(call.length, 0x2000u);
  EXPECT_TRUE(call.writable);
  EXPECT_EQ(stage2_->mapped_bytes(kVm), 0x2000u);
  EXPECT_EQ(stage2_->waiting(kVm), 0u);
}

TEST_F(ShmRegionStage2Test, MapAt_Detached_WaitsAndAttachMapsItAtThatOffset) {
  RecordingMapper other;
  ASSERT_TRUE(stage2_->Attach(kOther, 16 * kMiB, &other, [] {}).ok());
  stage2_->Detach(kOther);  // rmemd restarted; the VMM has not reconnected

  ASSERT_TRUE(
      stage2_->MapAt(kOther, Pages(0x90002000, 0x3000), Access::kRead, GuestAddr(0x200000)).ok());
  EXPECT_EQ(stage2_->waiting(kOther), 1u);
  EXPECT_TRUE(other.maps.empty()) << "nothing is asked of a VMM that is not attached";
  EXPECT_EQ(stage2_->mapped_bytes(kOther), 0u);

  ASSERT_TRUE(stage2_->Attach(kOther, 16 * kMiB, &other, [] {}).ok());
  ASSERT_EQ(other.maps.size(), 1u);
  const MapCall& call = other.maps[0];
  EXPECT_EQ(call.offset, 0x200000u);
  EXPECT_TRUE(SameFile(call.fd, memory_->Locate(Pages(0x90002000, 0x3000))->fd));
  EXPECT_EQ(call.fd_offset, 0x2000u);
  EXPECT_EQ(call.length, 0x3000u);
  EXPECT_FALSE(call.writable);
  EXPECT_EQ(stage2_->waiting(kOther), 0u);
  EXPECT_EQ(stage2_->mapped_bytes(kOther), 0x3000u);
}

TEST_F(ShmRegionStage2Test, MapAt_OutsideTheRegion_InvalidArgumentAndNothingAsked) {
  const PageRange two_pages = Pages(0x80000000, 0x2000);
  for (const uint64_t at : {16 * kMiB - 0x1000,  // runs past the end
                            16 * kMiB,           // starts at the end
                            uint64_t{0x800},     // not page aligned
                            UINT64_MAX & ~(kPageSize - 1)}) {
    const absl::Status s = stage2_->MapAt(kVm, two_pages, Access::kRead, GuestAddr(at));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << Hex(at) << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr("shared memory region of vm 1")) << Hex(at);
  }
  EXPECT_TRUE(mapper_.maps.empty());
  EXPECT_EQ(stage2_->mapped_bytes(kVm), 0u);
}

TEST_F(ShmRegionStage2Test, MapAt_OverlappingAnotherMapping_InvalidArgumentAndFirstKept) {
  ASSERT_TRUE(
      stage2_->MapAt(kVm, Pages(0x80000000, 0x3000), Access::kRead, GuestAddr(0x10000)).ok());
  const absl::Status s =
      stage2_->MapAt(kVm, Pages(0x80100000, 0x1000), Access::kRead, GuestAddr(0x12000));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(mapper_.maps.size(), 1u);
  EXPECT_EQ(stage2_->mapped_bytes(kVm), 0x3000u);
}

// Each offset the VMM was asked to map was unmapped again.
void ExpectEveryMapUndone(const RecordingMapper& m) {
  std::vector<std::pair<uint64_t, uint64_t>> mapped;
  for (const MapCall& c : m.maps) mapped.emplace_back(c.offset, c.length);
  std::vector<std::pair<uint64_t, uint64_t>> unmapped = m.unmaps;
  std::sort(mapped.begin(), mapped.end());
  std::sort(unmapped.begin(), unmapped.end());
  EXPECT_EQ(mapped, unmapped);
}

TEST_F(ShmRegionStage2Test, Attach_RestoredMappingOutsideRegion_FailsLeavingNothingMapped) {
  ASSERT_TRUE(stage2_->MapAt(kOther, Pages(0x80000000, 0x1000), Access::kRead, GuestAddr(0)).ok());
  ASSERT_TRUE(
      stage2_->MapAt(kOther, Pages(0x80100000, 0x2000), Access::kReadWrite, GuestAddr(32 * kMiB))
          .ok());
  RecordingMapper other;
  const absl::Status s = stage2_->Attach(kOther, 16 * kMiB, &other, [] {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("restoring the mappings of vm 2"));
  EXPECT_FALSE(stage2_->attached(kOther));
  EXPECT_EQ(stage2_->waiting(kOther), 2u);
  ExpectEveryMapUndone(other);

  // The mappings still wait: a VMM with a region they fit takes both.
  RecordingMapper bigger;
  ASSERT_TRUE(stage2_->Attach(kOther, 64 * kMiB, &bigger, [] {}).ok());
  EXPECT_EQ(bigger.maps.size(), 2u);
  EXPECT_EQ(stage2_->waiting(kOther), 0u);
  EXPECT_EQ(stage2_->mapped_bytes(kOther), 0x3000u);
}

TEST_F(ShmRegionStage2Test, Attach_RestoredMappingsOverlap_FailsLeavingNothingMapped) {
  ASSERT_TRUE(stage2_->MapAt(kOther, Pages(0x80000000, 0x3000), Access::kRead, GuestAddr(0)).ok());
  ASSERT_TRUE(
      stage2_->MapAt(kOther, Pages(0x80100000, 0x1000), Access::kRead, GuestAddr(0x2000)).ok());
  RecordingMapper other;
  const absl::Status s = stage2_->Attach(kOther, 16 * kMiB, &other, [] {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_FALSE(stage2_->attached(kOther));
  EXPECT_EQ(stage2_->waiting(kOther), 2u);
  EXPECT_EQ(other.maps.size(), 1u) << "whichever comes first fits, the other cannot";
  ExpectEveryMapUndone(other);
  EXPECT_EQ(stage2_->mapped_bytes(kOther), 0u);
}

TEST_F(ShmRegionStage2Test, Attach_VmmRefusesRestoredMapping_FailsWithItsErrorAndStillWaiting) {
  ASSERT_TRUE(stage2_->MapAt(kOther, Pages(0x80000000, 0x1000), Access::kRead, GuestAddr(0)).ok());
  RecordingMapper refusing;
  refusing.map_error = absl::UnavailableError("vhost-user backend channel closed");
  const absl::Status s = stage2_->Attach(kOther, 16 * kMiB, &refusing, [] {});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(s.message(), HasSubstr("channel closed"));
  EXPECT_FALSE(stage2_->attached(kOther));
  EXPECT_EQ(stage2_->waiting(kOther), 1u);
}

TEST_F(ShmRegionStage2Test, Unmap_Detached_DropsTheWaitingMapping) {
  ASSERT_TRUE(stage2_->MapAt(kOther, Pages(0x80000000, 0x1000), Access::kRead, GuestAddr(0)).ok());
  ASSERT_EQ(stage2_->waiting(kOther), 1u);
  stage2_->Unmap(kOther, Pages(0x80000000, 0x1000));
  EXPECT_EQ(stage2_->waiting(kOther), 0u);

  RecordingMapper other;
  ASSERT_TRUE(stage2_->Attach(kOther, 16 * kMiB, &other, [] {}).ok());
  EXPECT_TRUE(other.maps.empty());
  EXPECT_TRUE(other.unmaps.empty());
  EXPECT_EQ(stage2_->mapped_bytes(kOther), 0u);
}

TEST_F(ShmRegionStage2Test, Map_AfterRestore_NeverLandsOnRestoredOffsets) {
  // A 4-page region whose middle two pages hold a restored mapping: the
  // ordinary maps get the two outer pages, and a third finds no room.
  ASSERT_TRUE(
      stage2_->MapAt(kOther, Pages(0x80000000, 0x2000), Access::kRead, GuestAddr(0x1000)).ok());
  RecordingMapper other;
  ASSERT_TRUE(stage2_->Attach(kOther, 0x4000, &other, [] {}).ok());
  absl::StatusOr<GuestAddr> a = stage2_->Map(kOther, Pages(0x90000000, 0x1000), Access::kRead);
  absl::StatusOr<GuestAddr> b = stage2_->Map(kOther, Pages(0x90001000, 0x1000), Access::kRead);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(std::min(a->value(), b->value()), 0u);
  EXPECT_EQ(std::max(a->value(), b->value()), 0x3000u);
  EXPECT_EQ(stage2_->Map(kOther, Pages(0x90002000, 0x1000), Access::kRead).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(ShmRegionStage2Test, Map_AfterMapAtWhileAttached_NeverLandsOnItsOffsets) {
  RecordingMapper other;
  ASSERT_TRUE(stage2_->Attach(kOther, 0x4000, &other, [] {}).ok());
  ASSERT_TRUE(
      stage2_->MapAt(kOther, Pages(0x80000000, 0x2000), Access::kRead, GuestAddr(0x1000)).ok());
  absl::StatusOr<GuestAddr> a = stage2_->Map(kOther, Pages(0x90000000, 0x1000), Access::kRead);
  absl::StatusOr<GuestAddr> b = stage2_->Map(kOther, Pages(0x90001000, 0x1000), Access::kRead);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(std::min(a->value(), b->value()), 0u);
  EXPECT_EQ(std::max(a->value(), b->value()), 0x3000u);
  EXPECT_EQ(stage2_->Map(kOther, Pages(0x90002000, 0x1000), Access::kRead).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// ---- pieces: one per mapping, with its right, revoked as it ends -------------

TEST_F(ShmRegionStage2Test, Pieces_OnePerMappingWithItsRightAndTheVmmGetsThatFd) {
  ASSERT_TRUE(stage2_->Map(kVm, Pages(0x80003000, 0x2000), Access::kRead).ok());
  ASSERT_TRUE(stage2_->Map(kVm, Pages(0x90000000, 0x1000), Access::kReadWrite).ok());
  ASSERT_EQ(mapper_.maps.size(), 2u);
  ASSERT_EQ(log_.size(), 4u);
  EXPECT_EQ(log_[0], absl::StrCat("issue 0x80003000 ro fd ", mapper_.maps[0].fd));
  EXPECT_THAT(log_[1], HasSubstr(absl::StrCat("map fd ", mapper_.maps[0].fd)));
  EXPECT_EQ(log_[2], absl::StrCat("issue 0x90000000 rw fd ", mapper_.maps[1].fd));
  EXPECT_NE(mapper_.maps[0].fd, mapper_.maps[1].fd);
  EXPECT_NE(mapper_.maps[0].fd, memory_->Locate(Pages(0x80003000, 0x2000))->fd)
      << "the VMM gets a piece of its own, never rmemd's descriptor";
}

TEST_F(ShmRegionStage2Test, Pieces_RevokedOnlyAfterTheVmmUnmapped) {
  ASSERT_TRUE(stage2_->Map(kVm, Pages(0x80000000, 0x3000), Access::kRead).ok());
  const int fd = mapper_.maps[0].fd;
  log_.clear();
  stage2_->Unmap(kVm, Pages(0x80000000, 0x3000));
  EXPECT_THAT(log_, ::testing::ElementsAre(HasSubstr("unmap at"), absl::StrCat("revoke fd ", fd)));
}

TEST_F(ShmRegionStage2Test, Pieces_UnconfirmedUnmap_RevokedAndTheVmmSevered) {
  ASSERT_TRUE(stage2_->Map(kVm, Pages(0x80000000, 0x1000), Access::kRead).ok());
  const int fd = mapper_.maps[0].fd;
  mapper_.unmap_error = absl::DeadlineExceededError("no ack within 1 s");
  log_.clear();
  stage2_->Unmap(kVm, Pages(0x80000000, 0x1000));
  EXPECT_THAT(log_, ::testing::ElementsAre(HasSubstr("unmap at"), absl::StrCat("revoke fd ", fd)));
  EXPECT_EQ(severed_, 1);
}

TEST_F(ShmRegionStage2Test, Pieces_DetachRevokesEveryPieceOfThatVmOnly) {
  RecordingMapper other(&log_);
  ASSERT_TRUE(stage2_->Attach(kOther, 16 * kMiB, &other, [] {}).ok());
  ASSERT_TRUE(stage2_->Map(kVm, Pages(0x80000000, 0x1000), Access::kRead).ok());
  ASSERT_TRUE(stage2_->Map(kVm, Pages(0x80100000, 0x1000), Access::kReadWrite).ok());
  ASSERT_TRUE(stage2_->Map(kOther, Pages(0x90000000, 0x1000), Access::kRead).ok());
  log_.clear();
  stage2_->Detach(kVm);
  std::vector<std::string> revoked = log_;
  std::sort(revoked.begin(), revoked.end());
  std::vector<std::string> want = {absl::StrCat("revoke fd ", mapper_.maps[0].fd),
                                   absl::StrCat("revoke fd ", mapper_.maps[1].fd)};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(revoked, want) << "nothing asked of the gone VMM; the other VM's piece stays";
}

TEST_F(ShmRegionStage2Test, Pieces_VmmRefusesMap_ThePieceIsRevoked) {
  mapper_.map_error = absl::UnavailableError("vhost-user backend channel closed");
  ASSERT_FALSE(stage2_->Map(kVm, Pages(0x80000000, 0x1000), Access::kRead).ok());
  ASSERT_EQ(log_.size(), 3u);
  EXPECT_THAT(log_[0], HasSubstr("issue 0x80000000 ro fd "));
  EXPECT_EQ(log_[2], absl::StrCat("revoke", log_[0].substr(log_[0].find(" fd "))));
}

TEST_F(ShmRegionStage2Test, Pieces_CannotIssue_MapFailsWithThatErrorAndNothingAsked) {
  pieces_->issue_error = absl::FailedPreconditionError("the module issues no pieces");
  absl::StatusOr<GuestAddr> a = stage2_->Map(kVm, Pages(0x80000000, 0x1000), Access::kRead);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(mapper_.maps.empty());
  EXPECT_EQ(stage2_->mapped_bytes(kVm), 0u);
}

// Accepts the first map, refuses every later one.
class FirstMapOnlyMapper : public RecordingMapper {
 public:
  absl::Status Map(uint64_t offset, int fd, uint64_t fd_offset, uint64_t length,
                   bool writable) override {
    if (!maps.empty()) return absl::UnavailableError("vhost-user backend channel closed");
    return RecordingMapper::Map(offset, fd, fd_offset, length, writable);
  }
};

TEST_F(ShmRegionStage2Test, Pieces_FailedAttachRevokesWhatItIssued) {
  // Both restored mappings fit; whichever is restored second is refused,
  // so each was issued a piece (the order of restoring is unspecified).
  ASSERT_TRUE(stage2_->MapAt(kOther, Pages(0x80000000, 0x1000), Access::kRead, GuestAddr(0)).ok());
  ASSERT_TRUE(
      stage2_->MapAt(kOther, Pages(0x80100000, 0x1000), Access::kRead, GuestAddr(0x2000)).ok());
  FirstMapOnlyMapper other;
  log_.clear();
  ASSERT_FALSE(stage2_->Attach(kOther, 16 * kMiB, &other, [] {}).ok());
  size_t issued = 0, revoked = 0;
  for (const std::string& e : log_) {
    issued += e.starts_with("issue");
    revoked += e.starts_with("revoke");
  }
  EXPECT_EQ(issued, 2u);
  EXPECT_EQ(revoked, issued);
}

TEST_F(ShmRegionStage2Test, Pieces_TheStandinsAreNotConfined) {
  EXPECT_FALSE(memory_->confined());
  absl::StatusOr<std::unique_ptr<CarveoutMemory::PieceFile>> piece =
      memory_->Issue(Pages(0x80003000, 0x2000), false);
  ASSERT_TRUE(piece.ok()) << piece.status();
  EXPECT_EQ((*piece)->offset(), 0x3000u) << "the whole memfd, at the piece's offset";
  EXPECT_TRUE(SameFile((*piece)->fd(), memory_->Locate(Pages(0x80003000, 0x2000))->fd));
  EXPECT_EQ(memory_->Issue(Pages(0x807ff000, 0x2000), false).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A file that lists the carve-outs as the module does but is no device: it
// answers no ioctl, as a module older than pieces would.
TEST(DeviceCarveoutMemory, ModuleWithoutPieces_FailedPreconditionNamingTheModule) {
  char path[] = "/tmp/rmem-carveout-listing-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string listing = "0x80000000 0x800000 video@80000000\n0x90000000 0x100000 ui@90000000\n";
  ASSERT_EQ(write(fd, listing.data(), listing.size()), static_cast<ssize_t>(listing.size()));
  close(fd);
  absl::StatusOr<std::unique_ptr<CarveoutMemory>> m = OpenDeviceCarveoutMemory(path, TwoCarveouts());
  unlink(path);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE((*m)->confined());
  absl::StatusOr<std::unique_ptr<CarveoutMemory::PieceFile>> piece =
      (*m)->Issue(Pages(0x80000000, 0x1000), false);
  EXPECT_EQ(piece.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(piece.status().message(), HasSubstr("rmem_carveout module loaded is older"));
  EXPECT_EQ((*m)->Issue(Pages(0x807ff000, 0x2000), true).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DeviceCarveoutMemory, MissingDevice_NotFoundNamingTheModule) {
  absl::StatusOr<std::unique_ptr<CarveoutMemory>> m =
      OpenDeviceCarveoutMemory("/dev/rmem-carveout-not-here", TwoCarveouts());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(m.status().message(), HasSubstr("rmem_carveout loaded"));
}

// The real pieces end to end: the broker over ShmRegionStage2 and
// CarveoutScrubber on the memfd stand-in. What the owner writes through its
// piece is there; after FREE the next owner's piece reads zeros.
TEST(ShmRegionBroker, OwnerWritesAndNextOwnerReadsZeros) {
  const testing::TestPlatform platform = testing::SmallPlatform();
  absl::StatusOr<std::unique_ptr<CarveoutMemory>> memory = MakeMemfdCarveoutMemory(platform.carveouts);
  ASSERT_TRUE(memory.ok());
  ShmRegionStage2 stage2(**memory);
  CarveoutScrubber scrubber(**memory);
  FakeMemory fake_memory;
  FakeFirewall firewall(&fake_memory);
  auto broker = Broker::Create(platform.carveouts, platform.policy,
                               Backends{&stage2, &firewall, &scrubber});
  ASSERT_TRUE(broker.ok()) << broker.status();
  RecordingMapper decrypt, camera;
  ASSERT_TRUE(stage2.Attach(VmId(1), 16 * kMiB, &decrypt, [] {}).ok());
  ASSERT_TRUE(stage2.Attach(VmId(4), 16 * kMiB, &camera, [] {}).ok());

  absl::StatusOr<Allocation> a = (*broker)->Alloc(VmId(1), "general", 0x2000, 0);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(decrypt.maps.size(), 1u);
  const MapCall piece = decrypt.maps[0];
  EXPECT_EQ(piece.offset, a->mapped_at->value());
  void* p = mmap(nullptr, piece.length, PROT_READ | PROT_WRITE, MAP_SHARED, piece.fd,
                 static_cast<off_t>(piece.fd_offset));
  ASSERT_NE(p, MAP_FAILED);
  std::memset(p, 0xa5, piece.length);  // the owner's secret
  munmap(p, piece.length);
  ASSERT_TRUE((*broker)->Free(VmId(1), a->id).ok());
  ASSERT_EQ(decrypt.unmaps.size(), 1u);

  absl::StatusOr<Allocation> b = (*broker)->Alloc(VmId(4), "general", 0x2000, 0);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->pages, a->pages) << "best fit hands the same pages back (the test relies on it)";
  ASSERT_EQ(camera.maps.size(), 1u);
  const MapCall next = camera.maps[0];
  auto* q = static_cast<const uint8_t*>(mmap(nullptr, next.length, PROT_READ, MAP_SHARED, next.fd,
                                             static_cast<off_t>(next.fd_offset)));
  ASSERT_NE(q, MAP_FAILED);
  std::vector<uint8_t> seen(q, q + next.length);
  munmap(const_cast<uint8_t*>(q), next.length);
  EXPECT_EQ(seen, std::vector<uint8_t>(next.length, 0)) << "the next owner must read zeros";
}

}  // namespace
}  // namespace rmem

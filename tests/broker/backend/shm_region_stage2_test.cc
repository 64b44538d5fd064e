// ShmRegionStage2, CarveoutScrubber and the memfd CarveoutMemory: offsets in
// each VM's region, what the VMM is asked to map (fd, offset, length,
// writable), unmap, detach, a VMM that refuses or does not confirm; and the
// broker driving them end to end over the memfd stand-in: a buffer's bytes
// as the owner writes them through the piece it was given, zeros for the
// next owner after free.
#include "broker/backend/shm_region_stage2.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

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

// Records what the VMM is asked; can refuse maps or unmaps.
class RecordingMapper : public ShmRegionMapper {
 public:
  absl::Status Map(uint64_t offset, int fd, uint64_t fd_offset, uint64_t length,
                   bool writable) override {
    if (!map_error.ok()) return map_error;
    maps.push_back({offset, fd, fd_offset, length, writable});
    return absl::OkStatus();
  }
  absl::Status Unmap(uint64_t offset, uint64_t length) override {
    if (!unmap_error.ok()) return unmap_error;
    unmaps.push_back({offset, length});
    return absl::OkStatus();
  }
  std::vector<MapCall> maps;
  std::vector<std::pair<uint64_t, uint64_t>> unmaps;
  absl::Status map_error, unmap_error;
};

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
    stage2_ = std::make_unique<ShmRegionStage2>(*memory_);
    ASSERT_TRUE(stage2_->Attach(kVm, 16 * kMiB, &mapper_, [this] { ++severed_; }).ok());
  }
  std::unique_ptr<CarveoutMemory> memory_;
  std::unique_ptr<ShmRegionStage2> stage2_;
  RecordingMapper mapper_;
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
  EXPECT_EQ(call.fd, memory_->Locate(Pages(0x80003000, 0x2000))->fd);
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

#include "vmm/memory/shm_window.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace rmem::vmm {
namespace {

constexpr uint64_t kBase = 0x8000000000;

// Records what would become memslots; can be told to fail.
class RecordingMapper : public GuestMapper {
 public:
  struct Slot {
    uint64_t guest, len;
    uint8_t* host;
    bool writable;
  };
  absl::StatusOr<uint32_t> Install(GuestAddr guest, uint8_t* host, uint64_t len,
                                   bool writable) override {
    if (fail) return absl::ResourceExhaustedError("no memslots left");
    slots[next] = {guest.value(), len, host, writable};
    return next++;
  }
  absl::Status Remove(uint32_t token) override {
    return slots.erase(token) == 1 ? absl::OkStatus() : absl::NotFoundError("no such slot");
  }
  std::map<uint32_t, Slot> slots;
  uint32_t next = 1;
  bool fail = false;
};

class ShmWindowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    windows_.SetRegions({{.id = 0, .base = GuestAddr(kBase), .size = 0x100000}});
    fd_ = memfd_create("shm-test", MFD_CLOEXEC);
    ASSERT_GE(fd_, 0);
    ASSERT_EQ(ftruncate(fd_, 1 << 20), 0);
    ASSERT_EQ(pwrite(fd_, "rmem", 4, 0x2000), 4);
  }
  void TearDown() override { close(fd_); }
  absl::StatusCode Code(absl::Status s) { return s.code(); }

  int fd_ = -1;
  RecordingMapper mapper_;
  ShmWindows windows_{"virtio-test", &mapper_};
};

TEST_F(ShmWindowTest, MapInstallsTheFdPieceWithItsRights) {
  ASSERT_TRUE(windows_.Map(0, fd_, 0x2000, 0x10000, 0x1000, /*writable=*/false).ok());
  ASSERT_EQ(mapper_.slots.size(), 1u);
  const RecordingMapper::Slot& s = mapper_.slots.begin()->second;
  EXPECT_EQ(s.guest, kBase + 0x10000);
  EXPECT_EQ(s.len, 0x1000u);
  EXPECT_FALSE(s.writable);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(s.host), 4), "rmem");  // the fd's bytes
  ASSERT_TRUE(windows_.Unmap(0, 0x10000, 0x1000).ok());
  EXPECT_TRUE(mapper_.slots.empty());
  EXPECT_EQ(windows_.mapped_pieces(), 0u);
}

TEST_F(ShmWindowTest, RejectsBadMapsWithoutChangingAnything) {
  ASSERT_TRUE(windows_.Map(0, fd_, 0, 0x10000, 0x2000, true).ok());
  struct Case {
    uint8_t shmid;
    uint64_t fd_offset, shm_offset, len;
    const char* why;
  };
  const Case cases[] = {
      {1, 0, 0, 0x1000, "no such region"},
      {0, 0, 0, 0, "non-zero multiples of 4 KiB"},
      {0, 0, 0x800, 0x1000, "non-zero multiples of 4 KiB"},
      {0, 0x10, 0, 0x1000, "non-zero multiples of 4 KiB"},
      {0, 0, 0xff000, 0x2000, "outside the region"},
      {0, 0, 0x1000, ~uint64_t{0xfff}, "outside the region"},
      {0, 0, 0x11000, 0x1000, "overlaps the piece at 0x10000"},
      {0, 0, 0xf000, 0x2000, "overlaps the piece at 0x10000"},
  };
  for (const Case& c : cases) {
    const absl::Status s = windows_.Map(c.shmid, fd_, c.fd_offset, c.shm_offset, c.len, false);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.why;
    EXPECT_NE(s.message().find(c.why), absl::string_view::npos) << s;
  }
  EXPECT_EQ(mapper_.slots.size(), 1u);
  EXPECT_TRUE(windows_.Map(0, fd_, 0, 0xe000, 0x2000, false).ok());  // adjacent: fine
  EXPECT_TRUE(windows_.Map(0, fd_, 0, 0x12000, 0x1000, false).ok());
}

TEST_F(ShmWindowTest, UnmapMustBeExactlyOneEarlierMap) {
  ASSERT_TRUE(windows_.Map(0, fd_, 0, 0x10000, 0x2000, true).ok());
  EXPECT_EQ(Code(windows_.Unmap(0, 0x10000, 0x1000)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(windows_.Unmap(0, 0x11000, 0x1000)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(windows_.Unmap(2, 0x10000, 0x2000)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mapper_.slots.size(), 1u);
  EXPECT_TRUE(windows_.Unmap(0, 0x10000, 0x2000).ok());
  EXPECT_EQ(Code(windows_.Unmap(0, 0x10000, 0x2000)), absl::StatusCode::kInvalidArgument);
}

TEST_F(ShmWindowTest, WritableMapOfAReadOnlyFdFails) {
  const int ro = open(("/proc/self/fd/" + std::to_string(fd_)).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(ro, 0);
  EXPECT_EQ(Code(windows_.Map(0, ro, 0, 0, 0x1000, true)), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(windows_.Map(0, ro, 0, 0, 0x1000, false).ok());
  close(ro);
}

TEST_F(ShmWindowTest, InstallFailureLeavesNothingMapped) {
  mapper_.fail = true;
  EXPECT_EQ(Code(windows_.Map(0, fd_, 0, 0, 0x1000, true)), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(windows_.mapped_pieces(), 0u);
  mapper_.fail = false;
  EXPECT_TRUE(windows_.Map(0, fd_, 0, 0, 0x1000, true).ok());
}

TEST_F(ShmWindowTest, ClassifiesViolationsByAddress) {
  ASSERT_TRUE(windows_.Map(0, fd_, 0, 0x10000, 0x1000, false).ok());
  std::optional<std::string> ro = windows_.Classify(GuestAddr(kBase + 0x10008), true);
  ASSERT_TRUE(ro.has_value());
  EXPECT_NE(ro->find("write to read-only piece 0x10000+0x1000"), std::string::npos) << *ro;
  EXPECT_NE(ro->find("0x8000010008"), std::string::npos) << *ro;
  std::optional<std::string> hole = windows_.Classify(GuestAddr(kBase + 0x20000), false);
  ASSERT_TRUE(hole.has_value());
  EXPECT_NE(hole->find("read of unmapped offset 0x20000"), std::string::npos) << *hole;
  EXPECT_FALSE(windows_.Classify(GuestAddr(kBase + 0x100000), false).has_value());
  EXPECT_FALSE(windows_.Classify(GuestAddr(0x40000000), true).has_value());
}

TEST_F(ShmWindowTest, MapsBeforeRegionsAreKnownAreRefused) {
  ShmWindows w("virtio-test", &mapper_);
  const absl::Status s = w.Map(0, fd_, 0, 0, 0x1000, true);
  EXPECT_NE(s.message().find("no such region"), absl::string_view::npos) << s;
  EXPECT_TRUE(mapper_.slots.empty());
}

TEST_F(ShmWindowTest, DestructionRemovesGuestMappings) {
  {
    ShmWindows w("virtio-test", &mapper_);
    w.SetRegions({{.id = 3, .base = GuestAddr(kBase), .size = 0x10000}});
    ASSERT_TRUE(w.Map(3, fd_, 0, 0, 0x1000, true).ok());
    ASSERT_TRUE(w.Map(3, fd_, 0, 0x4000, 0x1000, true).ok());
    EXPECT_EQ(mapper_.slots.size(), 2u);
  }
  EXPECT_TRUE(mapper_.slots.empty());
}

}  // namespace
}  // namespace rmem::vmm

#include "vmm/memory/shm_window.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace rmem::vmm {
namespace {

constexpr uint64_t kBase = 0x8000000000;

// Whether [host, host + len) is mapped in this process.
bool HostMapped(const uint8_t* host, uint64_t len) {
  std::vector<unsigned char> pages((len + 4095) / 4096);
  return mincore(const_cast<uint8_t*>(host), len, pages.data()) == 0;
}

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
    auto it = slots.find(token);
    if (it == slots.end()) return absl::NotFoundError("no such slot");
    // The guest must lose a piece while the host still maps it.
    if (!HostMapped(it->second.host, it->second.len)) ++removed_after_unmap;
    slots.erase(it);
    return absl::OkStatus();
  }
  std::map<uint32_t, Slot> slots;
  uint32_t next = 1;
  bool fail = false;
  int removed_after_unmap = 0;
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

// --- a back-end away (Suspend .. Resume) -------------------------------------

constexpr absl::Duration kGuard = absl::Seconds(10);  // hang guard, never a measurement

TEST_F(ShmWindowTest, Suspend_RemovesEveryPieceGuestMappingFirstThenHost) {
  ShmWindows w("virtio-test", &mapper_);
  w.SetRegions({{.id = 0, .base = GuestAddr(kBase), .size = 0x100000},
                {.id = 2, .base = GuestAddr(kBase + 0x100000), .size = 0x10000}});
  ASSERT_TRUE(w.Map(0, fd_, 0, 0, 0x1000, true).ok());
  ASSERT_TRUE(w.Map(0, fd_, 0x2000, 0x8000, 0x2000, false).ok());
  ASSERT_TRUE(w.Map(2, fd_, 0, 0x4000, 0x1000, true).ok());
  std::vector<RecordingMapper::Slot> before;
  for (const auto& [token, slot] : mapper_.slots) before.push_back(slot);
  ASSERT_EQ(before.size(), 3u);

  w.Suspend();
  EXPECT_TRUE(mapper_.slots.empty()) << "the guest reaches none of them";
  EXPECT_EQ(mapper_.removed_after_unmap, 0) << "guest mapping removed before the host's";
  EXPECT_EQ(w.mapped_pieces(), 0u);
  for (const RecordingMapper::Slot& slot : before) {
    EXPECT_FALSE(HostMapped(slot.host, slot.len)) << "host mapping of " << std::hex << slot.guest;
  }
  // Now unmapped: Classify says so, and Unmap of a piece from before fails.
  std::optional<std::string> v = w.Classify(GuestAddr(kBase + 0x8000), false);
  ASSERT_TRUE(v.has_value());
  EXPECT_NE(v->find("unmapped offset 0x8000"), std::string::npos) << *v;
  EXPECT_EQ(Code(w.Unmap(0, 0x8000, 0x2000)), absl::StatusCode::kInvalidArgument);
}

TEST_F(ShmWindowTest, Suspend_MapsFromTheBackendThatCameBackLandMeanwhile) {
  ASSERT_TRUE(windows_.Map(0, fd_, 0, 0x10000, 0x1000, true).ok());
  windows_.Suspend();
  ASSERT_TRUE(windows_.Map(0, fd_, 0x2000, 0x10000, 0x1000, false).ok())
      << "the offset is free again";
  EXPECT_EQ(windows_.mapped_pieces(), 1u);
  windows_.Resume();
  EXPECT_EQ(windows_.mapped_pieces(), 1u) << "Resume keeps what was mapped meanwhile";
  ASSERT_EQ(mapper_.slots.size(), 1u);
  EXPECT_FALSE(mapper_.slots.begin()->second.writable);
}

TEST_F(ShmWindowTest, AwaitSettled_InDoubtOnlyInsideTheRegionsUntilResume) {
  const GuestAddr inside(kBase + 0x10000), outside(kBase + 0x100000);
  const absl::Duration slice = absl::Milliseconds(1);
  EXPECT_FALSE(windows_.AwaitSettled(inside, slice)) << "not suspended";
  windows_.Suspend();
  EXPECT_TRUE(windows_.AwaitSettled(inside, slice));
  EXPECT_TRUE(windows_.AwaitSettled(GuestAddr(kBase), slice)) << "the region's first byte";
  EXPECT_TRUE(windows_.AwaitSettled(GuestAddr(kBase + 0xfffff), slice)) << "its last byte";
  EXPECT_FALSE(windows_.AwaitSettled(outside, slice)) << "just past the region";
  EXPECT_FALSE(windows_.AwaitSettled(GuestAddr(kBase - 1), slice)) << "just before it";
  EXPECT_FALSE(windows_.AwaitSettled(GuestAddr(0x40000000), slice)) << "RAM";
  // A map meanwhile does not settle the region: the back-end is not done.
  ASSERT_TRUE(windows_.Map(0, fd_, 0, 0x10000, 0x1000, true).ok());
  EXPECT_TRUE(windows_.AwaitSettled(inside, slice));
  windows_.Resume();
  EXPECT_FALSE(windows_.AwaitSettled(inside, slice));
  EXPECT_FALSE(windows_.AwaitSettled(GuestAddr(kBase + 0x20000), slice)) << "unmapped, settled";
}

TEST_F(ShmWindowTest, AwaitSettled_WaiterReturnsWhenResumed) {
  windows_.Suspend();
  absl::Notification returned;
  bool still_in_doubt = true;
  // A slice longer than the guard: only Resume can end the wait in time.
  std::thread vcpu([&] {
    still_in_doubt = windows_.AwaitSettled(GuestAddr(kBase + 0x10000), 2 * kGuard);
    returned.Notify();
  });
  EXPECT_FALSE(returned.WaitForNotificationWithTimeout(absl::Milliseconds(50)))
      << "it waits while in doubt";
  windows_.Resume();
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(kGuard));
  vcpu.join();
  EXPECT_FALSE(still_in_doubt);
}

TEST_F(ShmWindowTest, Changes_CountEveryChangeAndNothingElse) {
  uint64_t before = windows_.changes();
  ASSERT_FALSE(windows_.Map(1, fd_, 0, 0, 0x1000, false).ok());
  EXPECT_EQ(windows_.changes(), before) << "a refused map changes nothing";
  ASSERT_TRUE(windows_.Map(0, fd_, 0, 0x10000, 0x1000, false).ok());
  EXPECT_EQ(windows_.changes(), ++before);
  (void)windows_.Access(GuestAddr(kBase + 0x10000), {}, false);
  EXPECT_EQ(windows_.changes(), before) << "an access changes nothing";
  ASSERT_FALSE(windows_.Unmap(0, 0x10000, 0x2000).ok());
  EXPECT_EQ(windows_.changes(), before);
  ASSERT_TRUE(windows_.Unmap(0, 0x10000, 0x1000).ok());
  EXPECT_EQ(windows_.changes(), ++before);
  windows_.Suspend();
  EXPECT_EQ(windows_.changes(), ++before);
  windows_.Resume();
  EXPECT_EQ(windows_.changes(), ++before);
}

TEST_F(ShmWindowTest, AwaitChange_ReturnsAtOnceIfChangedElseWhenTheNextChangeComes) {
  const uint64_t before = windows_.changes();
  EXPECT_FALSE(windows_.AwaitChange(before, absl::Milliseconds(1))) << "nothing changed";
  ASSERT_TRUE(windows_.Map(0, fd_, 0, 0x10000, 0x1000, false).ok());
  EXPECT_TRUE(windows_.AwaitChange(before, absl::ZeroDuration())) << "changed since";
  absl::Notification returned;
  bool changed = false;
  const uint64_t now = windows_.changes();
  // A slice longer than the guard: only the unmap can end the wait in time.
  std::thread vcpu([&] {
    changed = windows_.AwaitChange(now, 2 * kGuard);
    returned.Notify();
  });
  EXPECT_FALSE(returned.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  ASSERT_TRUE(windows_.Unmap(0, 0x10000, 0x1000).ok());  // the back-end's unmap
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(kGuard));
  vcpu.join();
  EXPECT_TRUE(changed);
}

TEST_F(ShmWindowTest, Access_ReadsAndWritesThroughTheMappedPiece) {
  ASSERT_TRUE(windows_.Map(0, fd_, 0x2000, 0x10000, 0x1000, /*writable=*/false).ok());
  ASSERT_TRUE(windows_.Map(0, fd_, 0x4000, 0x20000, 0x1000, /*writable=*/true).ok());
  uint8_t word[4] = {};
  ASSERT_TRUE(windows_.Access(GuestAddr(kBase + 0x10000), word, /*is_write=*/false));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(word), 4), "rmem") << "the fd's bytes";

  uint8_t store[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_TRUE(windows_.Access(GuestAddr(kBase + 0x20ff8), store, /*is_write=*/true))
      << "the piece's last 8 bytes";
  uint8_t file[8] = {};
  ASSERT_EQ(pread(fd_, file, 8, 0x4ff8), 8);
  EXPECT_EQ(std::memcmp(file, store, 8), 0) << "the store reached the back-end's memory";
  uint8_t load[8] = {};
  ASSERT_TRUE(windows_.Access(GuestAddr(kBase + 0x20ff8), load, false));
  EXPECT_EQ(std::memcmp(load, store, 8), 0);
  uint8_t byte[1] = {0xee};
  ASSERT_TRUE(windows_.Access(GuestAddr(kBase + 0x20003), byte, true));
  ASSERT_EQ(pread(fd_, file, 1, 0x4003), 1);
  EXPECT_EQ(file[0], 0xee);
}

TEST_F(ShmWindowTest, Access_RefusesWhatTheGuestMayNotDo) {
  ASSERT_TRUE(windows_.Map(0, fd_, 0x2000, 0x10000, 0x1000, /*writable=*/false).ok());
  ASSERT_TRUE(windows_.Map(0, fd_, 0x4000, 0x11000, 0x1000, /*writable=*/true).ok());
  uint8_t store[4] = {'x', 'x', 'x', 'x'};
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x10000), store, /*is_write=*/true))
      << "write to a read-only piece";
  char file[4];
  ASSERT_EQ(pread(fd_, file, 4, 0x2000), 4);
  EXPECT_EQ(std::string(file, 4), "rmem") << "and nothing written";
  uint8_t buf[9] = {};
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x11000), buf, false)) << "more than 8 bytes";
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x11000), buf, true)) << "more than 8 bytes";
  uint8_t word[8] = {};
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x30000), word, false)) << "unmapped offset";
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x100000), word, false)) << "outside the region";
  EXPECT_FALSE(windows_.Access(GuestAddr(0x40000000), word, false)) << "outside every region";
  // Across the end of the read-only piece into the writable one after it.
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x10ffc), word, false))
      << "an access crossing two pieces";
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x11ffc), word, false))
      << "an access running past a piece into a hole";
}

TEST_F(ShmWindowTest, Access_EmptySpanOnlyChecksTheRight) {
  ASSERT_TRUE(windows_.Map(0, fd_, 0x2000, 0x10000, 0x1000, /*writable=*/false).ok());
  ASSERT_TRUE(windows_.Map(0, fd_, 0x4000, 0x20000, 0x1000, /*writable=*/true).ok());
  EXPECT_TRUE(windows_.Access(GuestAddr(kBase + 0x10010), {}, false));
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x10010), {}, true));
  EXPECT_TRUE(windows_.Access(GuestAddr(kBase + 0x20010), {}, true));
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x30000), {}, false));
  EXPECT_FALSE(windows_.Access(GuestAddr(0x40000000), {}, false));
}

TEST_F(ShmWindowTest, Access_AfterSuspendRefusedUntilMappedAgain) {
  ASSERT_TRUE(windows_.Map(0, fd_, 0x2000, 0x10000, 0x1000, true).ok());
  windows_.Suspend();
  uint8_t word[4] = {};
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x10000), word, false));
  ASSERT_TRUE(windows_.Map(0, fd_, 0x2000, 0x10000, 0x1000, true).ok());
  EXPECT_TRUE(windows_.Access(GuestAddr(kBase + 0x10000), word, false));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(word), 4), "rmem");
}

TEST_F(ShmWindowTest, Access_CountsOnlyTheBytesItLoadedOrStored) {
  ASSERT_TRUE(windows_.Map(0, fd_, 0x2000, 0x10000, 0x1000, /*writable=*/false).ok());
  ASSERT_TRUE(windows_.Map(0, fd_, 0x4000, 0x20000, 0x1000, /*writable=*/true).ok());
  EXPECT_EQ(windows_.bytes_accessed(), 0u) << "mapping pieces copies nothing";
  uint8_t word[4] = {};
  ASSERT_TRUE(windows_.Access(GuestAddr(kBase + 0x10000), word, /*is_write=*/false));
  uint8_t store[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_TRUE(windows_.Access(GuestAddr(kBase + 0x20000), store, /*is_write=*/true));
  EXPECT_EQ(windows_.bytes_accessed(), 12u) << "a 4-byte load and an 8-byte store";

  // Refused accesses and a right check move no data.
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x10000), store, /*is_write=*/true));
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x30000), word, false));
  uint8_t nine[9] = {};
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x20000), nine, false));
  EXPECT_TRUE(windows_.Access(GuestAddr(kBase + 0x20000), {}, true));
  EXPECT_EQ(windows_.bytes_accessed(), 12u);

  // The count covers the windows' life, across a back-end's absence.
  windows_.Suspend();
  EXPECT_FALSE(windows_.Access(GuestAddr(kBase + 0x20000), word, false));
  ASSERT_TRUE(windows_.Map(0, fd_, 0x4000, 0x20000, 0x1000, true).ok());
  windows_.Resume();
  ASSERT_TRUE(windows_.Access(GuestAddr(kBase + 0x20000), word, false));
  EXPECT_EQ(windows_.bytes_accessed(), 16u);
}

}  // namespace
}  // namespace rmem::vmm

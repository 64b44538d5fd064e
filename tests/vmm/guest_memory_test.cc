#include "vmm/memory/guest_memory.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace rmem::vmm {
namespace {

TEST(GuestMemoryTest, RejectsUnalignedOrEmptyRam) {
  EXPECT_EQ(GuestMemory::Create(GuestAddr(0x40000000), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GuestMemory::Create(GuestAddr(0x40000001), 4096).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GuestMemory::Create(GuestAddr(0x40000000), 4097).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GuestMemory::Create(GuestAddr(~uint64_t{0} & ~uint64_t{4095}), 8192).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GuestMemoryTest, IsAMemfdOfTheRightSize) {
  absl::StatusOr<GuestMemory> ram = GuestMemory::Create(GuestAddr(0x40000000), 1 << 20);
  ASSERT_TRUE(ram.ok()) << ram.status();
  struct stat st {};
  ASSERT_EQ(fstat(ram->fd(), &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);
  EXPECT_EQ(ram->end(), GuestAddr(0x40100000));
}

TEST(GuestMemoryTest, SizeIsSealed) {
  absl::StatusOr<GuestMemory> ram = GuestMemory::Create(GuestAddr(0x40000000), 1 << 20);
  ASSERT_TRUE(ram.ok()) << ram.status();
  const int seals = fcntl(ram->fd(), F_GET_SEALS);
  EXPECT_NE(seals & F_SEAL_SHRINK, 0);
  EXPECT_NE(seals & F_SEAL_GROW, 0);
  EXPECT_NE(ftruncate(ram->fd(), 4096), 0) << "guest RAM could shrink under a back-end";
}

TEST(GuestMemoryTest, RamIsHugePageAligned) {
  absl::StatusOr<GuestMemory> ram = GuestMemory::Create(GuestAddr(0x40000000), 4 << 20);
  ASSERT_TRUE(ram.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ram->host_base()) % (2 << 20), 0u);
  ram->host_base()[(4 << 20) - 1] = 1;  // the whole range is mapped and writable
}

TEST(GuestMemoryTest, SliceChecksEveryByteAndOverflow) {
  absl::StatusOr<GuestMemory> ram = GuestMemory::Create(GuestAddr(0x40000000), 1 << 20);
  ASSERT_TRUE(ram.ok());
  EXPECT_TRUE(ram->Slice(GuestAddr(0x40000000), 1 << 20).ok());
  EXPECT_TRUE(ram->Slice(GuestAddr(0x400fffff), 1).ok());
  EXPECT_TRUE(ram->Slice(GuestAddr(0x40100000), 0).ok());  // empty, at the end
  EXPECT_EQ(ram->Slice(GuestAddr(0x400fffff), 2).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ram->Slice(GuestAddr(0x3fffffff), 1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ram->Slice(GuestAddr(0x40000010), ~uint64_t{0}).status().code(),
            absl::StatusCode::kOutOfRange);
  const absl::Status s = ram->Slice(GuestAddr(0x400fffff), 2).status();
  EXPECT_NE(s.message().find("0x400fffff"), absl::string_view::npos) << s;
}

TEST(GuestMemoryTest, WriteLandsInTheMemfd) {
  absl::StatusOr<GuestMemory> ram = GuestMemory::Create(GuestAddr(0x40000000), 8192);
  ASSERT_TRUE(ram.ok());
  const uint8_t bytes[] = {1, 2, 3};
  ASSERT_TRUE(ram->Write(GuestAddr(0x40001000), bytes).ok());
  uint8_t back[3] = {};
  ASSERT_EQ(pread(ram->fd(), back, 3, 0x1000), 3);
  EXPECT_EQ(back[0], 1);
  EXPECT_EQ(back[2], 3);
  EXPECT_EQ(ram->Write(GuestAddr(0x40001fff), bytes).code(), absl::StatusCode::kOutOfRange);
}

TEST(GuestMemoryTest, MoveTransfersOwnership) {
  absl::StatusOr<GuestMemory> ram = GuestMemory::Create(GuestAddr(0x40000000), 4096);
  ASSERT_TRUE(ram.ok());
  const int fd = ram->fd();
  GuestMemory moved = std::move(*ram);
  EXPECT_EQ(moved.fd(), fd);
  EXPECT_EQ(ram->fd(), -1);  // NOLINT(bugprone-use-after-move): checking the moved-from state
}

}  // namespace
}  // namespace rmem::vmm

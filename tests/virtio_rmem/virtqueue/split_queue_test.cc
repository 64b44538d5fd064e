// The split virtqueue against a hostile driver (tests/virtio_rmem/fake_driver.h
// writes the rings the way a guest would): guest memory translation, every
// descriptor-chain rule with its own named test, used-ring updates and
// notification suppression, index wrapping, and ring corruption.
#include "virtio_rmem/virtqueue/split_queue.h"

#include <sys/mman.h>

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/virtio_rmem/fake_driver.h"
#include "virtio_rmem/virtqueue/descriptor_chain.h"
#include "virtio_rmem/virtqueue/guest_memory_map.h"

namespace rmem::virtio_rmem {
namespace {

using testing::FakeDriver;
using ::testing::HasSubstr;

constexpr GuestAddr kBase(0x40000000);
constexpr uint64_t kMemSize = 1 << 20;
constexpr uint16_t kQueueSize = 8;
constexpr GuestAddr kDesc(0x40000000), kAvail(0x40001000), kUsed(0x40002000);
constexpr GuestAddr kData(0x40010000);

// 1 MiB of anonymous memory standing in for guest RAM at kBase.
class Memory {
 public:
  Memory() {
    void* m = mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(m, MAP_FAILED);
    host_ = static_cast<uint8_t*>(m);
    map_ = *GuestMemoryMap::Create({{kBase, kMemSize, host_}});
  }
  ~Memory() { munmap(host_, kMemSize); }
  uint8_t* host() const { return host_; }
  uint8_t* At(GuestAddr a) const { return host_ + (a.value() - kBase.value()); }
  const GuestMemoryMap& map() const { return map_; }

 private:
  uint8_t* host_;
  GuestMemoryMap map_;
};

class SplitQueueTest : public ::testing::Test {
 protected:
  SplitQueueTest() : driver_(mem_.host(), kBase, kMemSize, kQueueSize, kDesc, kAvail, kUsed) {}

  SplitQueue MakeQueue(uint16_t next_avail = 0) {
    absl::StatusOr<SplitQueue> q = SplitQueue::Create(kQueueSize, Parts(), next_avail);
    EXPECT_TRUE(q.ok()) << q.status();
    return *std::move(q);
  }
  SplitQueueMemory Parts() const {
    return {{mem_.At(kDesc), 16 * kQueueSize},
            {mem_.At(kAvail), 6 + 2 * kQueueSize},
            {mem_.At(kUsed), 6 + 8 * kQueueSize}};
  }
  // Pops one chain that must be there; returns its chain status.
  absl::StatusOr<DescriptorChain> PopOne(SplitQueue& q) {
    absl::StatusOr<std::optional<SplitQueue::Popped>> p = q.Pop(mem_.map());
    EXPECT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(p->has_value());
    return std::move((*p)->chain);
  }

  Memory mem_;
  FakeDriver driver_;
};

// --- guest memory ---------------------------------------------------------

TEST(GuestMemoryMapTest, Translate_InsideOneRegion_HostSpan) {
  uint8_t a[64], b[64];
  absl::StatusOr<GuestMemoryMap> map =
      GuestMemoryMap::Create({{GuestAddr(0x2000), 64, b}, {GuestAddr(0x1000), 64, a}});
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->Translate(GuestAddr(0x1010), 16)->data(), a + 16);
  EXPECT_EQ(map->Translate(GuestAddr(0x2000), 64)->data(), b);
  EXPECT_EQ(map->Translate(GuestAddr(0x203f), 1)->data(), b + 63);
}

TEST(GuestMemoryMapTest, Translate_OutsideStraddlingOrOverflowing_InvalidArgument) {
  uint8_t a[64], b[64];
  absl::StatusOr<GuestMemoryMap> map =
      GuestMemoryMap::Create({{GuestAddr(0x1000), 64, a}, {GuestAddr(0x1040), 64, b}});
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(map->Translate(GuestAddr(0xfff), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(map->Translate(GuestAddr(0x1080), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Adjacent in guest space, but one range must lie in one region.
  EXPECT_EQ(map->Translate(GuestAddr(0x1030), 32).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(map->Translate(GuestAddr(0x1010), UINT64_MAX).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GuestMemoryMap().Translate(GuestAddr(0x1000), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GuestMemoryMapTest, Create_OverlapEmptyOrWrapping_InvalidArgument) {
  uint8_t a[64];
  EXPECT_FALSE(
      GuestMemoryMap::Create({{GuestAddr(0x1000), 64, a}, {GuestAddr(0x1020), 64, a}}).ok());
  EXPECT_FALSE(GuestMemoryMap::Create({{GuestAddr(0x1000), 0, a}}).ok());
  EXPECT_FALSE(GuestMemoryMap::Create({{GuestAddr(UINT64_MAX - 10), 64, a}}).ok());
  EXPECT_TRUE(GuestMemoryMap::Create({{GuestAddr(UINT64_MAX - 63), 64, a}}).ok());
}

// --- descriptor chains ----------------------------------------------------

TEST_F(SplitQueueTest, Pop_ReadableThenWritable_GathersAndScatters) {
  std::memcpy(mem_.At(kData), "hello, ", 7);
  std::memcpy(mem_.At(GuestAddr(kData.value() + 0x100)), "world", 5);
  const uint16_t head = driver_.Post({{kData, 7, false},
                                      {GuestAddr(kData.value() + 0x100), 5, false},
                                      {GuestAddr(kData.value() + 0x200), 4, true},
                                      {GuestAddr(kData.value() + 0x300), 8, true}});
  SplitQueue q = MakeQueue();
  absl::StatusOr<DescriptorChain> chain = PopOne(q);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->head(), head);
  EXPECT_EQ(std::string(chain->readable().begin(), chain->readable().end()), "hello, world");
  EXPECT_EQ(chain->writable_size(), 12u);
  EXPECT_EQ(chain->descriptor_count(), 4);
  const uint8_t reply[10] = {'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'};
  EXPECT_TRUE(chain->Write(1, reply));
  EXPECT_EQ(std::memcmp(mem_.At(GuestAddr(kData.value() + 0x201)), "012", 3), 0);
  EXPECT_EQ(std::memcmp(mem_.At(GuestAddr(kData.value() + 0x300)), "3456789", 7), 0);
  EXPECT_FALSE(chain->Write(3, reply)) << "13 bytes do not fit 12";
}

TEST_F(SplitQueueTest, Pop_ReadableCopiedOnce_DriverChangesDoNotReachDevice) {
  std::memcpy(mem_.At(kData), "abcd", 4);
  driver_.Post({{kData, 4, false}});
  SplitQueue q = MakeQueue();
  absl::StatusOr<DescriptorChain> chain = PopOne(q);
  ASSERT_TRUE(chain.ok());
  std::memcpy(mem_.At(kData), "XXXX", 4);
  EXPECT_EQ(std::string(chain->readable().begin(), chain->readable().end()), "abcd");
}

TEST_F(SplitQueueTest, Pop_NextIndexBeyondQueue_ChainRejected) {
  driver_.SetDesc(0, kData.value(), 4, FakeDriver::kNext, kQueueSize);
  driver_.MakeAvailable(0);
  SplitQueue q = MakeQueue();
  absl::StatusOr<DescriptorChain> chain = PopOne(q);
  ASSERT_EQ(chain.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(chain.status().message(), HasSubstr("not below the queue size"));
}

TEST_F(SplitQueueTest, Pop_SelfLoop_ChainRejected) {
  driver_.SetDesc(3, kData.value(), 4, FakeDriver::kNext, 3);
  driver_.MakeAvailable(3);
  SplitQueue q = MakeQueue();
  absl::StatusOr<DescriptorChain> chain = PopOne(q);
  ASSERT_EQ(chain.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(chain.status().message(), HasSubstr("longer than the queue size"));
}

TEST_F(SplitQueueTest, Pop_LoopThroughWholeTable_ChainRejected) {
  for (uint16_t i = 0; i < kQueueSize; ++i) {
    driver_.SetDesc(i, kData.value(), 1, FakeDriver::kNext, (i + 1) % kQueueSize);
  }
  driver_.MakeAvailable(5);
  SplitQueue q = MakeQueue();
  EXPECT_THAT(PopOne(q).status().message(), HasSubstr("longer than the queue size"));
}

TEST_F(SplitQueueTest, Pop_ChainOfExactlyQueueSize_Accepted) {
  for (uint16_t i = 0; i < kQueueSize; ++i) {
    const bool last = i + 1 == kQueueSize;
    driver_.SetDesc(i, kData.value() + i, 1, last ? 0 : FakeDriver::kNext, i + 1);
  }
  driver_.MakeAvailable(0);
  SplitQueue q = MakeQueue();
  absl::StatusOr<DescriptorChain> chain = PopOne(q);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->descriptor_count(), kQueueSize);
}

TEST_F(SplitQueueTest, Pop_IndirectFlag_ChainRejected) {
  driver_.SetDesc(0, kData.value(), 16, FakeDriver::kIndirect, 0);
  driver_.MakeAvailable(0);
  SplitQueue q = MakeQueue();
  EXPECT_THAT(PopOne(q).status().message(), HasSubstr("INDIRECT"));
}

TEST_F(SplitQueueTest, Pop_UnknownFlagBits_ChainRejected) {
  driver_.SetDesc(0, kData.value(), 16, 0x80, 0);
  driver_.MakeAvailable(0);
  SplitQueue q = MakeQueue();
  EXPECT_THAT(PopOne(q).status().message(), HasSubstr("unknown flag bits"));
}

TEST_F(SplitQueueTest, Pop_ReadableAfterWritable_ChainRejected) {
  driver_.Post({{kData, 4, true}, {GuestAddr(kData.value() + 8), 4, false}});
  SplitQueue q = MakeQueue();
  EXPECT_THAT(PopOne(q).status().message(), HasSubstr("device-readable after device-writable"));
}

TEST_F(SplitQueueTest, Pop_ReadableAfterEmptyWritable_ChainRejected) {
  driver_.Post({{kData, 0, true}, {GuestAddr(kData.value() + 8), 4, false}});
  SplitQueue q = MakeQueue();
  EXPECT_THAT(PopOne(q).status().message(), HasSubstr("device-readable after device-writable"));
}

TEST_F(SplitQueueTest, Pop_BufferOutsideGuestMemory_ChainRejected) {
  driver_.Post({{GuestAddr(kBase.value() + kMemSize - 2), 4, false}});
  SplitQueue q = MakeQueue();
  EXPECT_THAT(PopOne(q).status().message(), HasSubstr("not inside one region"));
}

TEST_F(SplitQueueTest, Pop_AddressPlusLengthOverflows_ChainRejected) {
  driver_.SetDesc(0, UINT64_MAX - 7, 16, 0, 0);
  driver_.MakeAvailable(0);
  SplitQueue q = MakeQueue();
  EXPECT_THAT(PopOne(q).status().message(), HasSubstr("not inside one region"));
}

TEST_F(SplitQueueTest, Pop_TotalLengthOverLimit_ChainRejected) {
  // Two maximal lengths: their u32 sum would wrap; ours must not.
  driver_.SetDesc(0, kData.value(), 0xffffffff, FakeDriver::kNext, 1);
  driver_.SetDesc(1, kData.value(), 0xffffffff, 0, 0);
  driver_.MakeAvailable(0);
  SplitQueue q = MakeQueue();
  EXPECT_THAT(PopOne(q).status().message(), HasSubstr("more than"));
}

TEST_F(SplitQueueTest, Pop_JustOverByteLimit_ChainRejected) {
  driver_.SetDesc(0, kBase.value(), kMaxChainBytes, FakeDriver::kNext, 1);
  driver_.SetDesc(1, kBase.value(), 1, FakeDriver::kWrite, 0);
  driver_.MakeAvailable(0);
  SplitQueue q = MakeQueue();
  EXPECT_THAT(PopOne(q).status().message(), HasSubstr("more than"));
}

TEST_F(SplitQueueTest, Pop_ZeroLengthDescriptor_AcceptedWithoutTouchingMemory) {
  driver_.SetDesc(0, UINT64_MAX, 0, FakeDriver::kNext, 1);
  driver_.SetDesc(1, kData.value(), 4, FakeDriver::kWrite, 0);
  driver_.MakeAvailable(0);
  SplitQueue q = MakeQueue();
  absl::StatusOr<DescriptorChain> chain = PopOne(q);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_TRUE(chain->readable().empty());
  EXPECT_EQ(chain->writable_size(), 4u);
}

// --- the rings ------------------------------------------------------------

TEST_F(SplitQueueTest, Pop_NothingPosted_Nullopt) {
  SplitQueue q = MakeQueue();
  absl::StatusOr<std::optional<SplitQueue::Popped>> p = q.Pop(mem_.map());
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->has_value());
  EXPECT_FALSE(q.HasAvailable());
}

TEST_F(SplitQueueTest, PushUsed_WritesElementAndIndex) {
  const uint16_t a = driver_.Post({{kData, 4, true}});
  const uint16_t b = driver_.Post({{GuestAddr(kData.value() + 16), 4, true}});
  SplitQueue q = MakeQueue();
  ASSERT_TRUE(PopOne(q).ok());
  ASSERT_TRUE(PopOne(q).ok());
  q.PushUsed(b, 3);
  q.PushUsed(a, 4);
  EXPECT_EQ(driver_.used_idx(), 2);
  EXPECT_EQ(driver_.used(0).id, b);
  EXPECT_EQ(driver_.used(0).len, 3u);
  EXPECT_EQ(driver_.used(1).id, a);
  EXPECT_EQ(driver_.used(1).len, 4u);
}

TEST_F(SplitQueueTest, ShouldNotify_FollowsNoInterruptFlag) {
  SplitQueue q = MakeQueue();
  EXPECT_TRUE(q.ShouldNotify());
  driver_.SetNoInterrupt(true);
  EXPECT_FALSE(q.ShouldNotify());
}

TEST(SplitQueueWrapTest, IndexesWrapAt65536) {
  Memory mem;
  FakeDriver driver(mem.host(), kBase, kMemSize, kQueueSize, kDesc, kAvail, kUsed, 65534);
  absl::StatusOr<SplitQueue> q = SplitQueue::Create(kQueueSize,
                                                    {{mem.At(kDesc), 16 * kQueueSize},
                                                     {mem.At(kAvail), 6 + 2 * kQueueSize},
                                                     {mem.At(kUsed), 6 + 8 * kQueueSize}},
                                                    65534);
  ASSERT_TRUE(q.ok());
  for (int i = 0; i < 5; ++i) driver.Post({{GuestAddr(kData.value() + 16 * i), 4, true}});
  EXPECT_EQ(driver.avail_idx(), 3);  // 65534 + 5, wrapped
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<std::optional<SplitQueue::Popped>> p = q->Pop(mem.map());
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_TRUE(p->has_value()) << "chain " << i;
    ASSERT_TRUE((*p)->chain.ok());
    q->PushUsed((*p)->head, 1);
  }
  EXPECT_EQ(q->next_avail(), 3);
  EXPECT_EQ(driver.used_idx(), 3);
  EXPECT_EQ(driver.used(65535).id, 1u);  // the second chain, in slot 65535 % 8
}

TEST_F(SplitQueueTest, Pop_AvailIndexJumpsPastQueueSize_RingCorrupt) {
  driver_.SetAvailIdx(kQueueSize + 1);
  SplitQueue q = MakeQueue();
  absl::StatusOr<std::optional<SplitQueue::Popped>> p = q.Pop(mem_.map());
  ASSERT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("more than the queue size"));
}

TEST_F(SplitQueueTest, Pop_AvailIndexMovedBackwards_RingCorrupt) {
  SplitQueue q = MakeQueue(5);
  driver_.SetAvailIdx(4);  // 65535 entries "pending"
  EXPECT_FALSE(q.Pop(mem_.map()).ok());
}

TEST_F(SplitQueueTest, Pop_HeadIndexBeyondQueue_RingCorrupt) {
  driver_.MakeAvailable(kQueueSize);
  SplitQueue q = MakeQueue();
  absl::StatusOr<std::optional<SplitQueue::Popped>> p = q.Pop(mem_.map());
  ASSERT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("names descriptor 8"));
}

TEST_F(SplitQueueTest, Create_BadSizeShortOrMisalignedParts_InvalidArgument) {
  EXPECT_FALSE(SplitQueue::Create(6, Parts(), 0).ok()) << "not a power of two";
  EXPECT_FALSE(SplitQueue::Create(0, Parts(), 0).ok());
  SplitQueueMemory short_used = Parts();
  short_used.used = short_used.used.first(6 + 8 * kQueueSize - 1);
  EXPECT_THAT(SplitQueue::Create(kQueueSize, short_used, 0).status().message(),
              HasSubstr("used ring"));
  SplitQueueMemory misaligned = Parts();
  misaligned.desc = {mem_.At(GuestAddr(kDesc.value() + 8)), 16 * kQueueSize};
  EXPECT_THAT(SplitQueue::Create(kQueueSize, misaligned, 0).status().message(),
              HasSubstr("aligned"));
}

}  // namespace
}  // namespace rmem::virtio_rmem

// The virtio-mmio transport driven the way Linux's virtio_mmio driver drives
// it, against a recording backend (a test double for the device side).
#include "vmm/virtio/virtio_mmio.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "gtest/gtest.h"

namespace rmem::vmm {
namespace {

constexpr uint64_t kVersion1 = uint64_t{1} << 32;

class RecordingBackend : public VirtioBackend {
 public:
  uint32_t device_id() const override { return 2; }
  uint64_t device_features() const override { return kVersion1 | 0x5; }
  int num_queues() const override { return 2; }
  uint16_t max_queue_size() const override { return 256; }
  std::vector<ShmRegionInfo> shm_regions() const override { return {}; }
  absl::Status ReadConfig(uint32_t offset, std::span<uint8_t> data) override {
    if (offset + data.size() > sizeof(config)) return absl::OutOfRangeError("past config");
    std::memcpy(data.data(), config + offset, data.size());
    return absl::OkStatus();
  }
  absl::Status WriteConfig(uint32_t, std::span<const uint8_t>) override {
    return absl::PermissionDeniedError("read-only config");
  }
  absl::Status Start(uint64_t features, std::span<const VirtqueueSetup> queues) override {
    started_features = features;
    started.assign(queues.begin(), queues.end());
    return start_result;
  }
  absl::Status Stop() override {
    ++stops;
    return absl::OkStatus();
  }
  int failure_fd() const override { return failure; }
  ~RecordingBackend() override { close(failure); }

  uint8_t config[16] = {0x00, 0x40, 0, 0, 0, 0, 0, 0, 7};
  absl::Status start_result = absl::OkStatus();
  uint64_t started_features = 0;
  std::vector<VirtqueueSetup> started;
  int stops = 0;
  int failure = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
};

class LevelLine : public IrqLine {
 public:
  void SetLevel(bool high) override { level = high; }
  std::atomic<bool> level{false};
};

class VirtioMmioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = VirtioMmioTransport::Create(
        "virtio-test", GuestAddr(0x0a000000), &backend_, &irq_,
        {{.id = 0, .base = GuestAddr(0x100000000), .size = 0x4000000}},
        [this](GuestAddr addr, uint64_t datamatch, int fd) {
          kicks_.push_back({addr.value(), datamatch, fd});
          return absl::OkStatus();
        });
    ASSERT_TRUE(t.ok()) << t.status();
    t_ = std::move(*t);
  }
  uint32_t R(uint64_t off) {
    uint32_t v = 0;
    t_->MmioRead(off, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  void W(uint64_t off, uint32_t v) {
    t_->MmioWrite(off, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), 4));
  }
  // Linux's order: reset, ACK, DRIVER, features, FEATURES_OK, queues, DRIVER_OK.
  void Negotiate(uint64_t features) {
    W(0x070, 0);
    W(0x070, 1);
    W(0x070, 3);
    W(0x024, 0);
    W(0x020, static_cast<uint32_t>(features));
    W(0x024, 1);
    W(0x020, static_cast<uint32_t>(features >> 32));
    W(0x070, 3 | 8);
  }
  void SetupQueue(uint32_t index, uint32_t num, uint64_t desc) {
    W(0x030, index);
    W(0x038, num);
    W(0x080, static_cast<uint32_t>(desc));
    W(0x084, static_cast<uint32_t>(desc >> 32));
    W(0x090, static_cast<uint32_t>(desc + 0x1000));
    W(0x0a0, static_cast<uint32_t>(desc + 0x2000));
    W(0x044, 1);
  }

  struct Kick {
    uint64_t addr, datamatch;
    int fd;
  };
  RecordingBackend backend_;
  LevelLine irq_;
  std::vector<Kick> kicks_;
  std::unique_ptr<VirtioMmioTransport> t_;
};

TEST_F(VirtioMmioTest, IdentifiesAsModernVirtioMmio) {
  EXPECT_EQ(R(0x000), 0x74726976u);
  EXPECT_EQ(R(0x004), 2u);
  EXPECT_EQ(R(0x008), 2u);
  W(0x014, 0);
  EXPECT_EQ(R(0x010), 0x5u);
  W(0x014, 1);
  EXPECT_EQ(R(0x010), 1u);  // VIRTIO_F_VERSION_1
  W(0x014, 2);
  EXPECT_EQ(R(0x010), 0u);
  EXPECT_EQ(t_->guest_errors(), 0u);
}

TEST_F(VirtioMmioTest, RegistersOneKickPerQueueOnQueueNotify) {
  ASSERT_EQ(kicks_.size(), 2u);
  EXPECT_EQ(kicks_[0].addr, 0x0a000050u);
  EXPECT_EQ(kicks_[0].datamatch, 0u);
  EXPECT_EQ(kicks_[1].datamatch, 1u);
  EXPECT_NE(kicks_[0].fd, kicks_[1].fd);
}

TEST_F(VirtioMmioTest, SharedMemoryRegionRegisters) {
  W(0x0ac, 0);
  EXPECT_EQ(R(0x0b0), 0x4000000u);
  EXPECT_EQ(R(0x0b4), 0u);
  EXPECT_EQ(R(0x0b8), 0u);
  EXPECT_EQ(R(0x0bc), 1u);
  W(0x0ac, 1);  // no such region: length -1
  EXPECT_EQ(R(0x0b0), 0xffffffffu);
  EXPECT_EQ(R(0x0b4), 0xffffffffu);
}

TEST_F(VirtioMmioTest, DriverOkStartsTheBackendWithReadyQueues) {
  Negotiate(kVersion1 | 0x1);
  EXPECT_EQ(R(0x070), 11u);  // FEATURES_OK kept
  W(0x030, 0);
  EXPECT_EQ(R(0x034), 256u);
  W(0x030, 2);
  EXPECT_EQ(R(0x034), 0u);  // no queue 2
  SetupQueue(1, 128, 0x40010000);
  W(0x070, 11 | 4);
  EXPECT_EQ(R(0x070), 15u);
  EXPECT_EQ(backend_.started_features, kVersion1 | 0x1);
  ASSERT_EQ(backend_.started.size(), 1u);
  const VirtqueueSetup& q = backend_.started[0];
  EXPECT_EQ(q.index, 1);
  EXPECT_EQ(q.size, 128);
  EXPECT_EQ(q.desc, GuestAddr(0x40010000));
  EXPECT_EQ(q.driver, GuestAddr(0x40011000));
  EXPECT_EQ(q.device, GuestAddr(0x40012000));
  EXPECT_EQ(q.kick_fd, kicks_[1].fd);
  EXPECT_EQ(t_->guest_errors(), 0u);
}

TEST_F(VirtioMmioTest, FeaturesNotOfferedOrWithoutVersion1AreRefused) {
  Negotiate(kVersion1 | 0x2);  // bit 1 was not offered
  EXPECT_EQ(R(0x070) & 8, 0u);
  Negotiate(0x1);  // legacy driver
  EXPECT_EQ(R(0x070) & 8, 0u);
  W(0x070, 3 | 4);  // DRIVER_OK without FEATURES_OK
  EXPECT_TRUE(backend_.started.empty());
  EXPECT_EQ(backend_.started_features, 0u);
  EXPECT_GE(t_->guest_errors(), 3u);
}

TEST_F(VirtioMmioTest, BadQueueSizesAndLateQueueWritesAreIgnored) {
  Negotiate(kVersion1);
  W(0x030, 0);
  W(0x038, 100);  // not a power of two
  W(0x044, 1);
  EXPECT_EQ(R(0x044), 0u);
  W(0x038, 512);  // above QueueNumMax
  W(0x044, 1);
  EXPECT_EQ(R(0x044), 0u);
  SetupQueue(0, 64, 0x40020000);
  EXPECT_EQ(R(0x044), 1u);
  W(0x080, 0xdead0000);  // while ready
  W(0x070, 15);
  ASSERT_EQ(backend_.started.size(), 1u);
  EXPECT_EQ(backend_.started[0].desc, GuestAddr(0x40020000));
  EXPECT_EQ(t_->guest_errors(), 3u);
}

TEST_F(VirtioMmioTest, NarrowRegisterAccessesAreIgnored) {
  uint8_t one = 0xff;
  t_->MmioRead(0x000, std::span<uint8_t>(&one, 1));
  EXPECT_EQ(one, 0);
  t_->MmioWrite(0x070, std::span<const uint8_t>(&one, 1));
  EXPECT_EQ(R(0x070), 0u);
  EXPECT_EQ(t_->guest_errors(), 2u);
}

TEST_F(VirtioMmioTest, ConfigSpaceGoesToTheBackendAtAnyWidth) {
  uint8_t b = 0;
  t_->MmioRead(0x108, std::span<uint8_t>(&b, 1));
  EXPECT_EQ(b, 7);
  EXPECT_EQ(R(0x100), 0x4000u);
  uint8_t past[4] = {1, 1, 1, 1};
  t_->MmioRead(0x10e, past);  // straddles the end: zeros and a guest error
  EXPECT_EQ(past[0], 0);
  t_->MmioWrite(0x100, past);
  EXPECT_EQ(t_->guest_errors(), 2u);
}

TEST_F(VirtioMmioTest, BackendCallRaisesTheLineUntilAcknowledged) {
  Negotiate(kVersion1);
  SetupQueue(0, 64, 0x40020000);
  W(0x070, 15);
  ASSERT_EQ(backend_.started.size(), 1u);
  const uint64_t one = 1;
  ASSERT_EQ(write(backend_.started[0].call_fd, &one, 8), 8);
  for (int i = 0; i < 2000 && !irq_.level; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(irq_.level);
  EXPECT_EQ(R(0x060), 1u);
  W(0x064, 1);
  EXPECT_FALSE(irq_.level);
  EXPECT_EQ(R(0x060), 0u);
}

TEST_F(VirtioMmioTest, FailedStartSetsNeedsResetAndResetStops) {
  backend_.start_result = absl::UnavailableError("backend gone");
  Negotiate(kVersion1);
  SetupQueue(0, 64, 0x40020000);
  W(0x070, 15);
  EXPECT_EQ(R(0x070) & 64, 64u);
  EXPECT_EQ(R(0x060), 2u);  // configuration change interrupt
  EXPECT_TRUE(irq_.level);
  W(0x070, 0);
  EXPECT_EQ(R(0x070), 0u);
  EXPECT_FALSE(irq_.level);
  EXPECT_EQ(backend_.stops, 0);  // never started: nothing to stop

  backend_.start_result = absl::OkStatus();
  Negotiate(kVersion1);
  SetupQueue(0, 64, 0x40020000);
  W(0x070, 15);
  W(0x070, 0);
  EXPECT_EQ(backend_.stops, 1);
  W(0x030, 0);
  EXPECT_EQ(R(0x044), 0u);  // reset clears queue state
}

TEST_F(VirtioMmioTest, NotifyReachingTheVmmKicksTheSameEventfd) {
  W(0x050, 1);
  uint64_t n = 0;
  ASSERT_EQ(read(kicks_[1].fd, &n, 8), 8);
  EXPECT_EQ(n, 1u);
  W(0x050, 9);
  EXPECT_EQ(t_->guest_errors(), 1u);
}

TEST_F(VirtioMmioTest, BackendFailureSetsNeedsResetAndInterrupts) {
  Negotiate(kVersion1);
  SetupQueue(0, 64, 0x40020000);
  W(0x070, 15);
  const uint64_t one = 1;
  ASSERT_EQ(write(backend_.failure, &one, 8), 8);
  for (int i = 0; i < 2000 && !irq_.level; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(irq_.level);
  EXPECT_EQ(R(0x070) & 64, 64u);  // DEVICE_NEEDS_RESET
  EXPECT_EQ(R(0x060), 2u);        // configuration change
  W(0x070, 0);                    // the driver resets
  EXPECT_EQ(R(0x070), 0u);
  EXPECT_FALSE(irq_.level);
}

}  // namespace
}  // namespace rmem::vmm

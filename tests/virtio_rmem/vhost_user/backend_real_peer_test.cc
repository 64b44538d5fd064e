// The back-end against a real peer: rmem-vmm's own VhostUserFrontend
// connects over a real Unix socket to a VhostUserServer running its event
// loop in a thread; guest memory is a memfd (vmm::GuestMemory) in which a
// fake driver (tests/virtio_rmem/fake_driver.h) writes descriptors, kicks
// and reads the used ring. Covers negotiation, config space, several chains,
// the event queue, SHMEM_MAP/UNMAP reaching the front-end's ShmemMapper,
// stop/reset, and the device hearing of a disconnect exactly once.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "absl/synchronization/mutex.h"
#include "base/eventfd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/virtio_rmem/fake_driver.h"
#include "tests/virtio_rmem/vhost_user/test_device.h"
#include "vmm/vhost_user/frontend.h"

namespace rmem::virtio_rmem {
namespace {

using rmem::testing::FakeDriver;
using testing::BackendThread;
using testing::EchoSumDevice;
using ::testing::HasSubstr;

constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }
constexpr GuestAddr kRamBase(0x40000000);
constexpr uint64_t kRamSize = 4 << 20;
constexpr uint16_t kQueueSize = 128;  // more than one iteration's share (64)
// Queue 0 (requests) and queue 1 (events), and buffers.
constexpr GuestAddr kDesc0(0x40000000), kAvail0(0x40001000), kUsed0(0x40002000);
constexpr GuestAddr kDesc1(0x40004000), kAvail1(0x40005000), kUsed1(0x40006000);
constexpr GuestAddr kIn(0x40100000), kOut(0x40200000);

// Where SHMEM_MAP/UNMAP land in the front-end: records them and reads the
// first word of each mapped piece through the fd it was given.
class RecordingMapper : public vmm::ShmemMapper {
 public:
  struct Call {
    bool map;
    uint8_t shmid;
    uint64_t fd_offset, shm_offset, len;
    bool writable;
    uint64_t first_word;
  };
  absl::Status Map(uint8_t shmid, int fd, uint64_t fd_offset, uint64_t shm_offset, uint64_t len,
                   bool writable) override {
    uint64_t word = 0;
    if (pread(fd, &word, 8, static_cast<off_t>(fd_offset)) != 8) word = 0;
    absl::MutexLock lock(&mu_);
    calls_.push_back({true, shmid, fd_offset, shm_offset, len, writable, word});
    return refuse_;
  }
  absl::Status Unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back({false, shmid, 0, shm_offset, len, false, 0});
    return absl::OkStatus();
  }
  std::vector<Call> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  void Refuse(absl::Status s) {
    absl::MutexLock lock(&mu_);
    refuse_ = s;
  }

 private:
  absl::Mutex mu_;
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  absl::Status refuse_ ABSL_GUARDED_BY(mu_);
};

class RealPeerTest : public ::testing::Test {
 protected:
  RealPeerTest()
      : ram_(*vmm::GuestMemory::Create(kRamBase, kRamSize)),
        requests_(ram_.host_base(), kRamBase, kRamSize, kQueueSize, kDesc0, kAvail0, kUsed0),
        events_(ram_.host_base(), kRamBase, kRamSize, kQueueSize, kDesc1, kAvail1, kUsed1),
        kick0_(MakeEventFd()),
        call0_(MakeEventFd()),
        kick1_(MakeEventFd()),
        call1_(MakeEventFd()) {
    EXPECT_TRUE(backend_.AddGuest("vm1", device_).ok());
    backend_.Start();
  }

  std::unique_ptr<vmm::VhostUserFrontend> Connect() {
    absl::StatusOr<std::unique_ptr<vmm::VhostUserFrontend>> fe = vmm::VhostUserFrontend::Connect(
        backend_.Path("vm1"), EchoSumDevice::kId, ram_, &mapper_, 1);
    EXPECT_TRUE(fe.ok()) << fe.status();
    if (!fe.ok()) return nullptr;
    (*fe)->StartServing();
    return *std::move(fe);
  }

  absl::Status Start(vmm::VhostUserFrontend& fe) {
    const vmm::VirtqueueSetup queues[2] = {
        {0, kQueueSize, kDesc0, kAvail0, kUsed0, kick0_.get(), call0_.get()},
        {1, kQueueSize, kDesc1, kAvail1, kUsed1, kick1_.get(), call1_.get()},
    };
    return fe.Start(Bit(32) | Bit(0), queues);
  }

  // Kicks `kick` and waits (hang guard only) until `driver`'s used index
  // reaches `want`, draining `call` as notifications come.
  bool KickAndWait(const Fd& kick, const Fd& call, const FakeDriver& driver, uint16_t want) {
    SignalEventFd(kick.get());
    return WaitForUsed(driver, call.get(), want, testing::kGuard) && driver.used_idx() == want;
  }

  uint64_t Word(GuestAddr a) const {
    uint64_t v;
    std::memcpy(&v, ram_.host_base() + (a.value() - kRamBase.value()), 8);
    return v;
  }
  void Put(GuestAddr a, std::string_view bytes) {
    std::memcpy(ram_.host_base() + (a.value() - kRamBase.value()), bytes.data(), bytes.size());
  }

  EchoSumDevice device_;
  BackendThread backend_;
  vmm::GuestMemory ram_;
  RecordingMapper mapper_;
  FakeDriver requests_, events_;
  Fd kick0_, call0_, kick1_, call1_;
};

TEST_F(RealPeerTest, Connect_NegotiatesFeaturesProtocolQueuesAndShmem) {
  std::unique_ptr<vmm::VhostUserFrontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  EXPECT_EQ(fe->device_features(), Bit(32) | Bit(0));
  EXPECT_EQ(fe->backend_features() & Bit(30), Bit(30));
  EXPECT_EQ(fe->protocol_features(), vmm::VhostUserFrontend::kSupportedProtocolFeatures);
  EXPECT_EQ(fe->num_queues(), 2);
  ASSERT_EQ(fe->shm_regions().size(), 1u);
  EXPECT_EQ(fe->shm_regions()[0].id, 0);
  EXPECT_EQ(fe->shm_regions()[0].size, EchoSumDevice::kRegionSize);
  EXPECT_EQ(device_.connects(), 1);
  EXPECT_EQ(backend_.Status("vm1").connections, 1u);
}

TEST_F(RealPeerTest, Config_ReadsDeviceBytesAndWritesOnlyWritableFields) {
  std::unique_ptr<vmm::VhostUserFrontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  uint8_t got[4];
  ASSERT_TRUE(fe->ReadConfig(2, got).ok());
  EXPECT_THAT(got, ::testing::ElementsAre(0xc2, 0xc3, 0xc4, 0xc5));
  uint8_t beyond[8];
  ASSERT_TRUE(fe->ReadConfig(20, beyond).ok());
  EXPECT_THAT(beyond, ::testing::Each(0)) << "past the device's 16 bytes reads as zeros";
  const uint8_t w[2] = {0x11, 0x22};
  ASSERT_TRUE(fe->WriteConfig(9, w).ok());
  ASSERT_TRUE(fe->ReadConfig(8, got).ok());
  EXPECT_THAT(got, ::testing::ElementsAre(0xc8, 0x11, 0x22, 0xcb));
  const absl::Status refused = fe->WriteConfig(0, w);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("refused SET_CONFIG (ack status 7)"))
      << "7 = PERMISSION_DENIED, the device's answer";
  EXPECT_EQ(backend_.Status("vm1").stats.refused, 1u);
}

TEST_F(RealPeerTest, SeveralChains_ServedInOrderWithRepliesInGuestMemory) {
  std::unique_ptr<vmm::VhostUserFrontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  ASSERT_TRUE(Start(*fe).ok());
  Put(kIn, "S\x01\x02\x03");
  Put(GuestAddr(kIn.value() + 0x100), "Ehello");
  Put(GuestAddr(kIn.value() + 0x200), "Esplit ");
  Put(GuestAddr(kIn.value() + 0x300), "across");
  const uint16_t sum = requests_.Post({{kIn, 4, false}, {kOut, 8, true}});
  const uint16_t echo = requests_.Post({{GuestAddr(kIn.value() + 0x100), 6, false},
                                        {GuestAddr(kOut.value() + 0x100), 2, true},
                                        {GuestAddr(kOut.value() + 0x180), 16, true}});
  const uint16_t split = requests_.Post({{GuestAddr(kIn.value() + 0x200), 7, false},
                                         {GuestAddr(kIn.value() + 0x300), 6, false},
                                         {GuestAddr(kOut.value() + 0x200), 64, true}});
  ASSERT_TRUE(KickAndWait(kick0_, call0_, requests_, 3));
  EXPECT_EQ(requests_.used(0).id, sum);
  EXPECT_EQ(requests_.used(0).len, 8u);
  EXPECT_EQ(Word(kOut), 6u);
  EXPECT_EQ(requests_.used(1).id, echo);
  EXPECT_EQ(requests_.used(1).len, 5u);
  EXPECT_EQ(std::memcmp(ram_.host_base() + 0x200100, "he", 2), 0);
  EXPECT_EQ(std::memcmp(ram_.host_base() + 0x200180, "llo", 3), 0);
  EXPECT_EQ(requests_.used(2).id, split);
  EXPECT_EQ(requests_.used(2).len, 12u);
  EXPECT_EQ(std::memcmp(ram_.host_base() + 0x200200, "split across", 12), 0);
  EXPECT_EQ(device_.chains(), 3);
  const GuestStatus status = backend_.Status("vm1");
  EXPECT_EQ(status.stats.rings[0].chains, 3u);
  EXPECT_EQ(status.stats.rings[0].malformed_chains, 0u);
  EXPECT_GE(status.stats.rings[0].notifications, 1u);
}

TEST_F(RealPeerTest, MoreChainsThanOneIterationsShare_RestServedWithoutAnotherKick) {
  std::unique_ptr<vmm::VhostUserFrontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  ASSERT_TRUE(Start(*fe).ok());
  Put(kIn, "S\x05");
  // One kick for 120 chains: 64 per iteration, the rest in later ones.
  for (int i = 0; i < 120; ++i) {
    requests_.Post({{kIn, 2, false}, {GuestAddr(kOut.value() + 8 * i), 8, true}});
  }
  ASSERT_TRUE(KickAndWait(kick0_, call0_, requests_, 120));
  EXPECT_EQ(device_.chains(), 120);
  EXPECT_EQ(Word(GuestAddr(kOut.value() + 8 * 119)), 5u);
}

TEST_F(RealPeerTest, EventQueue_DevicePushesIntoPostedBuffersOnly) {
  std::unique_ptr<vmm::VhostUserFrontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  ASSERT_TRUE(Start(*fe).ok());
  const std::string event = "event!";
  auto push = [&] {
    return backend_.RunInLoop([&] {
      return device_.host()->PushToQueue(1, [&](const DescriptorChain& c) -> uint32_t {
        return c.Write(0, {reinterpret_cast<const uint8_t*>(event.data()), event.size()})
                   ? static_cast<uint32_t>(event.size())
                   : 0;
      });
    });
  };
  EXPECT_EQ(push().code(), absl::StatusCode::kResourceExhausted) << "no buffer posted yet";
  const uint16_t head = events_.Post({{kOut, 64, true}});
  SignalEventFd(kick1_.get());
  const absl::Time deadline = absl::Now() + testing::kGuard;
  while (device_.buffers_available() == 0 && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(5));
  EXPECT_GE(device_.buffers_available(), 1);
  EXPECT_EQ(events_.used_idx(), 0) << "a kick alone must not consume event buffers";
  ASSERT_TRUE(push().ok());
  EXPECT_EQ(events_.used_idx(), 1);
  EXPECT_EQ(events_.used(0).id, head);
  EXPECT_EQ(events_.used(0).len, event.size());
  EXPECT_EQ(std::memcmp(ram_.host_base() + 0x200000, "event!", 6), 0);
  uint64_t calls;
  EXPECT_EQ(read(call1_.get(), &calls, 8), 8) << "the driver was notified";
  EXPECT_EQ(push().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(backend_
                .RunInLoop([&] {
                  return device_.host()->PushToQueue(0, [](const DescriptorChain&) { return 0u; });
                })
                .code(),
            absl::StatusCode::kFailedPrecondition)
      << "queue 0 is a request queue";
}

TEST_F(RealPeerTest, ShmemMap_ReachesTheFrontendsMapperWithFdAndRights) {
  std::unique_ptr<vmm::VhostUserFrontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  ASSERT_TRUE(Start(*fe).ok());
  // 'M' region offset 0x10000, fd offset 0x3000, length 0x2000, writable.
  std::string req = "M";
  for (uint64_t v : {uint64_t{0x10000}, uint64_t{0x3000}, uint64_t{0x2000}}) {
    req.append(reinterpret_cast<const char*>(&v), 8);
  }
  req.push_back(1);
  Put(kIn, req);
  Put(GuestAddr(kIn.value() + 0x100),
      std::string("U") + std::string("\0\0\1\0\0\0\0\0", 8) + std::string("\0\x20\0\0\0\0\0\0", 8));
  requests_.Post({{kIn, static_cast<uint32_t>(req.size()), false}, {kOut, 4, true}});
  requests_.Post(
      {{GuestAddr(kIn.value() + 0x100), 17, false}, {GuestAddr(kOut.value() + 8), 4, true}});
  ASSERT_TRUE(KickAndWait(kick0_, call0_, requests_, 2));
  EXPECT_EQ(Word(kOut) & 0xffffffff, 0u) << "map status: OK";
  EXPECT_EQ(Word(GuestAddr(kOut.value() + 8)) & 0xffffffff, 0u) << "unmap status: OK";
  const std::vector<RecordingMapper::Call> calls = mapper_.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_TRUE(calls[0].map);
  EXPECT_EQ(calls[0].shmid, 0);
  EXPECT_EQ(calls[0].shm_offset, 0x10000u);
  EXPECT_EQ(calls[0].fd_offset, 0x3000u);
  EXPECT_EQ(calls[0].len, 0x2000u);
  EXPECT_TRUE(calls[0].writable);
  EXPECT_EQ(calls[0].first_word, 0x5a5a000000003000u) << "the device's memfd travelled";
  EXPECT_FALSE(calls[1].map);
  EXPECT_EQ(calls[1].shm_offset, 0x10000u);
  EXPECT_EQ(calls[1].len, 0x2000u);
}

TEST_F(RealPeerTest, ShmemMap_FrontendRefuses_DeviceGetsItsCode) {
  std::unique_ptr<vmm::VhostUserFrontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  mapper_.Refuse(absl::ResourceExhaustedError("no memslots left"));
  const absl::Status s = backend_.RunInLoop([&] {
    return device_.host()->MapShmem({.region_id = 0,
                                     .region_offset = 0,
                                     .fd = kick0_.get(),
                                     .fd_offset = 0,
                                     .length = 4096,
                                     .writable = false});
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("refused SHMEM_MAP"));
  EXPECT_TRUE(backend_.Status("vm1").connected) << "a refusal is not a broken connection";
}

TEST_F(RealPeerTest, ShmemMap_OutsideTheRegion_RefusedBeforeAsking) {
  std::unique_ptr<vmm::VhostUserFrontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  auto map = [&](uint8_t id, uint64_t off, uint64_t len) {
    return backend_.RunInLoop([&] {
      return device_.host()->MapShmem(
          {.region_id = id, .region_offset = off, .fd = 0, .fd_offset = 0, .length = len});
    });
  };
  EXPECT_EQ(map(1, 0, 4096).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(map(0, EchoSumDevice::kRegionSize - 4096, 8192).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(map(0, UINT64_MAX - 4095, 8192).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(map(0, 0, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(mapper_.calls().empty());
}

// Makes the device map one read-only 4 KiB piece of `piece` at region
// offset 0x8000 whenever its queue 1 starts (the last Start starts: no
// later request of Start's can stand in for the reply to its enable); the
// statuses in `maps`.
void MapOnRingStart(BackendThread& backend, EchoSumDevice& device, const Fd& piece,
                    std::vector<absl::Status>& maps) {
  backend.RunInLoop([&] {
    device.SetOnRingStarted([&](uint16_t queue) {
      if (queue != 1) return;
      maps.push_back(device.host()->MapShmem({.region_id = 0,
                                              .region_offset = 0x8000,
                                              .fd = piece.get(),
                                              .fd_offset = 0x1000,
                                              .length = 0x1000,
                                              .writable = false}));
    });
  });
}

TEST_F(RealPeerTest, RingStarted_DeviceMapsThere_MapDoneWhenStartReturns) {
  // What a device does when its ring starts, the VMM sees done when it
  // hears the ring is enabled (rmemd replays restored mappings there).
  Fd piece(memfd_create("ring-started-piece", MFD_CLOEXEC));
  ASSERT_EQ(ftruncate(piece.get(), 0x4000), 0);
  const uint64_t tag = 0x7a67;
  ASSERT_EQ(pwrite(piece.get(), &tag, 8, 0x1000), 8);
  std::vector<absl::Status> maps;  // the loop thread's
  MapOnRingStart(backend_, device_, piece, maps);
  std::unique_ptr<vmm::VhostUserFrontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  // The frontend serves back-end requests (its service thread is running).
  ASSERT_TRUE(backend_.RunInLoop([&] { return device_.host()->UnmapShmem(0, 0, 4096); }).ok());
  ASSERT_EQ(mapper_.calls().size(), 1u);

  ASSERT_TRUE(Start(*fe).ok());
  std::vector<RecordingMapper::Call> calls = mapper_.calls();  // no waiting
  ASSERT_EQ(calls.size(), 2u) << "the device's map is done when Start returns";
  EXPECT_TRUE(calls[1].map);
  EXPECT_EQ(calls[1].shm_offset, 0x8000u);
  EXPECT_EQ(calls[1].first_word, tag);
  EXPECT_FALSE(calls[1].writable);
  EXPECT_THAT(device_.ring_starts(), ::testing::ElementsAre(0, 1));

  // Stopped (GET_VRING_BASE, RESET_DEVICE) and started again: told again.
  ASSERT_TRUE(fe->Stop().ok());
  EXPECT_THAT(device_.ring_starts(), ::testing::ElementsAre(0, 1));
  ASSERT_TRUE(Start(*fe).ok());
  EXPECT_EQ(mapper_.calls().size(), 3u);
  EXPECT_THAT(device_.ring_starts(), ::testing::ElementsAre(0, 1, 0, 1));
  const std::vector<absl::Status> statuses = backend_.RunInLoop([&] {
    device_.SetOnRingStarted(nullptr);
    return maps;
  });
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_TRUE(statuses[0].ok()) << statuses[0];
  EXPECT_TRUE(statuses[1].ok()) << statuses[1];
}

TEST_F(RealPeerTest, RingStarted_DeviceMapsThere_FirstStartRightAfterStartServing) {
  // As above, with Start called at once after StartServing (as a VMM may):
  // the map must not wait for Start to end, which waits for the map.
  Fd piece(memfd_create("ring-started-piece", MFD_CLOEXEC));
  ASSERT_EQ(ftruncate(piece.get(), 0x4000), 0);
  std::vector<absl::Status> maps;  // the loop thread's
  MapOnRingStart(backend_, device_, piece, maps);
  std::unique_ptr<vmm::VhostUserFrontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  const absl::Status started = Start(*fe);
  EXPECT_TRUE(started.ok()) << started;
  EXPECT_EQ(mapper_.calls().size(), 1u);
  const std::vector<absl::Status> statuses = backend_.RunInLoop([&] {
    device_.SetOnRingStarted(nullptr);
    return maps;
  });
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_TRUE(statuses[0].ok()) << statuses[0];
}

TEST_F(RealPeerTest, StopAndReset_DeviceHearsResetAndRestartedRingsServe) {
  std::unique_ptr<vmm::VhostUserFrontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  ASSERT_TRUE(Start(*fe).ok());
  Put(kIn, "S\x07");
  requests_.Post({{kIn, 2, false}, {kOut, 8, true}});
  ASSERT_TRUE(KickAndWait(kick0_, call0_, requests_, 1));
  ASSERT_TRUE(fe->Stop().ok());  // GET_VRING_BASE per ring, RESET_DEVICE
  EXPECT_EQ(device_.resets(), 1);
  EXPECT_EQ(backend_.RunInLoop([&] { return device_.host()->acked_features(); }), 0u);
  // A reset driver lays its rings out afresh.
  requests_ = FakeDriver(ram_.host_base(), kRamBase, kRamSize, kQueueSize, kDesc0, kAvail0, kUsed0);
  ASSERT_TRUE(Start(*fe).ok());
  requests_.Post({{kIn, 2, false}, {kOut, 8, true}});
  ASSERT_TRUE(KickAndWait(kick0_, call0_, requests_, 1));
  EXPECT_EQ(device_.chains(), 2);
  EXPECT_EQ(backend_.RunInLoop([&] { return device_.host()->acked_features(); }),
            Bit(32) | Bit(30) | Bit(0));
}

TEST_F(RealPeerTest, Disconnect_DeviceToldExactlyOnceThenReconnectServed) {
  std::unique_ptr<vmm::VhostUserFrontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  ASSERT_TRUE(Start(*fe).ok());
  fe.reset();  // the VMM died
  ASSERT_TRUE(device_.WaitForDisconnects(1));
  GuestStatus status = backend_.Status("vm1");
  EXPECT_FALSE(status.connected);
  EXPECT_THAT(status.last_end, HasSubstr("disconnected"));
  EXPECT_EQ(device_.disconnects(), 1);
  EXPECT_EQ(backend_.RunInLoop([&] { return device_.host()->UnmapShmem(0, 0, 4096); }).code(),
            absl::StatusCode::kFailedPrecondition)
      << "no front-end: the device's calls fail cleanly";

  fe = Connect();  // the VMM restarted
  ASSERT_NE(fe, nullptr);
  EXPECT_EQ(device_.connects(), 2);
  ASSERT_TRUE(Start(*fe).ok());
  Put(kIn, "S\x01");
  requests_ = FakeDriver(ram_.host_base(), kRamBase, kRamSize, kQueueSize, kDesc0, kAvail0, kUsed0);
  requests_.Post({{kIn, 2, false}, {kOut, 8, true}});
  ASSERT_TRUE(KickAndWait(kick0_, call0_, requests_, 1));
  EXPECT_EQ(device_.disconnects(), 1);
  fe.reset();
  ASSERT_TRUE(device_.WaitForDisconnects(2));
  EXPECT_EQ(backend_.Status("vm1").connections, 2u);
}

}  // namespace
}  // namespace rmem::virtio_rmem

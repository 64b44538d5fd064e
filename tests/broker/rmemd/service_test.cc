// rmemd's service end to end in one process, with every real piece but the
// guests: the documented example configuration over the embedded default
// platform, the broker on carve-out memory (the memfd STAND-IN), one
// vhost-user socket per guest, and per guest rmem-vmm's own VhostUserFrontend
// and ShmWindows (which mmap every SHMEM_MAP piece from the fd rmemd sends).
// A FakeDriver per queue plays the guest driver: requests are bytes built
// from the uapi header, in guest memory, on a split virtqueue.
//
// What it shows: a buffer written by decrypt is read by display through its
// own mapping, read-only; infotainment cannot retrieve it with the handle;
// a lent buffer leaves the owner's region and comes back on reclaim; a VMM
// that hangs up loses its buffers, its borrowers are told (REVOKED) and
// lose their mappings, the pages come back zeroed; malformed requests get
// a status and the service goes on serving everyone.
#include "broker/rmemd/service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/eventfd.h"
#include "broker/platform/default_platform.h"
#include "broker/backend/firewall/tzc400_registers.h"
#include "broker/rmemd/config.h"
#include "broker/rmemd/platform_firewalls.h"
#include "broker/rmemd/setup.h"
#include "firmware_handoff/handoff.h"
#include "tests/virtio_rmem/fake_driver.h"
#include "virtio_rmem/uapi/virtio_rmem.h"
#include "virtio_rmem/wire.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/memory/shm_window.h"
#include "vmm/vhost_user/frontend.h"

namespace rmem::rmemd {
namespace {

using rmem::testing::FakeDriver;
using ::testing::HasSubstr;
using virtio_rmem::AppendWire;
using virtio_rmem::ReadWire;

constexpr absl::Duration kGuard = absl::Seconds(20);  // hang guard only
constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }
constexpr uint64_t kDriverFeatures =
    Bit(32) | Bit(VIRTIO_RMEM_F_LEND_DONATE) | Bit(VIRTIO_RMEM_F_RECLAIM_REVOKE);

// Each guest's memory: rings, one request and one response buffer, and the
// event buffers.
constexpr GuestAddr kRamBase(0x40000000);
constexpr uint64_t kRamSize = 4 << 20;
constexpr uint16_t kQueueSize = 64;
constexpr GuestAddr kDesc0(0x40000000), kAvail0(0x40001000), kUsed0(0x40002000);
constexpr GuestAddr kDesc1(0x40004000), kAvail1(0x40005000), kUsed1(0x40006000);
constexpr GuestAddr kIn(0x40100000), kOut(0x40200000), kEvents(0x40300000);
constexpr int kEventBuffers = 16;
// Where the transport would place the buffers' region in guest space.
constexpr GuestAddr kRegionBase(0x8000000000);

constexpr uint32_t kHeapVideo = 0;  // the example's first heap: secure-video
constexpr uint32_t kHeapUi = 1;     // its second: secure-ui
constexpr VmId kDecrypt(1), kDisplay(2), kInfotainment(3);

template <typename T>
std::vector<uint8_t> Bytes(const T& value) {
  std::vector<uint8_t> out;
  AppendWire(out, value);
  return out;
}

uint32_t StatusOf(const std::vector<uint8_t>& response) {
  if (response.size() < sizeof(virtio_rmem_resp_hdr)) return ~0u;
  return ReadWire<virtio_rmem_resp_hdr>(response).status;
}

// The guest-side end of ShmWindows: instead of KVM memslots, a record of
// what the guest could reach, and with which rights.
class RecordingGuest : public vmm::GuestMapper {
 public:
  struct Piece {
    GuestAddr guest;
    uint8_t* host;
    uint64_t len;
    bool writable;
  };
  absl::StatusOr<uint32_t> Install(GuestAddr guest, uint8_t* host, uint64_t len,
                                   bool writable) override {
    absl::MutexLock lock(&mu_);
    pieces_[next_] = {guest, host, len, writable};
    return next_++;
  }
  absl::Status Remove(uint32_t token) override {
    absl::MutexLock lock(&mu_);
    pieces_.erase(token);
    return absl::OkStatus();
  }
  // The piece that starts at `offset` of the region, if the guest has one.
  std::optional<Piece> At(uint64_t offset) const {
    absl::MutexLock lock(&mu_);
    for (const auto& [token, p] : pieces_) {
      if (p.guest.value() == kRegionBase.value() + offset) return p;
    }
    return std::nullopt;
  }
  size_t count() const {
    absl::MutexLock lock(&mu_);
    return pieces_.size();
  }

 private:
  mutable absl::Mutex mu_;
  std::map<uint32_t, Piece> pieces_ ABSL_GUARDED_BY(mu_);
  uint32_t next_ = 1;
};

// One guest as its VMM and driver see the device.
class Guest {
 public:
  Guest(std::string name, std::string socket)
      : name_(std::move(name)),
        socket_(std::move(socket)),
        ram_(*vmm::GuestMemory::Create(kRamBase, kRamSize)),
        requests_(ram_.host_base(), kRamBase, kRamSize, kQueueSize, kDesc0, kAvail0, kUsed0),
        events_(ram_.host_base(), kRamBase, kRamSize, kQueueSize, kDesc1, kAvail1, kUsed1),
        kick0_(MakeEventFd()),
        call0_(MakeEventFd()),
        kick1_(MakeEventFd()),
        call1_(MakeEventFd()) {}
  ~Guest() { Hangup(); }

  // Connects, places the region, starts both queues and posts event buffers.
  void Connect() {
    windows_ = std::make_unique<vmm::ShmWindows>("virtio-rmem." + name_, &guest_);
    absl::StatusOr<std::unique_ptr<vmm::VhostUserFrontend>> fe = vmm::VhostUserFrontend::Connect(
        socket_, VIRTIO_ID_RMEM, ram_, windows_.get(), VIRTIO_RMEM_NUM_VQS);
    ASSERT_TRUE(fe.ok()) << name_ << ": " << fe.status();
    frontend_ = *std::move(fe);
    ASSERT_EQ(frontend_->shm_regions().size(), 1u);
    region_size_ = frontend_->shm_regions()[0].size;
    windows_->SetRegions({{VIRTIO_RMEM_SHM_BUFFERS, kRegionBase, region_size_}});
    frontend_->StartServing();
    const vmm::VirtqueueSetup queues[2] = {
        {0, kQueueSize, kDesc0, kAvail0, kUsed0, kick0_.get(), call0_.get()},
        {1, kQueueSize, kDesc1, kAvail1, kUsed1, kick1_.get(), call1_.get()},
    };
    ASSERT_TRUE(frontend_->Start(kDriverFeatures, queues).ok());
    for (int i = 0; i < kEventBuffers; ++i) PostEventBuffer(i);
    SignalEventFd(kick1_.get());
  }

  // The VMM goes away: the socket closes, its own mappings go with it.
  void Hangup() {
    frontend_.reset();
    windows_.reset();
  }

  // Sends one request and returns the response (as many bytes as the
  // device wrote), or an empty vector if the device did not answer.
  std::vector<uint8_t> Request(const std::vector<uint8_t>& request, uint32_t capacity = 256) {
    std::memcpy(At(kIn), request.data(), request.size());
    std::memset(At(kOut), 0xee, capacity);
    const uint16_t want = static_cast<uint16_t>(requests_.used_idx() + 1);
    requests_.Post({{kIn, static_cast<uint32_t>(request.size()), false}, {kOut, capacity, true}});
    SignalEventFd(kick0_.get());
    if (!WaitForUsed(requests_, call0_.get(), want, kGuard)) {
      ADD_FAILURE() << name_ << ": no response within " << kGuard;
      return {};
    }
    const FakeDriver::Used used = requests_.used(static_cast<uint16_t>(want - 1));
    return std::vector<uint8_t>(At(kOut), At(kOut) + std::min(used.len, capacity));
  }

  // The next event the device delivered, waiting for it (hang guard only).
  std::optional<virtio_rmem_event> NextEvent() {
    const uint16_t want = static_cast<uint16_t>(events_seen_ + 1);
    if (!WaitForUsed(events_, call1_.get(), want, kGuard)) return std::nullopt;
    const FakeDriver::Used used = events_.used(events_seen_);
    events_seen_ = want;
    EXPECT_EQ(used.len, sizeof(virtio_rmem_event));
    virtio_rmem_event e;
    std::memcpy(&e, At(EventBuffer(static_cast<int>(used.id))), sizeof(e));
    PostEventBuffer(static_cast<int>(used.id));  // give it back
    SignalEventFd(kick1_.get());
    return e;
  }
  // Whether an event is waiting (without waiting for one).
  bool EventPending() const { return events_.used_idx() != events_seen_; }

  const RecordingGuest& reach() const { return guest_; }
  uint64_t region_size() const { return region_size_; }

 private:
  uint8_t* At(GuestAddr a) { return ram_.host_base() + (a.value() - kRamBase.value()); }
  static GuestAddr EventBuffer(int i) { return GuestAddr(kEvents.value() + 64u * i); }
  void PostEventBuffer(int i) {
    // One descriptor per buffer: descriptor i is buffer i.
    events_.SetDesc(static_cast<uint16_t>(i), EventBuffer(i).value(), 64, FakeDriver::kWrite, 0);
    events_.MakeAvailable(static_cast<uint16_t>(i));
  }
  std::string name_, socket_;
  vmm::GuestMemory ram_;
  RecordingGuest guest_;
  std::unique_ptr<vmm::ShmWindows> windows_;
  std::unique_ptr<vmm::VhostUserFrontend> frontend_;
  FakeDriver requests_, events_;
  Fd kick0_, call0_, kick1_, call1_;
  uint16_t events_seen_ = 0;
  uint64_t region_size_ = 0;
};

std::string ReadFile(const char* path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ServiceTest : public ::testing::Test {
 protected:
  ServiceTest() {
    char dir[] = "/tmp/rmemd-service-XXXXXX";
    dir_ = mkdtemp(dir);
    // The documented example, with its sockets moved to a scratch directory.
    const char* example = std::getenv("RMEMD_EXAMPLE_CONFIG");
    EXPECT_NE(example, nullptr) << "RMEMD_EXAMPLE_CONFIG is set by meson";
    const std::string text =
        absl::StrReplaceAll(ReadFile(example ? example : "/nonexistent"), {{"/run/rmemd", dir_}});
    absl::StatusOr<RmemdConfig> config = ParseConfig(text, "rmemd.example.toml");
    EXPECT_TRUE(config.ok()) << config.status();
    firmware_handoff::PlatformResult platform =
        firmware_handoff::ReadPlatformFromFdt(platform::DefaultPlatformDtb());
    absl::StatusOr<BrokerSetup> setup =
        MakeBrokerSetup(std::get<firmware_handoff::Platform>(platform), *config);
    EXPECT_TRUE(setup.ok()) << setup.status();
    absl::StatusOr<std::unique_ptr<CarveoutMemory>> memory =
        MakeMemfdCarveoutMemory(setup->carveouts);
    EXPECT_TRUE(memory.ok()) << memory.status();
    absl::StatusOr<std::unique_ptr<PlatformFirewalls>> firewalls =
        PlatformFirewalls::Create(std::get<firmware_handoff::Platform>(platform), *setup);
    EXPECT_TRUE(firewalls.ok()) << firewalls.status();
    firewalls_ = firewalls->get();
    loop_ = *EventLoop::Create();
    absl::StatusOr<std::unique_ptr<Service>> service =
        Service::Start(*setup, *std::move(memory), *std::move(firewalls), {}, *loop_);
    EXPECT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
    thread_ = std::thread([this] { EXPECT_TRUE(loop_->Run().ok()); });
    decrypt_ = std::make_unique<Guest>("decrypt", dir_ + "/decrypt.sock");
    display_ = std::make_unique<Guest>("display", dir_ + "/display.sock");
    info_ = std::make_unique<Guest>("infotainment", dir_ + "/infotainment.sock");
  }
  ~ServiceTest() override {
    decrypt_.reset();
    display_.reset();
    info_.reset();
    StopService();
    std::system(("rm -rf " + dir_).c_str());
  }
  // What rmemd does on SIGTERM: the loop stops, the service goes.
  void StopService() {
    if (service_ == nullptr) return;
    loop_->Stop();
    thread_.join();
    service_.reset();
  }
  void SetUp() override {
    for (Guest* g : {decrypt_.get(), display_.get(), info_.get()}) {
      ASSERT_NO_FATAL_FAILURE(g->Connect());
    }
  }

  static virtio_rmem_resp_alloc Alloc(Guest& g, uint64_t size, uint32_t heap = kHeapVideo) {
    virtio_rmem_req_alloc r{};
    r.hdr.type = VIRTIO_RMEM_REQ_ALLOC;
    r.heap = heap;
    r.size = size;
    const std::vector<uint8_t> response = g.Request(Bytes(r));
    EXPECT_EQ(StatusOf(response), VIRTIO_RMEM_S_OK);
    EXPECT_EQ(response.size(), sizeof(virtio_rmem_resp_alloc));
    if (response.size() != sizeof(virtio_rmem_resp_alloc)) return {};
    return ReadWire<virtio_rmem_resp_alloc>(response);
  }
  // SHARE or LEND to one receiver; returns the response.
  static std::vector<uint8_t> Offer(Guest& g, uint32_t type, uint64_t buffer, VmId to,
                                    uint32_t rights) {
    virtio_rmem_req_share r{};
    r.hdr.type = type;
    r.buffer = buffer;
    r.num_receivers = 1;
    std::vector<uint8_t> out = Bytes(r);
    AppendWire(out, virtio_rmem_receiver{to.value(), rights});
    return g.Request(out);
  }
  static std::vector<uint8_t> ByHandle(Guest& g, uint32_t type, uint64_t handle) {
    virtio_rmem_req_handle r{};
    r.hdr.type = type;
    r.handle = handle;
    return g.Request(Bytes(r));
  }
  static std::vector<uint8_t> ByBuffer(Guest& g, uint32_t type, uint64_t buffer) {
    virtio_rmem_req_free r{};
    r.hdr.type = type;
    r.buffer = buffer;
    return g.Request(Bytes(r));
  }
  static std::vector<uint8_t> Reclaim(Guest& g, uint64_t buffer) {
    virtio_rmem_req_reclaim r{};
    r.hdr.type = VIRTIO_RMEM_REQ_RECLAIM;
    r.buffer = buffer;
    return g.Request(Bytes(r));
  }
  static uint64_t HeapFree(Guest& g, uint32_t heap = kHeapVideo) {
    virtio_rmem_req_get_heap r{};
    r.hdr.type = VIRTIO_RMEM_REQ_GET_HEAP;
    r.heap = heap;
    const std::vector<uint8_t> response = g.Request(Bytes(r));
    EXPECT_EQ(StatusOf(response), VIRTIO_RMEM_S_OK);
    if (response.size() != sizeof(virtio_rmem_resp_get_heap)) return 0;
    return ReadWire<virtio_rmem_resp_get_heap>(response).free_bytes;
  }
  // The next event of `g`, which must be of `type`.
  static virtio_rmem_event Expect(Guest& g, uint32_t type) {
    std::optional<virtio_rmem_event> e = g.NextEvent();
    EXPECT_TRUE(e.has_value()) << "no event within " << kGuard;
    if (!e) return {};
    EXPECT_EQ(e->type, type);
    return *e;
  }

  // What the platform's TZC-400 (its register-level model) decides for a
  // DMA access by the master with NSAID `id`; a refusal is recorded as the
  // hardware records it.
  bool Dma(const char* controller, uint32_t id, uint64_t address, bool write) {
    FirewallModel* model = firewalls_->model(controller);
    EXPECT_NE(model, nullptr);
    return model != nullptr && model->Access({.address = address, .write = write, .id = id});
  }
  // Read and write, at the buffer's first and last byte, through the
  // controller in front of it (secure-video: the TZC-400; secure-ui: the
  // block firewall).
  Access DmaAccess(uint32_t id, PageRange pages, const char* controller = kTzc) {
    const uint64_t first = pages.base().value(), last = pages.end().addr().value() - 1;
    Access a = Access::kNone;
    if (Dma(controller, id, first, false) && Dma(controller, id, last, false)) {
      a = a | Access::kRead;
    }
    if (Dma(controller, id, first, true) && Dma(controller, id, last, true)) {
      a = a | Access::kWrite;
    }
    return a;
  }
  PageRange PagesOf(uint64_t buffer) {
    const Buffer* b = service_->broker().ledger().FindBuffer(BufferId(buffer));
    EXPECT_NE(b, nullptr);
    return b != nullptr ? b->pages : PageRange();
  }
  static constexpr char kTzc[] = "/soc/firewall@2a4a0000";
  static constexpr char kBlock[] = "/soc/firewall@2a4b0000";
  static constexpr uint32_t kDecoderId = 4, kDisplayId = 5, kNobodysId = 7;

  std::string dir_;
  PlatformFirewalls* firewalls_ = nullptr;  // owned by the service
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<Service> service_;
  std::thread thread_;
  std::unique_ptr<Guest> decrypt_, display_, info_;
};

TEST_F(ServiceTest, EveryGuestGetsItsConfiguredRegion) {
  // docs/rmemd.example.toml: decrypt has region = "256 MiB", the others the default.
  EXPECT_EQ(decrypt_->region_size(), uint64_t{256} << 20);
  EXPECT_EQ(display_->region_size(), kDefaultRegionSize);
}

TEST_F(ServiceTest, ShareReadOnly_DisplayReadsTheBytesThroughAReadOnlyPiece_OthersCannot) {
  const virtio_rmem_resp_alloc a = Alloc(*decrypt_, 1 << 20);
  ASSERT_NE(a.shm_offset, VIRTIO_RMEM_NO_OFFSET);
  std::optional<RecordingGuest::Piece> own = decrypt_->reach().At(a.shm_offset);
  ASSERT_TRUE(own.has_value()) << "ALLOC maps the buffer into the owner's region";
  EXPECT_TRUE(own->writable);
  ASSERT_EQ(own->len, uint64_t{1} << 20);
  for (uint64_t i = 0; i < own->len; ++i) own->host[i] = static_cast<uint8_t>(i * 7 + 3);

  const std::vector<uint8_t> offer = Offer(*decrypt_, VIRTIO_RMEM_REQ_SHARE, a.buffer, kDisplay,
                                           VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_EQ(StatusOf(offer), VIRTIO_RMEM_S_OK);
  const uint64_t handle = ReadWire<virtio_rmem_resp_offer>(offer).handle;

  const virtio_rmem_event offered = Expect(*display_, VIRTIO_RMEM_EVENT_OFFERED);
  EXPECT_EQ(offered.handle, handle);
  EXPECT_EQ(offered.peer, kDecrypt.value());
  EXPECT_EQ(offered.size, uint64_t{1} << 20);

  // Infotainment, not named, holds the handle (leaked) and still gets nothing.
  EXPECT_EQ(StatusOf(ByHandle(*info_, VIRTIO_RMEM_REQ_RETRIEVE, handle)), VIRTIO_RMEM_S_NOT_FOUND);
  EXPECT_EQ(info_->reach().count(), 0u);

  const std::vector<uint8_t> got = ByHandle(*display_, VIRTIO_RMEM_REQ_RETRIEVE, handle);
  ASSERT_EQ(StatusOf(got), VIRTIO_RMEM_S_OK);
  const virtio_rmem_resp_retrieve r = ReadWire<virtio_rmem_resp_retrieve>(got);
  EXPECT_EQ(r.kind, static_cast<uint32_t>(VIRTIO_RMEM_KIND_SHARE));
  std::optional<RecordingGuest::Piece> theirs = display_->reach().At(r.shm_offset);
  ASSERT_TRUE(theirs.has_value()) << "RETRIEVE maps the buffer into the receiver's region";
  EXPECT_FALSE(theirs->writable) << "a read-only share is a read-only mapping";
  ASSERT_EQ(theirs->len, uint64_t{1} << 20);
  EXPECT_NE(theirs->host, own->host) << "two VMMs' own mappings of the same pages";
  for (uint64_t i = 0; i < theirs->len; ++i) {
    ASSERT_EQ(theirs->host[i], static_cast<uint8_t>(i * 7 + 3)) << "byte " << i;
  }
  Expect(*decrypt_, VIRTIO_RMEM_EVENT_RETRIEVED);

  // Relinquish: display's mapping goes, decrypt hears it, then frees.
  ASSERT_EQ(StatusOf(ByHandle(*display_, VIRTIO_RMEM_REQ_RELINQUISH, handle)), VIRTIO_RMEM_S_OK);
  EXPECT_FALSE(display_->reach().At(r.shm_offset).has_value());
  Expect(*decrypt_, VIRTIO_RMEM_EVENT_RELINQUISHED);
  EXPECT_EQ(StatusOf(ByBuffer(*decrypt_, VIRTIO_RMEM_REQ_FREE, a.buffer)), VIRTIO_RMEM_S_BUSY)
      << "the offer is open until the owner reclaims";
  ASSERT_EQ(StatusOf(Reclaim(*decrypt_, a.buffer)), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(StatusOf(ByBuffer(*decrypt_, VIRTIO_RMEM_REQ_FREE, a.buffer)), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(decrypt_->reach().count(), 0u) << "FREE unmaps";
}

// The device initiators of docs/rmemd.example.toml's platform (the embedded
// default: a video decoder owned by decrypt, NSAID 4, read-write; a display
// controller owned by display, NSAID 5, read only) follow their VMs' rights
// through the TZC-400 that rmemd programs -- asked here of the model, as a
// DMA master's accesses would be.
TEST_F(ServiceTest, DeviceInitiatorsFollowTheirVms_DecoderWritesDisplayReadsNobodyElse) {
  const virtio_rmem_resp_alloc a = Alloc(*decrypt_, 2 << 20);
  const PageRange frame = PagesOf(a.buffer);
  ASSERT_FALSE(frame.empty());
  EXPECT_EQ(DmaAccess(kDecoderId, frame), Access::kReadWrite) << "decrypt's decoder fills it";
  EXPECT_EQ(DmaAccess(kDisplayId, frame), Access::kNone);
  EXPECT_EQ(DmaAccess(kNobodysId, frame), Access::kNone);

  // Shared read-only with display, retrieved: its display controller reads.
  const std::vector<uint8_t> offer = Offer(*decrypt_, VIRTIO_RMEM_REQ_SHARE, a.buffer, kDisplay,
                                           VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_EQ(StatusOf(offer), VIRTIO_RMEM_S_OK);
  const uint64_t handle = ReadWire<virtio_rmem_resp_offer>(offer).handle;
  Expect(*display_, VIRTIO_RMEM_EVENT_OFFERED);
  EXPECT_EQ(DmaAccess(kDisplayId, frame), Access::kNone) << "offered is not retrieved";
  ASSERT_EQ(StatusOf(ByHandle(*display_, VIRTIO_RMEM_REQ_RETRIEVE, handle)), VIRTIO_RMEM_S_OK);
  Expect(*decrypt_, VIRTIO_RMEM_EVENT_RETRIEVED);
  EXPECT_EQ(DmaAccess(kDisplayId, frame), Access::kRead);
  EXPECT_EQ(DmaAccess(kDecoderId, frame), Access::kReadWrite);
  EXPECT_EQ(DmaAccess(kNobodysId, frame), Access::kNone);
  // The refused accesses were recorded as the hardware records them.
  FirewallModel* tzc = firewalls_->model(kTzc);
  ASSERT_NE(tzc, nullptr);
  EXPECT_NE(tzc->Read32(tzc400::kIntStatus) & 1, 0u) << "filter 0 recorded a failure";

  // Relinquished: the display controller loses it; freed: the decoder too.
  ASSERT_EQ(StatusOf(ByHandle(*display_, VIRTIO_RMEM_REQ_RELINQUISH, handle)), VIRTIO_RMEM_S_OK);
  Expect(*decrypt_, VIRTIO_RMEM_EVENT_RELINQUISHED);
  EXPECT_EQ(DmaAccess(kDisplayId, frame), Access::kNone);
  ASSERT_EQ(StatusOf(Reclaim(*decrypt_, a.buffer)), VIRTIO_RMEM_S_OK);
  ASSERT_EQ(StatusOf(ByBuffer(*decrypt_, VIRTIO_RMEM_REQ_FREE, a.buffer)), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(DmaAccess(kDecoderId, frame), Access::kNone);

  // The display's own secure-ui buffer, behind the block firewall (domain
  // 5): its controller reads it, and never writes it although display holds
  // write (rmem,max-access = "read"); the decoder has no id there at all.
  const virtio_rmem_resp_alloc ui = Alloc(*display_, 64 << 10, kHeapUi);
  const PageRange ui_pages = PagesOf(ui.buffer);
  EXPECT_EQ(DmaAccess(kDisplayId, ui_pages, kBlock), Access::kRead);
  EXPECT_EQ(DmaAccess(kDecoderId, ui_pages, kBlock), Access::kNone);
  EXPECT_EQ(DmaAccess(kNobodysId, ui_pages, kBlock), Access::kNone);
  ASSERT_EQ(StatusOf(ByBuffer(*display_, VIRTIO_RMEM_REQ_FREE, ui.buffer)), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(DmaAccess(kDisplayId, ui_pages, kBlock), Access::kNone);
}

TEST_F(ServiceTest, Lend_OwnerLosesItsMappingUntilReclaim) {
  const virtio_rmem_resp_alloc a = Alloc(*decrypt_, 64 << 10);
  ASSERT_TRUE(decrypt_->reach().At(a.shm_offset).has_value());
  decrypt_->reach().At(a.shm_offset)->host[0] = 0x5a;
  const std::vector<uint8_t> lend =
      Offer(*decrypt_, VIRTIO_RMEM_REQ_LEND, a.buffer, kDisplay,
            VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_EQ(StatusOf(lend), VIRTIO_RMEM_S_OK);
  EXPECT_FALSE(decrypt_->reach().At(a.shm_offset).has_value()) << "lent: the owner's piece is gone";
  const uint64_t handle = Expect(*display_, VIRTIO_RMEM_EVENT_OFFERED).handle;
  const std::vector<uint8_t> got = ByHandle(*display_, VIRTIO_RMEM_REQ_RETRIEVE, handle);
  ASSERT_EQ(StatusOf(got), VIRTIO_RMEM_S_OK);
  const uint64_t offset = ReadWire<virtio_rmem_resp_retrieve>(got).shm_offset;
  ASSERT_TRUE(display_->reach().At(offset).has_value());
  EXPECT_EQ(display_->reach().At(offset)->host[0], 0x5a);
  Expect(*decrypt_, VIRTIO_RMEM_EVENT_RETRIEVED);
  EXPECT_EQ(StatusOf(Reclaim(*decrypt_, a.buffer)), VIRTIO_RMEM_S_BUSY) << "still held";

  ASSERT_EQ(StatusOf(ByHandle(*display_, VIRTIO_RMEM_REQ_RELINQUISH, handle)), VIRTIO_RMEM_S_OK);
  Expect(*decrypt_, VIRTIO_RMEM_EVENT_RELINQUISHED);
  ASSERT_EQ(StatusOf(Reclaim(*decrypt_, a.buffer)), VIRTIO_RMEM_S_OK);
  // docs/virtio-rmem.md section 9: RECLAIM does not say where the buffer is
  // now; the device maps it back at its ALLOC offset.
  std::optional<RecordingGuest::Piece> back = decrypt_->reach().At(a.shm_offset);
  ASSERT_TRUE(back.has_value()) << "reclaimed: the owner sees it again";
  EXPECT_EQ(back->host[0], 0x5a);
}

TEST_F(ServiceTest, OwnerVmmHangsUp_BorrowerIsRevokedAndThePagesComeBackZeroed) {
  const uint64_t free_before = HeapFree(*display_);
  const virtio_rmem_resp_alloc a = Alloc(*decrypt_, 2 << 20);
  std::memset(decrypt_->reach().At(a.shm_offset)->host, 0xa5, 2 << 20);
  const std::vector<uint8_t> offer = Offer(*decrypt_, VIRTIO_RMEM_REQ_SHARE, a.buffer, kDisplay,
                                           VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_EQ(StatusOf(offer), VIRTIO_RMEM_S_OK);
  const uint64_t handle = Expect(*display_, VIRTIO_RMEM_EVENT_OFFERED).handle;
  const std::vector<uint8_t> got = ByHandle(*display_, VIRTIO_RMEM_REQ_RETRIEVE, handle);
  ASSERT_EQ(StatusOf(got), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(HeapFree(*display_), free_before - (2 << 20));

  decrypt_->Hangup();  // the decrypt VM's VMM dies

  const virtio_rmem_event revoked = Expect(*display_, VIRTIO_RMEM_EVENT_REVOKED);
  EXPECT_EQ(revoked.handle, handle);
  EXPECT_EQ(revoked.reason, static_cast<uint32_t>(VIRTIO_RMEM_REASON_PEER_GONE));
  EXPECT_EQ(display_->reach().count(), 0u) << "the borrower's mapping is gone before the event";
  EXPECT_EQ(HeapFree(*display_), free_before) << "every page back in the heap";
  EXPECT_EQ(StatusOf(ByHandle(*display_, VIRTIO_RMEM_REQ_RELINQUISH, handle)),
            VIRTIO_RMEM_S_NOT_FOUND);

  // The VM comes back (a new VMM on the same socket) and gets zeros.
  ASSERT_NO_FATAL_FAILURE(decrypt_->Connect());
  const virtio_rmem_resp_alloc again = Alloc(*decrypt_, 2 << 20);
  std::optional<RecordingGuest::Piece> p = decrypt_->reach().At(again.shm_offset);
  ASSERT_TRUE(p.has_value());
  for (uint64_t i = 0; i < p->len; ++i) ASSERT_EQ(p->host[i], 0) << "byte " << i << " not scrubbed";
}

TEST_F(ServiceTest, OrderlyStop_UnmapsEveryBufferThroughTheStillConnectedVmms) {
  const virtio_rmem_resp_alloc a = Alloc(*decrypt_, 64 << 10);
  const std::vector<uint8_t> offer = Offer(*decrypt_, VIRTIO_RMEM_REQ_SHARE, a.buffer, kDisplay,
                                           VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_EQ(StatusOf(offer), VIRTIO_RMEM_S_OK);
  const uint64_t handle = ReadWire<virtio_rmem_resp_offer>(offer).handle;
  ASSERT_EQ(StatusOf(ByHandle(*display_, VIRTIO_RMEM_REQ_RETRIEVE, handle)), VIRTIO_RMEM_S_OK);
  ASSERT_EQ(decrypt_->reach().count(), 1u);
  ASSERT_EQ(display_->reach().count(), 1u);

  StopService();

  EXPECT_EQ(decrypt_->reach().count(), 0u) << "unmapped with SHMEM_UNMAP before the hang-up";
  EXPECT_EQ(display_->reach().count(), 0u);
}

TEST_F(ServiceTest, MalformedAndForbiddenRequests_GetAStatus_ServiceKeepsServingEveryone) {
  EXPECT_EQ(StatusOf(info_->Request({0x10, 0x00})), VIRTIO_RMEM_S_INVALID) << "2 bytes";
  virtio_rmem_req_alloc bad{};
  bad.hdr.type = VIRTIO_RMEM_REQ_ALLOC;
  bad.size = ~uint64_t{0};
  EXPECT_EQ(StatusOf(decrypt_->Request(Bytes(bad))), VIRTIO_RMEM_S_INVALID) << "size overflows";
  EXPECT_EQ(StatusOf(info_->Request(Bytes(bad))), VIRTIO_RMEM_S_DENIED)
      << "not allowed to allocate there at all: denied whatever the size";
  bad.size = 4096;
  EXPECT_EQ(StatusOf(info_->Request(Bytes(bad))), VIRTIO_RMEM_S_DENIED)
      << "infotainment may not allocate secure-video";
  EXPECT_EQ(StatusOf(ByBuffer(*info_, VIRTIO_RMEM_REQ_FREE, 1)), VIRTIO_RMEM_S_NOT_FOUND);
  // A response buffer too short for any response: used, nothing written.
  EXPECT_TRUE(info_->Request(Bytes(bad), 4).empty());
  // Everyone is still served.
  const virtio_rmem_resp_alloc a = Alloc(*decrypt_, 4096);
  EXPECT_EQ(StatusOf(ByBuffer(*decrypt_, VIRTIO_RMEM_REQ_FREE, a.buffer)), VIRTIO_RMEM_S_OK);
  EXPECT_GT(HeapFree(*info_), 0u);
  EXPECT_FALSE(info_->EventPending());
}

}  // namespace
}  // namespace rmem::rmemd

// TEST ONLY: rmemd's service in one process and in-process guests to talk
// to it, shared by tests/broker/rmemd/service_test.cc and
// tests/bench/flood_bench.cc.
//
// InProcessService runs the real service as rmemd does: a configuration
// file (its sockets moved to a scratch directory) over the embedded default
// platform, the broker on carve-out memory (the memfd STAND-IN), one
// vhost-user socket per guest and the control socket, all on one
// event-loop thread.
//
// A Guest is one VM as its VMM and driver see the device: rmem-vmm's own
// VhostUserFrontend and ShmWindows (which mmap every SHMEM_MAP piece from
// the fd rmemd sends), and a FakeDriver per queue playing the guest driver:
// requests are bytes built from the uapi header, in guest memory, on a
// split virtqueue. A Flooder keeps one guest's request queue full from a
// thread of its own.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/event_loop.h"
#include "base/eventfd.h"
#include "broker/check.h"
#include "broker/platform/default_platform.h"
#include "broker/rmemd/config.h"
#include "broker/rmemd/control_commands.h"
#include "broker/rmemd/control_server.h"
#include "broker/rmemd/platform_firewalls.h"
#include "broker/rmemd/service.h"
#include "broker/rmemd/setup.h"
#include "firmware_handoff/handoff.h"
#include "gtest/gtest.h"
#include "tests/virtio_rmem/fake_driver.h"
#include "virtio_rmem/uapi/virtio_rmem.h"
#include "virtio_rmem/wire.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/memory/shm_window.h"
#include "vmm/vhost_user/frontend.h"

namespace rmem::rmemd {

inline constexpr absl::Duration kGuard = absl::Seconds(20);  // hang guard only
constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }
inline constexpr uint64_t kDriverFeatures =
    Bit(32) | Bit(VIRTIO_RMEM_F_LEND_DONATE) | Bit(VIRTIO_RMEM_F_RECLAIM_REVOKE);

// Each guest's memory: rings (room for a request queue of up to 1024
// entries), a slot per request in flight for its request and one for its
// response, and the event buffers.
inline constexpr GuestAddr kRamBase(0x40000000);
inline constexpr uint64_t kRamSize = 4 << 20;
inline constexpr GuestAddr kDesc0(0x40000000), kAvail0(0x40004000), kUsed0(0x40005000);
inline constexpr GuestAddr kDesc1(0x40008000), kAvail1(0x40009000), kUsed1(0x4000a000);
inline constexpr GuestAddr kIn(0x40100000), kOut(0x40200000), kEvents(0x40300000);
inline constexpr uint16_t kEventQueueSize = 64;
inline constexpr int kEventBuffers = 16;
// Where the transport would place the buffers' region in guest space.
inline constexpr GuestAddr kRegionBase(0x8000000000);

inline constexpr uint32_t kHeapVideo = 0;  // the example's first heap: secure-video
inline constexpr uint32_t kHeapUi = 1;     // its second: secure-ui
inline constexpr VmId kDecrypt(1), kDisplay(2), kInfotainment(3);

template <typename T>
std::vector<uint8_t> Bytes(const T& value) {
  std::vector<uint8_t> out;
  virtio_rmem::AppendWire(out, value);
  return out;
}

inline uint32_t StatusOf(const std::vector<uint8_t>& response) {
  if (response.size() < sizeof(virtio_rmem_resp_hdr)) return ~0u;
  return virtio_rmem::ReadWire<virtio_rmem_resp_hdr>(response).status;
}

inline std::vector<uint8_t> GetHeapRequest(uint32_t heap) {
  virtio_rmem_req_get_heap r{};
  r.hdr.type = VIRTIO_RMEM_REQ_GET_HEAP;
  r.heap = heap;
  return Bytes(r);
}

// rmemd's service on an event-loop thread of its own.
class InProcessService {
 public:
  // The configuration at `config_path` with its sockets moved from
  // /run/rmemd to a fresh scratch directory. Errors: NotFound if the file
  // cannot be read; the parser's, MakeBrokerSetup's, the firewalls' and
  // Service::Start's; Internal if the embedded platform is refused.
  // `state`: the store the broker records in (nullptr: memory only).
  static absl::StatusOr<std::unique_ptr<InProcessService>> Start(
      const std::string& config_path, std::unique_ptr<StateStore> state = nullptr) {
    std::unique_ptr<InProcessService> s(new InProcessService());
    char dir[] = "/tmp/rmemd-service-XXXXXX";
    if (mkdtemp(dir) == nullptr) return absl::InternalError("mkdtemp failed");
    s->dir_ = dir;
    std::ifstream in(config_path);
    if (!in) return absl::NotFoundError(absl::StrCat(config_path, ": cannot be read"));
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<RmemdConfig> config =
        ParseConfig(absl::StrReplaceAll(text.str(), {{"/run/rmemd", s->dir_}}), config_path);
    if (!config.ok()) return config.status();
    s->config_ = *std::move(config);
    s->config_.control = s->dir_ + "/control";
    firmware_handoff::PlatformResult result =
        firmware_handoff::ReadPlatformFromFdt(platform::DefaultPlatformDtb());
    const auto* platform = std::get_if<firmware_handoff::Platform>(&result);
    if (platform == nullptr) return absl::InternalError("the embedded default platform is refused");
    absl::StatusOr<BrokerSetup> setup = MakeBrokerSetup(*platform, s->config_);
    if (!setup.ok()) return setup.status();
    absl::StatusOr<std::unique_ptr<CarveoutMemory>> memory =
        MakeMemfdCarveoutMemory(setup->carveouts);
    if (!memory.ok()) return memory.status();
    absl::StatusOr<std::unique_ptr<PlatformFirewalls>> firewalls =
        PlatformFirewalls::Create(*platform, *setup);
    if (!firewalls.ok()) return firewalls.status();
    s->firewalls_ = firewalls->get();
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
    if (!loop.ok()) return loop.status();
    s->loop_ = *std::move(loop);
    absl::StatusOr<std::unique_ptr<Service>> service =
        Service::Start(*setup, *std::move(memory), *std::move(firewalls),
                       Service::Options{.state = std::move(state)}, *s->loop_);
    if (!service.ok()) return service.status();
    s->service_ = *std::move(service);
    const Service* running = s->service_.get();
    absl::StatusOr<std::unique_ptr<ControlServer>> control = ControlServer::Start(
        *s->loop_, s->config_.control,
        [running](const Json& request) { return AnswerControlRequest(*running, request); });
    if (!control.ok()) return control.status();
    s->control_ = *std::move(control);
    EventLoop* l = s->loop_.get();
    s->thread_ = std::thread([l] { EXPECT_TRUE(l->Run().ok()); });
    return s;
  }
  ~InProcessService() {
    Stop();
    if (!dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }
  InProcessService(const InProcessService&) = delete;
  InProcessService& operator=(const InProcessService&) = delete;

  // What rmemd does on SIGTERM: the loop stops, the service goes. Once.
  void Stop() {
    if (service_ == nullptr) return;
    loop_->Stop();
    thread_.join();
    control_.reset();
    service_.reset();
  }

  // The socket of guest `name` (its [[vm]] entry), "" if there is none.
  std::string socket(absl::string_view name) const {
    for (const GuestConfig& g : config_.guests) {
      if (g.name == name) return g.socket;
    }
    return "";
  }
  // Only from the loop's thread, or once Stop returned, or while no guest
  // is talking to the service (the loop is idle).
  Service& service() { return *service_; }
  PlatformFirewalls& firewalls() { return *firewalls_; }  // owned by the service
  const RmemdConfig& config() const { return config_; }
  // rmemd's control socket (in the scratch directory).
  const std::string& control_path() const { return config_.control; }

 private:
  InProcessService() = default;
  std::string dir_;
  RmemdConfig config_;
  PlatformFirewalls* firewalls_ = nullptr;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<ControlServer> control_;
  std::thread thread_;
};

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
  // Every piece the guest can reach, in the order they were installed.
  std::vector<Piece> All() const {
    absl::MutexLock lock(&mu_);
    std::vector<Piece> out;
    for (const auto& [token, p] : pieces_) out.push_back(p);
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<uint32_t, Piece> pieces_ ABSL_GUARDED_BY(mu_);
  uint32_t next_ = 1;
};

// One guest as its VMM and driver see the device. Not thread-safe: one
// thread drives it (the front-end serves rmemd's SHMEM_MAPs on its own).
//
// Every request is a chain of two descriptors, the request's bytes in a
// readable one and room for the response in a writable one, each in the
// request's slot. So a queue of N entries holds N/2 requests in flight, and
// the chain with head h uses slot h/2.
class Guest {
 public:
  static constexpr uint16_t kDefaultRequestQueueSize = 64;
  static constexpr uint32_t kSlotBytes = 256;  // room for a request, and for its response

  // `request_queue_size`: a power of 2, at most 1024 (the back-end's bound).
  Guest(std::string name, std::string socket,
        uint16_t request_queue_size = kDefaultRequestQueueSize)
      : name_(std::move(name)),
        socket_(std::move(socket)),
        request_queue_size_(CheckedQueueSize(request_queue_size)),
        ram_(*vmm::GuestMemory::Create(kRamBase, kRamSize)),
        requests_(ram_.host_base(), kRamBase, kRamSize, request_queue_size_, kDesc0, kAvail0,
                  kUsed0),
        events_(ram_.host_base(), kRamBase, kRamSize, kEventQueueSize, kDesc1, kAvail1, kUsed1),
        kick0_(MakeEventFd()),
        call0_(MakeEventFd()),
        kick1_(MakeEventFd()),
        call1_(MakeEventFd()) {}
  ~Guest() { Hangup(); }

  // Connects, places the region, starts both queues and posts event buffers.
  // The front-end's error if it cannot connect; Internal if the device
  // offers no single shared memory region or refuses the queues.
  absl::Status Connect() {
    windows_ = std::make_unique<vmm::ShmWindows>("virtio-rmem." + name_, &guest_);
    absl::StatusOr<std::unique_ptr<vmm::VhostUserFrontend>> fe = vmm::VhostUserFrontend::Connect(
        socket_, VIRTIO_ID_RMEM, ram_, windows_.get(), VIRTIO_RMEM_NUM_VQS);
    if (!fe.ok())
      return absl::Status(fe.status().code(), absl::StrCat(name_, ": ", fe.status().message()));
    frontend_ = *std::move(fe);
    if (frontend_->shm_regions().size() != 1) {
      return absl::InternalError(absl::StrCat(name_, ": ", frontend_->shm_regions().size(),
                                              " shared memory regions, not 1"));
    }
    region_size_ = frontend_->shm_regions()[0].size;
    windows_->SetRegions({{VIRTIO_RMEM_SHM_BUFFERS, kRegionBase, region_size_}});
    frontend_->SetReconnectTimeout(reconnect_timeout_);
    frontend_->StartServing();
    const vmm::VirtqueueSetup queues[2] = {
        {0, request_queue_size_, kDesc0, kAvail0, kUsed0, kick0_.get(), call0_.get()},
        {1, kEventQueueSize, kDesc1, kAvail1, kUsed1, kick1_.get(), call1_.get()},
    };
    if (absl::Status s = frontend_->Start(kDriverFeatures, queues); !s.ok()) {
      return absl::InternalError(absl::StrCat(name_, ": queues refused: ", s.ToString()));
    }
    for (int i = 0; i < kEventBuffers; ++i) PostEventBuffer(i);
    SignalEventFd(kick1_.get());
    return absl::OkStatus();
  }

  // Before Connect: the front-end reconnects to a back-end that hangs up
  // for up to `timeout` (rmem-vmm's --reconnect-timeout); default: it does not.
  void set_reconnect_timeout(absl::Duration timeout) { reconnect_timeout_ = timeout; }
  // Reconnects completed so far.
  int reconnects() const { return frontend_ ? frontend_->reconnects() : 0; }

  // The VMM goes away: the socket closes, its own mappings go with it.
  void Hangup() {
    frontend_.reset();
    windows_.reset();
  }

  // Sends one request, with no other in flight, and returns the response
  // (as many bytes as the device wrote), or an empty vector if the device
  // did not answer.
  std::vector<uint8_t> Request(const std::vector<uint8_t>& request,
                               uint32_t capacity = kSlotBytes) {
    const uint16_t want = static_cast<uint16_t>(posted() + 1);
    Post(request, capacity);
    if (!WaitForAnswered(want)) {
      ADD_FAILURE() << name_ << ": no response within " << kGuard;
      return {};
    }
    const FakeDriver::Used used = requests_.used(static_cast<uint16_t>(want - 1));
    const uint8_t* out = At(Out(used.id / 2));
    return std::vector<uint8_t>(out, out + std::min(used.len, capacity));
  }

  // The response to the last request answered (as many bytes as the device
  // wrote, at most `capacity`), e.g. to one posted with Post. Valid until
  // the next request is posted (the slot is reused).
  std::vector<uint8_t> LastAnswer(uint32_t capacity = kSlotBytes) {
    RMEM_CHECK(capacity <= kSlotBytes);
    const FakeDriver::Used used = requests_.used(static_cast<uint16_t>(answered() - 1));
    const uint8_t* out = At(Out(used.id / 2));
    return std::vector<uint8_t>(out, out + std::min(used.len, capacity));
  }

  // Posts one request without waiting for its answer (the response is not
  // kept: the slot is reused). At most max_in_flight() may be unanswered.
  // Kicks the device unless `kick` is false (then Kick() after a batch).
  void Post(const std::vector<uint8_t>& request, uint32_t capacity = kSlotBytes, bool kick = true) {
    RMEM_CHECK(request.size() <= kSlotBytes && capacity <= kSlotBytes);
    RMEM_CHECK(in_flight() < max_in_flight());
    const uint16_t slot = static_cast<uint16_t>(posted() % max_in_flight());
    std::memcpy(At(In(slot)), request.data(), request.size());
    std::memset(At(Out(slot)), 0xee, capacity);
    const uint16_t head = requests_.Post(
        {{In(slot), static_cast<uint32_t>(request.size()), false}, {Out(slot), capacity, true}});
    RMEM_CHECK(head == 2 * slot);
    if (kick) Kick();
  }
  void Kick() { SignalEventFd(kick0_.get()); }

  // Requests posted and answered so far (the request queue's available and
  // used indexes: they wrap at 2^16).
  uint16_t posted() const { return requests_.avail_idx(); }
  uint16_t answered() const { return requests_.used_idx(); }
  uint16_t in_flight() const { return static_cast<uint16_t>(posted() - answered()); }
  uint16_t max_in_flight() const { return request_queue_size_ / 2; }
  // Waits until answered() reaches `count` (ring arithmetic: for n more,
  // answered() + n). False once `guard` (a hang guard) has passed.
  bool WaitForAnswered(uint16_t count, absl::Duration guard = kGuard) {
    return ::rmem::testing::WaitForUsed(requests_, call0_.get(), count, guard);
  }

  // The next event the device delivered, waiting for it (hang guard only).
  std::optional<virtio_rmem_event> NextEvent() {
    const uint16_t want = static_cast<uint16_t>(events_seen_ + 1);
    if (!::rmem::testing::WaitForUsed(events_, call1_.get(), want, kGuard)) return std::nullopt;
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
  const std::string& name() const { return name_; }

 private:
  using FakeDriver = ::rmem::testing::FakeDriver;
  // The rings' layout above has room for at most 1024 entries.
  static uint16_t CheckedQueueSize(uint16_t size) {
    RMEM_CHECK(size >= 2 && size <= 1024 && (size & (size - 1)) == 0);
    return size;
  }
  uint8_t* At(GuestAddr a) { return ram_.host_base() + (a.value() - kRamBase.value()); }
  static GuestAddr In(uint32_t slot) { return GuestAddr(kIn.value() + kSlotBytes * slot); }
  static GuestAddr Out(uint32_t slot) { return GuestAddr(kOut.value() + kSlotBytes * slot); }
  static GuestAddr EventBuffer(int i) { return GuestAddr(kEvents.value() + 64u * i); }
  void PostEventBuffer(int i) {
    // One descriptor per buffer: descriptor i is buffer i.
    events_.SetDesc(static_cast<uint16_t>(i), EventBuffer(i).value(), 64, FakeDriver::kWrite, 0);
    events_.MakeAvailable(static_cast<uint16_t>(i));
  }
  std::string name_, socket_;
  uint16_t request_queue_size_;
  vmm::GuestMemory ram_;
  RecordingGuest guest_;
  std::unique_ptr<vmm::ShmWindows> windows_;
  std::unique_ptr<vmm::VhostUserFrontend> frontend_;
  FakeDriver requests_, events_;
  Fd kick0_, call0_, kick1_, call1_;
  uint16_t events_seen_ = 0;
  uint64_t region_size_ = 0;
  absl::Duration reconnect_timeout_ = absl::ZeroDuration();
};

// Requests' bytes, as a guest driver builds them.
inline std::vector<uint8_t> AllocRequest(uint64_t size, uint32_t heap) {
  virtio_rmem_req_alloc r{};
  r.hdr.type = VIRTIO_RMEM_REQ_ALLOC;
  r.heap = heap;
  r.size = size;
  return Bytes(r);
}
// SHARE or LEND to one receiver.
inline std::vector<uint8_t> OfferRequest(uint32_t type, uint64_t buffer, VmId to,
                                         uint32_t rights) {
  virtio_rmem_req_share r{};
  r.hdr.type = type;
  r.buffer = buffer;
  r.num_receivers = 1;
  std::vector<uint8_t> out = Bytes(r);
  virtio_rmem::AppendWire(out, virtio_rmem_receiver{to.value(), rights});
  return out;
}
// RETRIEVE, RELINQUISH, ...: a request naming a handle.
inline std::vector<uint8_t> HandleRequest(uint32_t type, uint64_t handle) {
  virtio_rmem_req_handle r{};
  r.hdr.type = type;
  r.handle = handle;
  return Bytes(r);
}
// FREE, ...: a request naming a buffer.
inline std::vector<uint8_t> BufferRequest(uint32_t type, uint64_t buffer) {
  virtio_rmem_req_free r{};
  r.hdr.type = type;
  r.buffer = buffer;
  return Bytes(r);
}
inline std::vector<uint8_t> ReclaimRequest(uint64_t buffer) {
  virtio_rmem_req_reclaim r{};
  r.hdr.type = VIRTIO_RMEM_REQ_RECLAIM;
  r.buffer = buffer;
  return Bytes(r);
}

// Requests as a guest driver sends them, one at a time.
// ALLOC; returns the response.
inline std::vector<uint8_t> TryAlloc(Guest& g, uint64_t size, uint32_t heap) {
  return g.Request(AllocRequest(size, heap));
}
// ALLOC, which must succeed.
inline virtio_rmem_resp_alloc Alloc(Guest& g, uint64_t size, uint32_t heap = kHeapVideo) {
  const std::vector<uint8_t> response = TryAlloc(g, size, heap);
  EXPECT_EQ(StatusOf(response), VIRTIO_RMEM_S_OK);
  EXPECT_EQ(response.size(), sizeof(virtio_rmem_resp_alloc));
  if (response.size() != sizeof(virtio_rmem_resp_alloc)) return {};
  return virtio_rmem::ReadWire<virtio_rmem_resp_alloc>(response);
}
// SHARE or LEND to one receiver; returns the response.
inline std::vector<uint8_t> Offer(Guest& g, uint32_t type, uint64_t buffer, VmId to,
                                  uint32_t rights) {
  return g.Request(OfferRequest(type, buffer, to, rights));
}
inline std::vector<uint8_t> ByHandle(Guest& g, uint32_t type, uint64_t handle) {
  return g.Request(HandleRequest(type, handle));
}
inline std::vector<uint8_t> ByBuffer(Guest& g, uint32_t type, uint64_t buffer) {
  return g.Request(BufferRequest(type, buffer));
}
inline std::vector<uint8_t> Reclaim(Guest& g, uint64_t buffer) {
  return g.Request(ReclaimRequest(buffer));
}
// decrypt's way of handing a frame on: a SHARE of `owner`'s `buffer` with
// `receiver` (VM `to`), then its RETRIEVE there. nullopt when either is
// refused.
struct SharedAndRetrieved {
  uint64_t handle = 0;
  virtio_rmem_resp_retrieve retrieved{};
};
inline std::optional<SharedAndRetrieved> ShareAndRetrieve(Guest& owner, uint64_t buffer,
                                                          Guest& receiver, VmId to,
                                                          uint32_t rights) {
  const std::vector<uint8_t> offer = Offer(owner, VIRTIO_RMEM_REQ_SHARE, buffer, to, rights);
  if (StatusOf(offer) != VIRTIO_RMEM_S_OK) return std::nullopt;
  const uint64_t handle = virtio_rmem::ReadWire<virtio_rmem_resp_offer>(offer).handle;
  const std::vector<uint8_t> got = ByHandle(receiver, VIRTIO_RMEM_REQ_RETRIEVE, handle);
  if (StatusOf(got) != VIRTIO_RMEM_S_OK) return std::nullopt;
  return SharedAndRetrieved{handle, virtio_rmem::ReadWire<virtio_rmem_resp_retrieve>(got)};
}

// Keeps `guest`'s request queue full of copies of `request` from a thread
// of its own: posts until max_in_flight() are unanswered, kicks, and
// re-posts as answers come, until stopped. Nothing else may drive `guest`
// meanwhile.
class Flooder {
 public:
  Flooder(Guest& guest, std::vector<uint8_t> request)
      : guest_(guest), request_(std::move(request)), thread_([this] { Run(); }) {}
  ~Flooder() { Stop(); }
  Flooder(const Flooder&) = delete;
  Flooder& operator=(const Flooder&) = delete;

  // Stops re-posting and joins the thread (what is in flight stays posted).
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  // Requests answered since the flood began.
  uint64_t answered() const { return answered_.load(std::memory_order_relaxed); }
  // True once the device left the queue unanswered for kGuard (the flood
  // then stops).
  bool stalled() const { return stalled_.load(); }
  // Waits until answered() reaches `n`; false if the device stalled or
  // `guard` (a hang guard) passed.
  bool WaitForAnswered(uint64_t n, absl::Duration guard = kGuard) const {
    const absl::Time deadline = absl::Now() + guard;
    while (answered() < n) {
      if (stalled() || absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return true;
  }

 private:
  void Run() {
    uint16_t seen = guest_.answered();
    while (!stop_.load()) {
      while (guest_.in_flight() < guest_.max_in_flight()) {
        guest_.Post(request_, Guest::kSlotBytes, /*kick=*/false);
      }
      guest_.Kick();
      if (!guest_.WaitForAnswered(static_cast<uint16_t>(seen + 1))) {
        stalled_.store(true);
        return;
      }
      const uint16_t now = guest_.answered();
      answered_.fetch_add(static_cast<uint16_t>(now - seen), std::memory_order_relaxed);
      seen = now;
    }
  }

  Guest& guest_;
  const std::vector<uint8_t> request_;
  std::atomic<bool> stop_{false}, stalled_{false};
  std::atomic<uint64_t> answered_{0};
  std::thread thread_;  // last: starts once everything above is set
};

}  // namespace rmem::rmemd

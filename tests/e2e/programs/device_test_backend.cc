// TEST ONLY: rmem-device-test-backend, the virtio-rmem device served over
// vhost-user to one rmem-vmm guest, so that the guest driver
// (guest_driver/virtio_rmem) can be tested end to end before rmemd serves
// the device. It is the real device model (virtio_rmem/RmemDevice over a
// Broker) on test scaffolding:
//   - carve-outs: the memfd stand-in (MakeMemfdCarveoutMemory), ordinary
//     host memory, not restricted memory;
//   - stage 2: ShmRegionStage2, i.e. buffers reach the guest through
//     vhost-user SHMEM_MAP / SHMEM_UNMAP into the device's shared memory
//     region, exactly as rmemd will do it;
//   - virtqueues: a minimal split-ring back-end (no indirect descriptors,
//     no event index), one worker thread;
//   - a scripted peer, VM 2 ("peer"), inside this process (its "VMM" only
//     records where its buffers are, so that it can read and write them
//     through the memfd), so that the guest, VM 1 ("guest"), has someone
//     to share with.
// The policy: heap 0 "secure-video" (32 MiB, CPU-mappable, owners may
// revoke), heap 1 "device-only" (8 MiB, never CPU-mapped); both VMs may
// allocate on both with every right the heap allows.
//
// The peer's script, each step printing a marker:
//   1. once the guest's eventq is live: allocate 64 KiB of secure-video,
//      fill it with 0xc3, share it to the guest read-only + CPU map
//                                            RMEM-BACKEND-PEER-OFFER 1 handle=...
//   2. when the guest retrieved it: wait 2 s, reclaim it with revoke, free
//      it                                    RMEM-BACKEND-PEER-REVOKED 1 ...
//   3. then share a second zeroed 64 KiB buffer read-write + CPU map
//                                            RMEM-BACKEND-PEER-OFFER 2 handle=...
//   4. when the guest relinquished it: read what the guest wrote, reclaim,
//      free                                  RMEM-BACKEND-PEER-SAW 2 first=0x.. uniform=yes|no
//   5. whatever the guest offers it: retrieve, read, give back (relinquish;
//      a donation: free)                     RMEM-BACKEND-PEER-READ <kind> first=0x.. uniform=..
//                                            RMEM-BACKEND-PEER-RELINQUISHED / -FREED-DONATION
// At the end (the front-end resets the device or hangs up):
//   RMEM-BACKEND-RESET, RMEM-BACKEND-STATS requests=N failed=N
//   unanswerable=N bad_chains=N events=N
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/backend/carveout_memory.h"
#include "broker/backend/null_backends.h"
#include "broker/backend/scrubber.h"
#include "broker/backend/shm_region_stage2.h"
#include "broker/broker.h"
#include "virtio_rmem/rmem_device.h"
#include "virtio_rmem/uapi/virtio_rmem.h"
#include "vmm/vhost_user/channel.h"
#include "vmm/vhost_user/protocol.h"

namespace rmem::vmm::testing {
namespace {

using Clock = std::chrono::steady_clock;
using vhost_user::BackendRequest;
using vhost_user::Bytes;
using vhost_user::Channel;
using vhost_user::FrontendRequest;
using vhost_user::Message;
using vhost_user::MsgHeader;
using vhost_user::RequestSpace;
using virtio_rmem::RmemDevice;

constexpr VmId kGuest{1}, kPeer{2};
constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kRegionSize = 64 * kMiB;  // each VM's shared memory region
constexpr uint64_t kPeerBufSize = 64 * 1024;
constexpr uint8_t kPeerFill = 0xc3;
constexpr auto kRevokeDelay = std::chrono::seconds(2);
constexpr int kNumQueues = VIRTIO_RMEM_NUM_VQS;
constexpr uint64_t kFeatureVersion1 = uint64_t{1} << 32;
constexpr uint32_t kMaxChainBytes = 64 * 1024;

void Marker(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "rmem-device-test-backend: %s\n", why.c_str());
  std::exit(1);
}

std::string Hex(uint64_t v) { return absl::StrCat("0x", absl::Hex(v)); }

// Guest RAM as the front-end's memory table describes it, mapped here.
class GuestMemory {
 public:
  ~GuestMemory() { Clear(); }
  void Clear() {
    for (const Region& r : regions_) munmap(r.host, r.size);
    regions_.clear();
  }
  absl::Status Set(const Message& msg) {
    Clear();
    vhost_user::MemoryTable table;
    if (msg.payload.size() < offsetof(vhost_user::MemoryTable, regions)) {
      return absl::InvalidArgumentError("SET_MEM_TABLE too short");
    }
    std::memcpy(&table, msg.payload.data(), std::min(msg.payload.size(), sizeof(table)));
    if (table.nregions == 0 || table.nregions > vhost_user::kMaxMemoryRegions ||
        msg.payload.size() != offsetof(vhost_user::MemoryTable, regions) +
                                  table.nregions * sizeof(vhost_user::MemoryRegion) ||
        msg.fds.size() != table.nregions) {
      return absl::InvalidArgumentError("SET_MEM_TABLE: bad region count, size or fds");
    }
    for (uint32_t i = 0; i < table.nregions; ++i) {
      const vhost_user::MemoryRegion& r = table.regions[i];
      void* host = mmap(nullptr, r.memory_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                        msg.fds[i].get(), static_cast<off_t>(r.mmap_offset));
      if (host == MAP_FAILED) return absl::InternalError("cannot map guest memory");
      regions_.push_back(
          {r.guest_phys_addr, r.memory_size, r.userspace_addr, static_cast<uint8_t*>(host)});
    }
    return absl::OkStatus();
  }
  // Host pointers to [addr, addr + len) of guest physical (or the
  // front-end's virtual) addresses, or nullptr if it is not all in one region.
  uint8_t* Gpa(uint64_t addr, uint64_t len) const { return Find(addr, len, false); }
  uint8_t* Uva(uint64_t addr, uint64_t len) const { return Find(addr, len, true); }

 private:
  struct Region {
    uint64_t gpa, size, uva;
    uint8_t* host;
  };
  uint8_t* Find(uint64_t addr, uint64_t len, bool uva) const {
    for (const Region& r : regions_) {
      const uint64_t base = uva ? r.uva : r.gpa;
      if (addr >= base && len <= r.size && addr - base <= r.size - len) {
        return r.host + (addr - base);
      }
    }
    return nullptr;
  }
  std::vector<Region> regions_;
};

// The split virtqueue layout (VIRTIO 1.2, 2.7); little-endian like every
// host we build for (virtio_rmem/wire.h checks). <linux/virtio_ring.h> is not
// C++-clean.
struct VringDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
struct VringAvail {  // followed by uint16_t ring[num]
  uint16_t flags;
  uint16_t idx;
};
struct VringUsedElem {
  uint32_t id;
  uint32_t len;
};
struct VringUsed {  // followed by VringUsedElem ring[num]
  uint16_t flags;
  uint16_t idx;
};
constexpr uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;

struct Vring {
  uint32_t num = 0;
  uint64_t desc_uva = 0, avail_uva = 0, used_uva = 0;
  uint16_t last_avail = 0;
  Fd kick, call;
  bool enabled = false, started = false;
  VringDesc* desc = nullptr;
  VringAvail* avail = nullptr;
  VringUsed* used = nullptr;
  bool ready() const { return started && enabled && desc != nullptr; }
  uint16_t& avail_ring(uint32_t i) { return reinterpret_cast<uint16_t*>(avail + 1)[i % num]; }
  VringUsedElem& used_ring(uint32_t i) {
    return reinterpret_cast<VringUsedElem*>(used + 1)[i % num];
  }
};

struct Chain {
  uint16_t head = 0;
  bool bad = false;
  std::vector<uint8_t> readable;
  std::vector<std::pair<uint8_t*, uint32_t>> writable;
  size_t capacity = 0;  // bytes of the writable part
};

// The VMM of the in-process peer: remembers where each of its pieces is.
class PeerMapper : public ShmRegionMapper {
 public:
  struct Piece {
    int fd;
    uint64_t fd_offset, len;
  };
  absl::Status Map(uint64_t region_offset, int fd, uint64_t fd_offset, uint64_t length,
                   bool) override {
    pieces_[region_offset] = {fd, fd_offset, length};
    return absl::OkStatus();
  }
  absl::Status Unmap(uint64_t region_offset, uint64_t) override {
    pieces_.erase(region_offset);
    return absl::OkStatus();
  }
  // Runs `f` on a mapping of the piece at `region_offset` (`len` bytes).
  bool With(uint64_t region_offset, uint64_t len, const std::function<void(uint8_t*)>& f) {
    auto it = pieces_.find(region_offset);
    if (it == pieces_.end() || it->second.len < len) return false;
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, it->second.fd,
                   static_cast<off_t>(it->second.fd_offset));
    if (p == MAP_FAILED) return false;
    f(static_cast<uint8_t*>(p));
    munmap(p, len);
    return true;
  }

 private:
  std::map<uint64_t, Piece> pieces_;
};

// The guest's VMM: SHMEM_MAP / SHMEM_UNMAP over the back-end channel.
class GuestMapper : public ShmRegionMapper {
 public:
  explicit GuestMapper(Channel channel) : channel_(std::move(channel)) {}
  absl::Status Map(uint64_t region_offset, int fd, uint64_t fd_offset, uint64_t length,
                   bool writable) override {
    vhost_user::ShmemMapMsg m;
    m.fd_offset = fd_offset;
    m.shm_offset = region_offset;
    m.len = length;
    m.flags = writable ? vhost_user::kShmemMapReadWrite : 0;
    return Call(BackendRequest::kShmemMap, m, fd);
  }
  absl::Status Unmap(uint64_t region_offset, uint64_t length) override {
    vhost_user::ShmemMapMsg m;
    m.shm_offset = region_offset;
    m.len = length;
    return Call(BackendRequest::kShmemUnmap, m, -1);
  }

 private:
  absl::Status Call(BackendRequest request, const vhost_user::ShmemMapMsg& m, int fd) {
    const MsgHeader h{static_cast<uint32_t>(request),
                      vhost_user::kVersion | vhost_user::kFlagNeedReply, sizeof(m)};
    const int fds[1] = {fd};
    if (absl::Status s = channel_.Send(
            h, Bytes(m), fd >= 0 ? std::span<const int>(fds, 1) : std::span<const int>());
        !s.ok()) {
      return s;
    }
    absl::StatusOr<Message> reply = channel_.Receive("the reply to a SHMEM request");
    if (!reply.ok()) return reply.status();
    uint64_t result = 0;
    if (reply->payload.size() != sizeof(result)) {
      return absl::InternalError("SHMEM reply is not a u64");
    }
    std::memcpy(&result, reply->payload.data(), sizeof(result));
    return result == 0 ? absl::OkStatus()
                       : absl::UnavailableError(absl::StrCat("rmem-vmm refused: ", result));
  }
  Channel channel_;
};

class Backend {
 public:
  Backend() {
    carveouts_ = {
        Carveout{.name = "video@70000000",
                 .base = PhysAddr(0x70000000),
                 .size = 32 * kMiB,
                 .use_case = "secure-video",
                 .max_align = 2 * kMiB},
        Carveout{.name = "ui@74000000",
                 .base = PhysAddr(0x74000000),
                 .size = 8 * kMiB,
                 .use_case = "secure-ui",
                 .max_align = kPageSize},
    };
    const Rights all = Rights::Of(Rights::kAllBits);
    const Rights rw = Rights::Of(Rights::kRead | Rights::kWrite);
    PolicyConfig policy;
    policy.vms = {VmConfig{.id = kGuest, .name = "guest"}, VmConfig{.id = kPeer, .name = "peer"}};
    policy.heaps = {
        HeapConfig{.name = "secure-video",
                   .carveouts = {"video@70000000"},
                   .cpu_map_allowed = true,
                   .owner_may_revoke = true,
                   .access = {HeapAccess{.vm = kGuest, .may_allocate = true, .max_rights = all},
                              HeapAccess{.vm = kPeer, .may_allocate = true, .max_rights = all}}},
        HeapConfig{.name = "device-only",
                   .carveouts = {"ui@74000000"},
                   .cpu_map_allowed = false,
                   .access = {HeapAccess{.vm = kGuest, .may_allocate = true, .max_rights = rw},
                              HeapAccess{.vm = kPeer, .may_allocate = true, .max_rights = rw}}},
    };
    absl::StatusOr<std::unique_ptr<CarveoutMemory>> memory = MakeMemfdCarveoutMemory(carveouts_);
    if (!memory.ok()) Die(memory.status().ToString());
    memory_ = *std::move(memory);
    scrubber_ = std::make_unique<CarveoutScrubber>(*memory_);
    stage2_ = std::make_unique<ShmRegionStage2>(*memory_);
    BrokerOptions options;
    options.max_receivers = 4;
    absl::StatusOr<std::unique_ptr<Broker>> broker = Broker::Create(
        carveouts_, policy, Backends{stage2_.get(), &firewall_, scrubber_.get()}, options);
    if (!broker.ok()) Die(broker.status().ToString());
    broker_ = *std::move(broker);
    device_ = std::make_unique<RmemDevice>(*broker_, kGuest);
    if (absl::Status s = stage2_->Attach(kPeer, kRegionSize, &peer_mapper_,
                                         [] { Die("the peer's mapping could not be removed"); });
        !s.ok()) {
      Die(s.ToString());
    }
    wake_ = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  }

  void Run(Channel& channel) {
    std::thread worker([this] { Work(); });
    ServeFrontend(channel);
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
      device_->GuestGone();
      stage2_->Detach(kGuest);
      Stats();
    }
    Wake();
    worker.join();
  }

 private:
  void Wake() {
    const uint64_t one = 1;
    if (write(wake_.get(), &one, sizeof(one)) < 0) {
      // A full counter still wakes the worker.
    }
  }

  void Stats() {
    const RmemDevice::Counters& c = device_->counters();
    Marker(absl::StrCat("RMEM-BACKEND-STATS requests=", c.requests, " failed=", c.failed,
                        " unanswerable=", c.unanswerable, " bad_chains=", bad_chains_,
                        " events=", events_delivered_));
  }

  // --- front-end messages (main thread) -----------------------------------

  void ServeFrontend(Channel& channel) {
    const uint64_t features = kFeatureVersion1 | (uint64_t{1} << vhost_user::kFProtocolFeatures) |
                              virtio_rmem::kOfferedFeatures;
    const uint64_t protocol = (uint64_t{1} << vhost_user::kProtocolMq) |
                              (uint64_t{1} << vhost_user::kProtocolReplyAck) |
                              (uint64_t{1} << vhost_user::kProtocolBackendReq) |
                              (uint64_t{1} << vhost_user::kProtocolConfig) |
                              (uint64_t{1} << vhost_user::kProtocolResetDevice) |
                              (uint64_t{1} << vhost_user::kProtocolShmem);
    for (;;) {
      absl::StatusOr<Message> msg = channel.Receive("a front-end request");
      if (!msg.ok()) return;  // rmem-vmm went away
      const auto request = static_cast<FrontendRequest>(msg->header.request);
      auto reply = [&](std::span<const uint8_t> payload) {
        const MsgHeader h{msg->header.request, vhost_user::kVersion | vhost_user::kFlagReply,
                          static_cast<uint32_t>(payload.size())};
        if (!channel.Send(h, payload).ok()) Die("cannot reply to the front-end");
      };
      uint64_t status = 0;
      switch (request) {
        case FrontendRequest::kGetFeatures:
          reply(Bytes(features));
          continue;
        case FrontendRequest::kGetProtocolFeatures:
          reply(Bytes(protocol));
          continue;
        case FrontendRequest::kGetQueueNum: {
          const uint64_t n = kNumQueues;
          reply(Bytes(n));
          continue;
        }
        case FrontendRequest::kGetShmemConfig: {
          vhost_user::ShmemConfig config;
          config.nregions = 1;
          config.memory_sizes[VIRTIO_RMEM_SHM_BUFFERS] = kRegionSize;
          reply(Bytes(config));
          continue;
        }
        case FrontendRequest::kGetConfig:
          reply(ConfigReply(msg->payload));
          continue;
        case FrontendRequest::kGetVringBase:
          reply(Bytes(StopRing(msg->payload)));
          continue;
        case FrontendRequest::kSetBackendReqFd:
          if (msg->fds.size() != 1) Die("SET_BACKEND_REQ_FD without an fd");
          AttachGuest(std::move(msg->fds[0]));
          break;
        case FrontendRequest::kSetFeatures:
          if (msg->payload.size() == sizeof(uint64_t)) {
            uint64_t f;
            std::memcpy(&f, msg->payload.data(), sizeof(f));
            std::lock_guard<std::mutex> lock(mu_);
            device_->SetFeatures(f);
          }
          break;
        case FrontendRequest::kSetMemTable: {
          std::lock_guard<std::mutex> lock(mu_);
          if (absl::Status s = memory_map_.Set(*msg); !s.ok()) {
            std::fprintf(stderr, "rmem-device-test-backend: %s\n", s.ToString().c_str());
            status = 1;
          }
          break;
        }
        case FrontendRequest::kSetVringNum:
        case FrontendRequest::kSetVringAddr:
        case FrontendRequest::kSetVringBase:
        case FrontendRequest::kSetVringKick:
        case FrontendRequest::kSetVringCall:
        case FrontendRequest::kSetVringEnable:
          status = SetRing(request, *msg) ? 0 : 1;
          Wake();
          break;
        case FrontendRequest::kResetDevice: {
          std::lock_guard<std::mutex> lock(mu_);
          // To the device, the guest forgot everything: it is gone (spec 7.9).
          device_->GuestGone();
          for (Vring& q : rings_) q = Vring{};
          pending_.clear();
          Marker("RMEM-BACKEND-RESET");
          Stats();
          break;
        }
        default:
          break;  // SET_OWNER, SET_PROTOCOL_FEATURES, SET_CONFIG...: accepted
      }
      if (msg->header.flags & vhost_user::kFlagNeedReply) reply(Bytes(status));
    }
  }

  void AttachGuest(Fd fd) {
    std::lock_guard<std::mutex> lock(mu_);
    guest_mapper_ = std::make_unique<GuestMapper>(
        Channel(std::move(fd), "rmem-vmm (back-end requests)", RequestSpace::kBackend));
    if (absl::Status s = stage2_->Attach(
            kGuest, kRegionSize, guest_mapper_.get(),
            [] { Die("rmem-vmm did not confirm an unmap: the guest must be stopped"); });
        !s.ok()) {
      Die(s.ToString());
    }
  }

  std::vector<uint8_t> ConfigReply(const std::vector<uint8_t>& request) {
    vhost_user::ConfigHeader h;
    if (request.size() < sizeof(h)) return {};
    std::memcpy(&h, request.data(), sizeof(h));
    std::vector<uint8_t> config;
    {
      std::lock_guard<std::mutex> lock(mu_);
      config = device_->Config();
    }
    if (uint64_t{h.offset} + h.size > vhost_user::kMaxConfigSize ||
        request.size() != sizeof(h) + h.size) {
      return {};
    }
    std::vector<uint8_t> out(request);
    for (uint32_t i = 0; i < h.size; ++i) {
      const uint32_t at = h.offset + i;
      out[sizeof(h) + i] = at < config.size() ? config[at] : 0;
    }
    return out;
  }

  vhost_user::VringState StopRing(const std::vector<uint8_t>& payload) {
    vhost_user::VringState state;
    if (payload.size() != sizeof(state)) return state;
    std::memcpy(&state, payload.data(), sizeof(state));
    std::lock_guard<std::mutex> lock(mu_);
    if (state.index < kNumQueues) {
      Vring& q = rings_[state.index];
      q.started = false;
      state.num = q.last_avail;
    }
    return state;
  }

  bool SetRing(FrontendRequest request, Message& msg) {
    std::lock_guard<std::mutex> lock(mu_);
    uint32_t index;
    if (request == FrontendRequest::kSetVringKick || request == FrontendRequest::kSetVringCall) {
      uint64_t v;
      if (msg.payload.size() != sizeof(v)) return false;
      std::memcpy(&v, msg.payload.data(), sizeof(v));
      index = static_cast<uint32_t>(v & vhost_user::kVringIndexMask);
      if (index >= kNumQueues) return false;
      Fd fd = (v & vhost_user::kVringNoFd) || msg.fds.empty() ? Fd() : std::move(msg.fds[0]);
      Vring& q = rings_[index];
      if (request == FrontendRequest::kSetVringCall) {
        q.call = std::move(fd);
        return true;
      }
      q.kick = std::move(fd);
      q.started = true;  // the kick fd starts the ring (vhost-user)
      return Resolve(q);
    }
    if (request == FrontendRequest::kSetVringAddr) {
      vhost_user::VringAddr a;
      if (msg.payload.size() != sizeof(a)) return false;
      std::memcpy(&a, msg.payload.data(), sizeof(a));
      if (a.index >= kNumQueues) return false;
      Vring& q = rings_[a.index];
      q.desc_uva = a.desc_user_addr;
      q.avail_uva = a.avail_user_addr;
      q.used_uva = a.used_user_addr;
      return true;
    }
    vhost_user::VringState s;
    if (msg.payload.size() != sizeof(s)) return false;
    std::memcpy(&s, msg.payload.data(), sizeof(s));
    if (s.index >= kNumQueues) return false;
    Vring& q = rings_[s.index];
    switch (request) {
      case FrontendRequest::kSetVringNum:
        if (s.num == 0 || s.num > 32768 || (s.num & (s.num - 1)) != 0) return false;
        q.num = s.num;
        return true;
      case FrontendRequest::kSetVringBase:
        q.last_avail = static_cast<uint16_t>(s.num);
        return true;
      default:  // kSetVringEnable
        q.enabled = s.num != 0;
        return true;
    }
  }

  // The ring's parts in our mapping of guest memory (mu_ held).
  bool Resolve(Vring& q) {
    q.desc = reinterpret_cast<VringDesc*>(memory_map_.Uva(q.desc_uva, 16ull * q.num));
    q.avail = reinterpret_cast<VringAvail*>(memory_map_.Uva(q.avail_uva, 6 + 2ull * q.num));
    q.used = reinterpret_cast<VringUsed*>(memory_map_.Uva(q.used_uva, 6 + 8ull * q.num));
    if (q.desc == nullptr || q.avail == nullptr || q.used == nullptr) {
      q.desc = nullptr;
      return false;
    }
    return true;
  }

  // --- rings (worker thread, mu_ held) ------------------------------------

  std::optional<Chain> Pop(Vring& q) {
    const uint16_t avail_idx = __atomic_load_n(&q.avail->idx, __ATOMIC_ACQUIRE);
    if (avail_idx == q.last_avail) return std::nullopt;
    Chain c;
    c.head = q.avail_ring(q.last_avail);
    ++q.last_avail;
    uint32_t i = c.head, count = 0;
    bool writing = false;
    for (;;) {
      if (i >= q.num || ++count > q.num) {
        c.bad = true;  // out of the table, or a loop
        break;
      }
      const VringDesc d = q.desc[i];
      uint8_t* p = memory_map_.Gpa(d.addr, d.len);
      if (p == nullptr || (d.flags & kDescIndirect)) {
        c.bad = true;
        break;
      }
      if (d.flags & kDescWrite) {
        writing = true;
        c.writable.emplace_back(p, d.len);
        c.capacity += d.len;
      } else if (writing || c.readable.size() + d.len > kMaxChainBytes) {
        c.bad = true;  // a readable descriptor after a writable one
        break;
      } else {
        c.readable.insert(c.readable.end(), p, p + d.len);
      }
      if (!(d.flags & kDescNext)) break;
      i = d.next;
    }
    return c;
  }

  static void Write(const Chain& c, std::span<const uint8_t> bytes) {
    size_t done = 0;
    for (const auto& [p, len] : c.writable) {
      const size_t n = std::min<size_t>(len, bytes.size() - done);
      std::memcpy(p, bytes.data() + done, n);
      done += n;
      if (done == bytes.size()) break;
    }
  }

  static void PushUsed(Vring& q, uint16_t head, uint32_t len) {
    const uint16_t idx = q.used->idx;
    q.used_ring(idx).id = head;
    q.used_ring(idx).len = len;
    __atomic_store_n(&q.used->idx, static_cast<uint16_t>(idx + 1), __ATOMIC_RELEASE);
  }

  static void Notify(Vring& q) {
    const uint64_t one = 1;
    if (q.call.valid() && write(q.call.get(), &one, sizeof(one)) < 0) {
      // The front-end's eventfd is gone; it will reset the device.
    }
  }

  void ProcessRequests() {
    Vring& q = rings_[VIRTIO_RMEM_VQ_REQUEST];
    if (!q.ready()) return;
    bool any = false;
    while (std::optional<Chain> c = Pop(q)) {
      uint32_t used = 0;
      if (c->bad) {
        ++bad_chains_;
      } else {
        const std::vector<uint8_t> response = device_->HandleRequest(c->readable, c->capacity);
        Write(*c, response);
        used = static_cast<uint32_t>(response.size());
      }
      PushUsed(q, c->head, used);
      any = true;
    }
    if (any) Notify(q);
  }

  void DeliverEvents() {
    while (std::optional<virtio_rmem_event> e = device_->NextEvent()) pending_.push_back(*e);
    Vring& q = rings_[VIRTIO_RMEM_VQ_EVENT];
    if (!q.ready()) return;
    bool any = false;
    while (!pending_.empty()) {
      std::optional<Chain> c = Pop(q);
      if (!c) break;
      any = true;
      if (c->bad || !c->readable.empty() || c->capacity < sizeof(virtio_rmem_event)) {
        ++bad_chains_;
        PushUsed(q, c->head, 0);  // spec 7.8: the event stays queued
        continue;
      }
      const virtio_rmem_event& e = pending_.front();
      Write(*c, {reinterpret_cast<const uint8_t*>(&e), sizeof(e)});
      PushUsed(q, c->head, sizeof(e));
      pending_.pop_front();
      ++events_delivered_;
    }
    if (any) Notify(q);
  }

  // --- the peer (worker thread, mu_ held) ---------------------------------

  void PeerOffer(int number, uint8_t fill, uint8_t rights) {
    absl::StatusOr<Allocation> a = broker_->Alloc(kPeer, "secure-video", kPeerBufSize, 0);
    if (!a.ok() || !a->mapped_at) {
      Marker(absl::StrCat("RMEM-BACKEND-PEER-OFFER ", number,
                          " error=", a.ok() ? "no mapping" : a.status().ToString()));
      return;
    }
    peer_mapper_.With(a->mapped_at->value(), kPeerBufSize,
                      [&](uint8_t* p) { std::memset(p, fill, kPeerBufSize); });
    const Offer to{kGuest, Rights::Of(rights)};
    absl::StatusOr<Handle> h = broker_->Share(kPeer, a->id, {&to, 1});
    if (!h.ok()) {
      Marker(absl::StrCat("RMEM-BACKEND-PEER-OFFER ", number, " error=", h.status().ToString()));
      (void)broker_->Free(kPeer, a->id);
      return;
    }
    peer_offer_ = a->id;
    peer_offer_at_ = a->mapped_at->value();
    peer_offer_no_ = number;
    Marker(absl::StrCat("RMEM-BACKEND-PEER-OFFER ", number, " handle=", Hex(h->value()),
                        " size=", Hex(kPeerBufSize), " fill=", Hex(fill), " rights=", Hex(rights)));
  }

  // "first=0x.. uniform=yes|no" of a buffer the peer can see.
  std::string Look(uint64_t region_offset, uint64_t size) {
    std::string out = "unmapped";
    peer_mapper_.With(region_offset, size, [&](uint8_t* p) {
      bool uniform = true;
      for (uint64_t i = 1; i < size; ++i) uniform = uniform && p[i] == p[0];
      out = absl::StrCat("first=0x", absl::Hex(p[0], absl::kZeroPad2),
                         " uniform=", uniform ? "yes" : "no");
    });
    return out;
  }

  void PeerTake(const Event& e) {
    absl::StatusOr<Retrieval> r = broker_->Retrieve(kPeer, e.handle);
    if (!r.ok()) {
      Marker(absl::StrCat("RMEM-BACKEND-PEER-READ error=", r.status().ToString()));
      return;
    }
    const char* kind = r->kind == TxnKind::kShare  ? "share"
                       : r->kind == TxnKind::kLend ? "lend"
                                                   : "donate";
    Marker(absl::StrCat("RMEM-BACKEND-PEER-READ ", kind, " size=", Hex(r->size_bytes), " ",
                        r->mapped_at ? Look(r->mapped_at->value(), r->size_bytes) : "device-only"));
    if (r->kind == TxnKind::kDonate) {
      absl::Status s = r->buffer ? broker_->Free(kPeer, *r->buffer)
                                 : absl::InternalError("a donation without its buffer");
      Marker(absl::StrCat("RMEM-BACKEND-PEER-FREED-DONATION ", s.ok() ? "ok" : s.ToString()));
      return;
    }
    absl::Status s = broker_->Relinquish(kPeer, e.handle);
    Marker(absl::StrCat("RMEM-BACKEND-PEER-RELINQUISHED ", s.ok() ? "ok" : s.ToString()));
  }

  void PeerDone(const char* what) {
    absl::Status s = broker_->Reclaim(
        kPeer, *peer_offer_,
        what == std::string("REVOKED") ? ReclaimMode::kRevoke : ReclaimMode::kWaitForBorrowers);
    absl::Status f = s.ok() ? broker_->Free(kPeer, *peer_offer_) : s;
    Marker(absl::StrCat("RMEM-BACKEND-PEER-", what, " ", peer_offer_no_, " reclaim=",
                        s.ok() ? "ok" : s.ToString(), " free=", f.ok() ? "ok" : f.ToString()));
    peer_offer_.reset();
  }

  void PeerStep() {
    if (!peer_started_ && rings_[VIRTIO_RMEM_VQ_EVENT].ready()) {
      peer_started_ = true;
      PeerOffer(1, kPeerFill, Rights::kRead | Rights::kCpuMap);
    }
    for (const Event& e : broker_->DrainEvents(kPeer, 64)) {
      switch (e.kind) {
        case EventKind::kOffered:
          PeerTake(e);
          break;
        case EventKind::kRetrieved:
          Marker(absl::StrCat("RMEM-BACKEND-PEER-EVENT retrieved handle=", Hex(e.handle.value())));
          if (peer_offer_ && e.buffer == *peer_offer_ && peer_offer_no_ == 1) {
            revoke_at_ = Clock::now() + kRevokeDelay;
          }
          break;
        case EventKind::kRelinquished:
          Marker(
              absl::StrCat("RMEM-BACKEND-PEER-EVENT relinquished handle=", Hex(e.handle.value())));
          if (peer_offer_ && e.buffer == *peer_offer_ && peer_offer_no_ == 2) {
            Marker(absl::StrCat("RMEM-BACKEND-PEER-SAW 2 ", Look(peer_offer_at_, kPeerBufSize)));
            PeerDone("RECLAIMED");
          }
          break;
        default:
          Marker(absl::StrCat("RMEM-BACKEND-PEER-EVENT ", EventKindName(e.kind)));
          break;
      }
    }
    if (revoke_at_ && Clock::now() >= *revoke_at_ && peer_offer_) {
      revoke_at_.reset();
      PeerDone("REVOKED");
      PeerOffer(2, 0x00, Rights::kRead | Rights::kWrite | Rights::kCpuMap);
    }
  }

  void Work() {
    for (;;) {
      int kicks[kNumQueues];
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (quit_) return;
        for (int i = 0; i < kNumQueues; ++i) {
          kicks[i] = rings_[i].ready() ? rings_[i].kick.get() : -1;
        }
      }
      pollfd fds[1 + kNumQueues] = {{wake_.get(), POLLIN, 0}};
      for (int i = 0; i < kNumQueues; ++i) fds[1 + i] = {kicks[i], POLLIN, 0};
      poll(fds, 1 + kNumQueues, 50);  // the peer's timer needs a tick
      uint64_t drained;
      for (const pollfd& p : fds) {
        if (p.fd >= 0 && (p.revents & POLLIN) && read(p.fd, &drained, sizeof(drained)) < 0) {
          // EAGAIN: another reader took it.
        }
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (quit_) return;
      ProcessRequests();
      PeerStep();
      DeliverEvents();
    }
  }

  std::vector<Carveout> carveouts_;
  std::unique_ptr<CarveoutMemory> memory_;
  std::unique_ptr<CarveoutScrubber> scrubber_;
  std::unique_ptr<ShmRegionStage2> stage2_;
  NullFirewall firewall_;
  std::unique_ptr<Broker> broker_;
  PeerMapper peer_mapper_;
  Fd wake_;

  std::mutex mu_;  // everything below, and every broker call
  bool quit_ = false;
  std::unique_ptr<RmemDevice> device_;
  std::unique_ptr<GuestMapper> guest_mapper_;
  GuestMemory memory_map_;
  Vring rings_[kNumQueues];
  std::deque<virtio_rmem_event> pending_;
  uint64_t bad_chains_ = 0, events_delivered_ = 0;
  bool peer_started_ = false;
  std::optional<BufferId> peer_offer_;
  uint64_t peer_offer_at_ = 0;
  int peer_offer_no_ = 0;
  std::optional<Clock::time_point> revoke_at_;
};

int Main(int argc, char** argv) {
  std::string socket_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--socket" && i + 1 < argc) {
      socket_path = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: rmem-device-test-backend --socket PATH\n"
                   "TEST ONLY: the virtio-rmem device (VIRTIO ID %u) over vhost-user for one\n"
                   "guest, on memfd carve-outs, with a scripted peer VM; see its source.\n",
                   VIRTIO_ID_RMEM);
      return a == "--help" ? 0 : 2;
    }
  }
  if (socket_path.empty()) Die("--socket PATH is required");
  Backend backend;
  Fd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) Die("socket path too long");
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  unlink(socket_path.c_str());
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener.get(), 1) != 0) {
    Die(absl::StrCat("cannot listen on ", socket_path, ": ", std::strerror(errno)));
  }
  Fd conn(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn.valid()) Die("accept failed");
  Channel channel(std::move(conn), "rmem-vmm", RequestSpace::kFrontend);
  backend.Run(channel);
  unlink(socket_path.c_str());
  return 0;
}

}  // namespace
}  // namespace rmem::vmm::testing

int main(int argc, char** argv) { return rmem::vmm::testing::Main(argc, argv); }

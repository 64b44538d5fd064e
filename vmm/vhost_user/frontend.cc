#include "vmm/vhost_user/frontend.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "broker/check.h"
#include "base/eventfd.h"
#include "base/sys_error.h"

namespace rmem::vmm {
namespace {

using vhost_user::BackendRequest;
using vhost_user::Bytes;
using vhost_user::Channel;
using vhost_user::FrontendRequest;
using vhost_user::Message;
using vhost_user::MsgHeader;
using vhost_user::RequestSpace;

constexpr absl::Duration kConnectTimeout = absl::Seconds(5);
constexpr absl::Duration kConnectRetry = absl::Milliseconds(10);
constexpr int kVirtioFRingPacked = 34;

constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }

// Send and receive time limits on `fd`; zero: none.
void SetSocketTimeout(int fd, absl::Duration d) {
  const timeval tv = absl::ToTimeval(d);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

const char* Name(FrontendRequest r) {
  return vhost_user::RequestName(RequestSpace::kFrontend, static_cast<uint32_t>(r));
}

// One connect attempt; the errno of a failure is left in errno.
Fd ConnectOnce(const std::string& path) {
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  while (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINTR) return Fd();
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<VhostUserFrontend>> VhostUserFrontend::Connect(
    const std::string& socket_path, uint32_t device_id, const GuestMemory& ram,
    ShmemMapper* mapper, int num_queues_hint) {
  const std::string peer = absl::StrCat("vhost-user backend ", socket_path);
  if (socket_path.empty() || socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(peer, ": the socket path must be 1 to ",
                                                   sizeof(sockaddr_un::sun_path) - 1, " bytes"));
  }
  // The back-end may still be starting: wait for its socket, but not forever.
  const absl::Time deadline = absl::Now() + kConnectTimeout;
  Fd sock;
  for (;;) {
    sock = ConnectOnce(socket_path);
    if (sock.valid()) break;
    const int err = errno;
    if ((err != ENOENT && err != ECONNREFUSED) || absl::Now() >= deadline) {
      return ErrnoError(absl::StrCat("connecting to ", peer, " (tried for ",
                                     absl::FormatDuration(kConnectTimeout), ")"),
                        err);
    }
    absl::SleepFor(kConnectRetry);
  }
  std::unique_ptr<VhostUserFrontend> frontend(new VhostUserFrontend(
      socket_path, device_id, ram, mapper, Channel(std::move(sock), peer, RequestSpace::kFrontend)));
  frontend->failure_ = MakeEventFd();
  frontend->stop_ = MakeEventFd();
  frontend->wake_ = MakeEventFd();
  frontend->abandon_ = MakeEventFd();
  if (!frontend->failure_.valid() || !frontend->stop_.valid() || !frontend->wake_.valid() ||
      !frontend->abandon_.valid()) {
    return ErrnoError("eventfd");
  }
  absl::MutexLock lock(&frontend->mu_);
  if (absl::Status s = frontend->NegotiateLocked(num_queues_hint, /*again=*/false, nullptr);
      !s.ok()) {
    return s;
  }
  return frontend;
}

VhostUserFrontend::~VhostUserFrontend() {
  if (service_thread_.joinable()) {
    Abandon();                   // a reconnect under way ends
    SignalEventFd(stop_.get());  // never drained: ends the service thread
    service_thread_.join();
  }
  if (reconnect_thread_.joinable()) reconnect_thread_.join();
}

void VhostUserFrontend::SetReconnectTimeout(absl::Duration timeout) {
  RMEM_CHECK(!service_thread_.joinable());
  reconnect_timeout_ = timeout;
}

absl::Status VhostUserFrontend::NegotiateLocked(int num_queues_hint, bool again,
                                                bool* other_device) {
  reply_ack_ = false;
  // On a reconnect every answer must be the one the device gave before.
  auto changed = [&](absl::string_view what, uint64_t before, uint64_t now) {
    if (other_device != nullptr) *other_device = true;
    return Poison(absl::FailedPreconditionError(absl::StrCat(
        channel_.peer(), " came back as another device: its ", what, " changed from 0x",
        absl::Hex(before), " to 0x", absl::Hex(now))));
  };
  absl::StatusOr<uint64_t> features = GetU64Locked(FrontendRequest::kGetFeatures);
  if (!features.ok()) return features.status();
  if (again && *features != backend_features_) {
    return changed("features", backend_features_, *features);
  }

  uint64_t offered = 0;
  uint64_t wanted = 0;
  if (*features & Bit(vhost_user::kFProtocolFeatures)) {
    absl::StatusOr<uint64_t> got = GetU64Locked(FrontendRequest::kGetProtocolFeatures);
    if (!got.ok()) return got.status();
    offered = *got;
    wanted = offered & kSupportedProtocolFeatures;
    if (again && wanted != protocol_features_) {
      return changed("protocol features", protocol_features_, wanted);
    }
    // Sent before REPLY_ACK is in force, so without need_reply.
    if (absl::Status s = SetU64Locked(FrontendRequest::kSetProtocolFeatures, wanted); !s.ok()) {
      return s;
    }
    reply_ack_ = (wanted & Bit(vhost_user::kProtocolReplyAck)) != 0;
  }
  auto has = [wanted](int bit) { return ((wanted >> bit) & 1) != 0; };

  int num_queues = num_queues_;
  if (has(vhost_user::kProtocolMq)) {
    absl::StatusOr<uint64_t> n = GetU64Locked(FrontendRequest::kGetQueueNum);
    if (!n.ok()) return n.status();
    if (*n == 0 || *n > static_cast<uint64_t>(kMaxQueues)) {
      return Poison(absl::InvalidArgumentError(absl::StrCat(
          channel_.peer(), " answered GET_QUEUE_NUM with ", *n, " (want 1 to ", kMaxQueues, ")")));
    }
    if (again && *n != static_cast<uint64_t>(num_queues_)) {
      return changed("queue count", static_cast<uint64_t>(num_queues_), *n);
    }
    num_queues = static_cast<int>(*n);
  } else if (!again) {
    if (num_queues_hint < 1 || num_queues_hint > kMaxQueues) {
      return absl::InvalidArgumentError(absl::StrCat(channel_.peer(), ": queue count hint ",
                                                     num_queues_hint, " is not 1 to ", kMaxQueues));
    }
    num_queues = num_queues_hint;
  }

  if (absl::Status s = RequestLocked(FrontendRequest::kSetOwner, {}); !s.ok()) return s;

  std::unique_ptr<Channel> backend_channel;
  if (has(vhost_user::kProtocolBackendReq)) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      return ErrnoError(absl::StrCat("creating the back-end request socket for ", channel_.peer()));
    }
    Fd ours(pair[0]);
    Fd theirs(pair[1]);
    const int fd = theirs.get();
    if (absl::Status s = RequestLocked(FrontendRequest::kSetBackendReqFd, {}, {&fd, 1}); !s.ok()) {
      return s;
    }
    backend_channel = std::make_unique<Channel>(
        std::move(ours), absl::StrCat(channel_.peer(), " (back-end requests)"),
        RequestSpace::kBackend);
  }

  std::vector<ShmRegionInfo> shm_regions;
  if (has(vhost_user::kProtocolShmem)) {
    absl::StatusOr<Message> reply =
        CallLocked(FrontendRequest::kGetShmemConfig, {}, sizeof(vhost_user::ShmemConfig));
    if (!reply.ok()) return reply.status();
    vhost_user::ShmemConfig config;
    std::memcpy(&config, reply->payload.data(), sizeof(config));
    if (config.nregions > vhost_user::kMaxShmemRegions) {
      return Poison(absl::InvalidArgumentError(
          absl::StrCat(channel_.peer(), " answered GET_SHMEM_CONFIG with nregions ",
                       config.nregions, " (at most ", vhost_user::kMaxShmemRegions, ")")));
    }
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    for (uint32_t id = 0; id < config.nregions; ++id) {
      const uint64_t size = config.memory_sizes[id];
      if (size == 0) continue;  // an unused id below a used one
      if (size % page != 0) {
        return Poison(absl::InvalidArgumentError(
            absl::StrCat(channel_.peer(), " answered GET_SHMEM_CONFIG with region ", id, " of ",
                         size, " bytes: not a multiple of the page size ", page)));
      }
      shm_regions.push_back({static_cast<uint8_t>(id), size});
    }
  }
  if (again) {
    for (size_t i = 0; i < std::max(shm_regions.size(), shm_regions_.size()); ++i) {
      const ShmRegionInfo before = i < shm_regions_.size() ? shm_regions_[i] : ShmRegionInfo{};
      const ShmRegionInfo now = i < shm_regions.size() ? shm_regions[i] : ShmRegionInfo{};
      if (before.id != now.id || before.size != now.size) {
        return changed(absl::StrCat("shared memory region ", before.id, " size"), before.size,
                       now.size);
      }
    }
    // Its requests wait in the socket until the service thread has it.
    HandOver(std::move(backend_channel), -1);
    return absl::OkStatus();
  }
  backend_features_ = *features;
  offered_protocol_features_ = offered;
  protocol_features_ = wanted;
  num_queues_ = num_queues;
  shm_regions_ = std::move(shm_regions);
  backend_channel_ = std::move(backend_channel);
  return absl::OkStatus();
}

uint64_t VhostUserFrontend::device_features() const {
  return backend_features_ & ~(Bit(vhost_user::kFProtocolFeatures) | Bit(vhost_user::kFLogAll));
}

absl::Status VhostUserFrontend::Poison(absl::Status s) {
  if (!broken_) broken_ = s;
  return s;
}

absl::Status VhostUserFrontend::SendLocked(FrontendRequest request, uint32_t flags,
                                           std::span<const uint8_t> payload,
                                           std::span<const int> fds) {
  if (broken_) return *broken_;
  const MsgHeader header{static_cast<uint32_t>(request), vhost_user::kVersion | flags,
                         static_cast<uint32_t>(payload.size())};
  if (absl::Status s = channel_.Send(header, payload, fds); !s.ok()) return Poison(s);
  return absl::OkStatus();
}

absl::StatusOr<Message> VhostUserFrontend::ReceiveReplyLocked(FrontendRequest request) {
  absl::StatusOr<Message> reply = channel_.Receive(absl::StrCat("the reply to ", Name(request)));
  if (!reply.ok()) return Poison(reply.status());
  if (reply->header.request != static_cast<uint32_t>(request) ||
      (reply->header.flags & vhost_user::kFlagReply) == 0) {
    return Poison(absl::InvalidArgumentError(absl::StrCat(
        channel_.peer(), " sent request ", reply->header.request, " flags 0x",
        absl::Hex(reply->header.flags), " where the reply to ", Name(request), " was due")));
  }
  return reply;
}

absl::Status VhostUserFrontend::RequestLocked(FrontendRequest request,
                                              std::span<const uint8_t> payload,
                                              std::span<const int> fds) {
  const bool ack = reply_ack_;
  if (absl::Status s = SendLocked(request, ack ? vhost_user::kFlagNeedReply : 0, payload, fds);
      !s.ok()) {
    return s;
  }
  if (!ack) return absl::OkStatus();
  absl::StatusOr<Message> reply = ReceiveReplyLocked(request);
  if (!reply.ok()) return reply.status();
  if (reply->payload.size() != sizeof(uint64_t)) {
    return Poison(absl::InvalidArgumentError(
        absl::StrCat(channel_.peer(), " acked ", Name(request), " with a ",
                     reply->payload.size(), "-byte payload (want 8)")));
  }
  uint64_t status;
  std::memcpy(&status, reply->payload.data(), sizeof(status));
  if (status != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(channel_.peer(), " refused ", Name(request), " (ack status ", status, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Message> VhostUserFrontend::CallLocked(FrontendRequest request,
                                                      std::span<const uint8_t> payload,
                                                      size_t reply_size, bool exact) {
  if (absl::Status s = SendLocked(request, 0, payload, {}); !s.ok()) return s;
  absl::StatusOr<Message> reply = ReceiveReplyLocked(request);
  if (!reply.ok()) return reply.status();
  const size_t got = reply->payload.size();
  if (exact ? got != reply_size : got > reply_size) {
    return Poison(absl::InvalidArgumentError(
        absl::StrCat(channel_.peer(), " answered ", Name(request), " with a ", got,
                     "-byte payload (want ", exact ? "" : "at most ", reply_size, ")")));
  }
  return reply;
}

absl::StatusOr<uint64_t> VhostUserFrontend::GetU64Locked(FrontendRequest request) {
  absl::StatusOr<Message> reply = CallLocked(request, {}, sizeof(uint64_t));
  if (!reply.ok()) return reply.status();
  uint64_t value;
  std::memcpy(&value, reply->payload.data(), sizeof(value));
  return value;
}

absl::Status VhostUserFrontend::SetU64Locked(FrontendRequest request, uint64_t value,
                                             std::span<const int> fds) {
  return RequestLocked(request, Bytes(value), fds);
}

absl::Status VhostUserFrontend::ReadConfig(uint32_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  absl::MutexLock lock(&mu_);
  if (broken_) return *broken_;
  if (!HasProtocolFeature(vhost_user::kProtocolConfig)) {
    return absl::UnimplementedError(
        absl::StrCat(channel_.peer(), " did not negotiate CONFIG: config space reads as zeros"));
  }
  // Like QEMU, read from offset 0: libvhost-user back-ends ignore the offset.
  const uint64_t end = uint64_t{offset} + data.size();
  if (end > vhost_user::kMaxConfigSize) {
    return absl::InvalidArgumentError(absl::StrCat("config read of ", data.size(), " bytes at ",
                                                   offset, " passes the ",
                                                   vhost_user::kMaxConfigSize, "-byte limit"));
  }
  std::vector<uint8_t> request(sizeof(vhost_user::ConfigHeader) + end, 0);
  const vhost_user::ConfigHeader header{0, static_cast<uint32_t>(end),
                                        vhost_user::kConfigFlagWritable};
  std::memcpy(request.data(), &header, sizeof(header));
  absl::StatusOr<Message> reply = CallLocked(FrontendRequest::kGetConfig, request,
                                             request.size(), /*exact=*/false);
  if (!reply.ok()) return reply.status();
  vhost_user::ConfigHeader got{};
  if (reply->payload.size() == request.size()) {
    std::memcpy(&got, reply->payload.data(), sizeof(got));
  }
  if (reply->payload.size() != request.size() || got.size != end) {
    // A zero-size payload is how a back-end reports that it failed.
    return absl::InvalidArgumentError(absl::StrCat(
        channel_.peer(), " answered GET_CONFIG for ", end, " bytes with a ",
        reply->payload.size(), "-byte payload (config size ", got.size, ")"));
  }
  std::memcpy(data.data(), reply->payload.data() + sizeof(got) + offset, data.size());
  return absl::OkStatus();
}

absl::Status VhostUserFrontend::WriteConfig(uint32_t offset, std::span<const uint8_t> data) {
  absl::MutexLock lock(&mu_);
  if (broken_) return *broken_;
  if (!HasProtocolFeature(vhost_user::kProtocolConfig)) {
    return absl::UnimplementedError(
        absl::StrCat(channel_.peer(), " did not negotiate CONFIG: config write dropped"));
  }
  if (uint64_t{offset} + data.size() > vhost_user::kMaxConfigSize) {
    return absl::InvalidArgumentError(absl::StrCat("config write of ", data.size(), " bytes at ",
                                                   offset, " passes the ",
                                                   vhost_user::kMaxConfigSize, "-byte limit"));
  }
  std::vector<uint8_t> request(sizeof(vhost_user::ConfigHeader) + data.size());
  const vhost_user::ConfigHeader header{offset, static_cast<uint32_t>(data.size()),
                                        vhost_user::kConfigFlagWritable};
  std::memcpy(request.data(), &header, sizeof(header));
  if (!data.empty()) std::memcpy(request.data() + sizeof(header), data.data(), data.size());
  return RequestLocked(FrontendRequest::kSetConfig, request);
}

absl::Status VhostUserFrontend::Start(uint64_t driver_features,
                                      std::span<const VirtqueueSetup> queues) {
  absl::MutexLock lock(&mu_);
  if (broken_) return *broken_;
  if (started_ || !started_queues_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(channel_.peer(), ": Start while started (Stop first)"));
  }
  if ((driver_features & ~device_features()) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        channel_.peer(), ": driver features 0x", absl::Hex(driver_features),
        " include bits the device does not offer (0x", absl::Hex(driver_features & ~device_features()),
        ")"));
  }
  // Check every queue before telling the back-end anything.
  std::vector<bool> seen(static_cast<size_t>(num_queues_), false);
  const bool packed = (driver_features & Bit(kVirtioFRingPacked)) != 0;
  for (const VirtqueueSetup& q : queues) {
    if (q.index < 0 || q.index >= num_queues_ || seen[static_cast<size_t>(q.index)]) {
      return absl::InvalidArgumentError(absl::StrCat(channel_.peer(), ": queue index ", q.index,
                                                     " is out of range (", num_queues_,
                                                     " queues) or repeated"));
    }
    seen[static_cast<size_t>(q.index)] = true;
    if (q.size == 0 || q.size > kMaxQueueSize) {
      return absl::InvalidArgumentError(absl::StrCat(channel_.peer(), ": queue ", q.index,
                                                     " size ", q.size, " is not 1 to ",
                                                     kMaxQueueSize));
    }
    const uint64_t n = q.size;
    const struct {
      const char* name;
      GuestAddr addr;
      uint64_t len;
    } parts[] = {
        {"descriptor table", q.desc, 16 * n},
        {"driver area", q.driver, packed ? 4 : 6 + 2 * n},
        {"device area", q.device, packed ? 4 : 6 + 8 * n},
    };
    for (const auto& part : parts) {
      if (absl::StatusOr<std::span<uint8_t>> s = ram_.Slice(part.addr, part.len); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(channel_.peer(), ": queue ", q.index, " ",
                                                       part.name, ": ", s.status().message()));
      }
    }
  }

  uint64_t features = driver_features;
  if (backend_features_ & Bit(vhost_user::kFProtocolFeatures)) {
    features |= Bit(vhost_user::kFProtocolFeatures);
  }
  if (absl::Status s = SetU64Locked(FrontendRequest::kSetFeatures, features); !s.ok()) return s;

  if (absl::Status s = SetMemTableLocked(); !s.ok()) return s;
  started_features_ = driver_features;
  started_setup_.clear();
  started_fds_.clear();
  for (const VirtqueueSetup& q : queues) {
    if (absl::Status s = StartQueueLocked(q, 0); !s.ok()) return s;
    // Kept for a reconnect, with fds of our own: the transport's may be
    // closed while a reconnect is under way at shutdown.
    VirtqueueSetup kept = q;
    for (int* fd : {&kept.kick_fd, &kept.call_fd}) {
      if (*fd < 0) continue;
      started_fds_.emplace_back(fcntl(*fd, F_DUPFD_CLOEXEC, 0));
      if (!started_fds_.back().valid()) return ErrnoError("dup of a virtqueue eventfd");
      *fd = started_fds_.back().get();
    }
    started_setup_.push_back(kept);
  }
  started_ = true;
  return absl::OkStatus();
}

absl::Status VhostUserFrontend::SetMemTableLocked() {
  vhost_user::MemoryTable table;
  table.nregions = 1;
  table.regions[0] = {ram_.base().value(), ram_.size(),
                      reinterpret_cast<uint64_t>(ram_.host_base()), 0};
  const size_t table_size = offsetof(vhost_user::MemoryTable, regions) + sizeof(table.regions[0]);
  const int ram_fd = ram_.fd();
  return RequestLocked(FrontendRequest::kSetMemTable, Bytes(table).first(table_size),
                       {&ram_fd, 1});
}

absl::Status VhostUserFrontend::RestartLocked() {
  started_queues_.clear();
  if (!started_) return absl::OkStatus();
  if ((started_features_ & Bit(kVirtioFRingPacked)) != 0) {
    return absl::UnimplementedError(absl::StrCat(
        channel_.peer(), ": packed rings cannot be resumed (their position is not in guest memory)"));
  }
  uint64_t features = started_features_;
  if (backend_features_ & Bit(vhost_user::kFProtocolFeatures)) {
    features |= Bit(vhost_user::kFProtocolFeatures);
  }
  if (absl::Status s = SetU64Locked(FrontendRequest::kSetFeatures, features); !s.ok()) return s;
  if (absl::Status s = SetMemTableLocked(); !s.ok()) return s;
  for (const VirtqueueSetup& q : started_setup_) {
    // The used ring's idx (after its flags): every request before it was
    // answered; the ones after it are served again.
    absl::StatusOr<std::span<uint8_t>> used = ram_.Slice(q.device, 4);
    if (!used.ok()) return used.status();  // checked in Start: cannot happen
    uint16_t used_idx;
    std::memcpy(&used_idx, used->data() + 2, sizeof(used_idx));
    if (absl::Status s = StartQueueLocked(q, used_idx); !s.ok()) return s;
  }
  // A kick the old back-end took but never acted on, a call it never made:
  // both are harmless when spurious.
  for (const VirtqueueSetup& q : started_setup_) {
    if (q.kick_fd >= 0) SignalEventFd(q.kick_fd);
    if (q.call_fd >= 0) SignalEventFd(q.call_fd);
  }
  return absl::OkStatus();
}

absl::Status VhostUserFrontend::StartQueueLocked(const VirtqueueSetup& q, uint16_t ring_base) {
  const uint32_t index = static_cast<uint32_t>(q.index);
  auto host = [&](GuestAddr addr) {
    // Checked in Start.
    return reinterpret_cast<uint64_t>(ram_.Slice(addr, 0)->data());
  };
  const vhost_user::VringState num{index, q.size};
  if (absl::Status s = RequestLocked(FrontendRequest::kSetVringNum, Bytes(num)); !s.ok()) return s;
  const vhost_user::VringAddr addr{index, 0, host(q.desc), host(q.device), host(q.driver), 0};
  if (absl::Status s = RequestLocked(FrontendRequest::kSetVringAddr, Bytes(addr)); !s.ok()) {
    return s;
  }
  const vhost_user::VringState base{index, ring_base};
  if (absl::Status s = RequestLocked(FrontendRequest::kSetVringBase, Bytes(base)); !s.ok()) {
    return s;
  }
  auto set_fd = [&](FrontendRequest request, int fd) {
    if (fd < 0) return SetU64Locked(request, index | vhost_user::kVringNoFd);
    return SetU64Locked(request, index, {&fd, 1});
  };
  if (absl::Status s = set_fd(FrontendRequest::kSetVringKick, q.kick_fd); !s.ok()) return s;
  started_queues_.push_back(q.index);  // the kick fd started the ring: Stop must stop it
  if (absl::Status s = set_fd(FrontendRequest::kSetVringCall, q.call_fd); !s.ok()) return s;
  if (backend_features_ & Bit(vhost_user::kFProtocolFeatures)) {
    // With protocol features rings start disabled.
    const vhost_user::VringState enable{index, 1};
    if (absl::Status s = RequestLocked(FrontendRequest::kSetVringEnable, Bytes(enable)); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status VhostUserFrontend::Stop() {
  absl::MutexLock lock(&mu_);
  if (broken_) return *broken_;
  while (!started_queues_.empty()) {
    const vhost_user::VringState state{static_cast<uint32_t>(started_queues_.back()), 0};
    absl::StatusOr<Message> reply =
        CallLocked(FrontendRequest::kGetVringBase, Bytes(state), sizeof(vhost_user::VringState));
    if (!reply.ok()) return reply.status();
    started_queues_.pop_back();
  }
  started_ = false;
  started_setup_.clear();
  started_fds_.clear();
  if (HasProtocolFeature(vhost_user::kProtocolResetDevice)) {
    return RequestLocked(FrontendRequest::kResetDevice, {});
  }
  return absl::OkStatus();
}

void VhostUserFrontend::StartServing() {
  RMEM_CHECK(!service_thread_.joinable());
  int watch_fd;
  {
    absl::MutexLock lock(&mu_);
    watch_fd = channel_.fd();
  }
  service_thread_ = std::thread([this, watch_fd] { Serve(watch_fd); });
}

void VhostUserFrontend::Serve(int watch_fd) {
  // POLLRDHUP alone: the main socket's replies are read by request callers
  // under mu_; this thread only notices the back-end hanging up.
  pollfd fds[4] = {{stop_.get(), POLLIN, 0},
                   {watch_fd, POLLRDHUP, 0},
                   {backend_channel_ ? backend_channel_->fd() : -1, POLLIN, 0},
                   {wake_.get(), POLLIN, 0}};
  for (;;) {
    if (poll(fds, 4, -1) < 0) {
      RMEM_CHECK(errno == EINTR);
      continue;
    }
    if (fds[0].revents) return;
    if (fds[3].revents & POLLIN) {
      uint64_t drained;
      (void)!read(wake_.get(), &drained, sizeof(drained));
      absl::MutexLock lock(&handover_mu_);
      if (handed_channel_) {
        backend_channel_ = std::move(handed_channel_);
        fds[2].fd = backend_channel_->fd();
        fds[2].revents = 0;
      }
      if (handed_watch_fd_ >= 0) {
        fds[1].fd = handed_watch_fd_;  // level-triggered: a hang-up meanwhile shows at once
        fds[1].revents = 0;
        handed_watch_fd_ = -1;
      }
    }
    if ((fds[2].revents & (POLLIN | POLLHUP | POLLERR)) && !ServeOneBackendRequest()) {
      fds[2].fd = -1;
    }
    if (fds[1].fd >= 0 && (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      fds[1].fd = -1;  // said once per connection
      fds[2].fd = -1;  // the back-end is gone
      backend_channel_.reset();
      OnHangUp();
    }
  }
}

void VhostUserFrontend::OnHangUp() {
  if (reconnect_timeout_ <= absl::ZeroDuration() && mapper_ != nullptr) {
    // Nothing the gone back-end granted stays reachable: its pieces go (an
    // rmemd that exited has revoked them already), and a guest access to
    // them is a violation from now on, not a wait.
    mapper_->Suspend();
    mapper_->Resume();
  }
  if (reconnect_timeout_ <= absl::ZeroDuration() || !Pause(absl::ZeroDuration())) {
    std::fprintf(stderr,
                 "rmem-vmm: vhost-user backend %s disconnected; its device needs a reset%s\n",
                 path_.c_str(),
                 reconnect_timeout_ <= absl::ZeroDuration() ? " (reconnect is off)" : "");
    SignalEventFd(failure_.get());
    return;
  }
  std::fprintf(stderr,
               "rmem-vmm: vhost-user backend %s disconnected; reconnecting for up to %s\n",
               path_.c_str(), absl::FormatDuration(reconnect_timeout_).c_str());
  // Nothing the gone back-end granted stays reachable until the one that
  // comes back says so again.
  if (mapper_ != nullptr) mapper_->Suspend();
  // The last reconnect has ended: the service thread watches a connection
  // only once it is complete, and this is the one that hung up.
  if (reconnect_thread_.joinable()) reconnect_thread_.join();
  reconnect_thread_ = std::thread([this] { Reconnect(); });
}

bool VhostUserFrontend::Pause(absl::Duration d) const {
  pollfd p[2] = {{stop_.get(), POLLIN, 0}, {abandon_.get(), POLLIN, 0}};
  return poll(p, 2, static_cast<int>(absl::ToInt64Milliseconds(d))) == 0;
}

void VhostUserFrontend::Abandon() {
  SignalEventFd(abandon_.get());
  absl::MutexLock lock(&reconnect_fd_mu_);
  abandoned_ = true;
  if (reconnect_fd_ >= 0) shutdown(reconnect_fd_, SHUT_RDWR);  // ends a wait for a reply
}

void VhostUserFrontend::HandOver(std::unique_ptr<Channel> backend_channel, int watch_fd) {
  {
    absl::MutexLock lock(&handover_mu_);
    if (backend_channel) handed_channel_ = std::move(backend_channel);
    if (watch_fd >= 0) handed_watch_fd_ = watch_fd;
  }
  SignalEventFd(wake_.get());
}

void VhostUserFrontend::Reconnect() {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + reconnect_timeout_;
  absl::Duration backoff = absl::Milliseconds(10);
  const std::string peer = absl::StrCat("vhost-user backend ", path_);
  absl::Status last = absl::UnavailableError("not tried");
  int attempts = 0;
  bool stopping = false;
  absl::MutexLock lock(&mu_);  // device calls wait until the device is back
  for (;;) {
    if (!Pause(absl::ZeroDuration())) {
      stopping = true;  // the VM stops, or the frontend is being destroyed
      break;
    }
    ++attempts;
    Fd sock = ConnectOnce(path_);
    bool other_device = false;
    if (!sock.valid()) {
      last = ErrnoError(absl::StrCat("connecting to ", peer), errno);
    } else {
      // A back-end that accepts and then says nothing must not hold the
      // reconnect past its deadline (nor Abandon and the destructor, which
      // shut the socket down).
      SetSocketTimeout(sock.get(), std::max(deadline - absl::Now(), absl::Milliseconds(1)));
      {
        // Under the lock Abandon takes: either it sees this socket and shuts
        // it down, or this sees that it ran (it may have between the check
        // at the top of the loop and the connect).
        absl::MutexLock fd_lock(&reconnect_fd_mu_);
        if (abandoned_) {
          stopping = true;
          break;
        }
        reconnect_fd_ = sock.get();
      }
      channel_ = Channel(std::move(sock), peer, RequestSpace::kFrontend);
      broken_.reset();
      last = NegotiateLocked(num_queues_, /*again=*/true, &other_device);
      if (last.ok()) last = RestartLocked();
      {
        absl::MutexLock fd_lock(&reconnect_fd_mu_);
        reconnect_fd_ = -1;
      }
      if (last.ok()) {
        SetSocketTimeout(channel_.fd(), absl::ZeroDuration());  // none from now on
        break;
      }
      if (other_device) break;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    if (!Pause(std::min(backoff, left))) {
      stopping = true;
      break;
    }
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
  if (!last.ok() || stopping) {
    const absl::Status why = absl::UnavailableError(
        stopping ? absl::StrCat(peer, " disconnected and the VM is stopping")
                 : absl::StrCat(peer, " disconnected and did not come back as the same device "
                                      "within ",
                                absl::FormatDuration(reconnect_timeout_), " (", attempts,
                                " attempts; last: ", last.message(), ")"));
    broken_ = why;
    if (!stopping) {
      std::fprintf(stderr, "rmem-vmm: %s; its device needs a reset\n",
                   std::string(why.message()).c_str());
    }
    if (mapper_ != nullptr) mapper_->Resume();  // empty: accesses that waited now fault
    SignalEventFd(failure_.get());
    return;
  }
  if (mapper_ != nullptr) mapper_->Resume();
  reconnects_.fetch_add(1);
  std::fprintf(stderr, "rmem-vmm: %s: reconnected after %s (%d attempts, %zu rings resumed)\n",
               peer.c_str(),
               absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))).c_str(),
               attempts, started_queues_.size());
  HandOver(nullptr, channel_.fd());
}

bool VhostUserFrontend::ServeOneBackendRequest() {
  Channel& channel = *backend_channel_;
  absl::StatusOr<Message> msg = channel.Receive("a back-end request");
  if (!msg.ok()) {
    // A disconnect is reported with the main socket's; anything else
    // desynced the stream, so stop reading it.
    if (!absl::IsUnavailable(msg.status())) {
      std::fprintf(stderr, "rmem-vmm: %s\n", msg.status().ToString().c_str());
    }
    return false;
  }
  const uint64_t result = HandleBackendRequest(*msg);
  if ((msg->header.flags & vhost_user::kFlagNeedReply) == 0) return true;
  const MsgHeader reply{msg->header.request, vhost_user::kVersion | vhost_user::kFlagReply,
                        sizeof(result)};
  return channel.Send(reply, Bytes(result)).ok();
}

uint64_t VhostUserFrontend::HandleBackendRequest(const Message& msg) {
  const char* name = vhost_user::RequestName(RequestSpace::kBackend, msg.header.request);
  auto refuse = [&](absl::string_view why) -> uint64_t {
    std::fprintf(stderr, "rmem-vmm: %s: refused %s (%u): %s\n",
                 backend_channel_->peer().c_str(), name, msg.header.request,
                 std::string(why).c_str());
    return 1;
  };
  const auto request = static_cast<BackendRequest>(msg.header.request);
  if (request != BackendRequest::kShmemMap && request != BackendRequest::kShmemUnmap) {
    return refuse("not a request we serve");
  }
  if (msg.payload.size() != sizeof(vhost_user::ShmemMapMsg)) {
    return refuse(absl::StrCat("payload of ", msg.payload.size(), " bytes (want ",
                               sizeof(vhost_user::ShmemMapMsg), ")"));
  }
  const size_t want_fds = request == BackendRequest::kShmemMap ? 1 : 0;
  if (msg.fds.size() != want_fds) {
    return refuse(absl::StrCat(msg.fds.size(), " fds (want ", want_fds, ")"));
  }
  if (mapper_ == nullptr) return refuse("this device has no shared memory regions");
  vhost_user::ShmemMapMsg m;
  std::memcpy(&m, msg.payload.data(), sizeof(m));
  const absl::Status s =
      request == BackendRequest::kShmemMap
          ? mapper_->Map(m.shmid, msg.fds[0].get(), m.fd_offset, m.shm_offset, m.len,
                         (m.flags & vhost_user::kShmemMapReadWrite) != 0)
          : mapper_->Unmap(m.shmid, m.shm_offset, m.len);
  // The reply carries the Status code, non-zero for every failure.
  return static_cast<uint64_t>(s.code());
}

}  // namespace rmem::vmm

#include "virtio_rmem/vhost_user/server.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/unix_socket.h"
#include "broker/types.h"
#include "vhost_user/protocol.h"
#include "virtio_rmem/vhost_user/limits.h"
#include "virtio_rmem/vhost_user/log.h"
#include "virtio_rmem/virtqueue/split_ring.h"

namespace rmem::virtio_rmem {
namespace {

constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }

// Device-specific feature bits (VIRTIO 1.2 §6): 0-23 and 50 up; the rest
// are transport bits this back-end implements itself or does not offer.
constexpr uint64_t kDeviceFeatureMask = ((uint64_t{1} << 24) - 1) | ~((uint64_t{1} << 50) - 1);

absl::Status CheckDevice(const std::string& name, const VirtioDevice& device) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("guest ", name, ": device ", why));
  };
  if (device.device_id() == 0) return bad("id 0 is reserved");
  if (device.device_features() & ~kDeviceFeatureMask) {
    return bad(absl::StrCat("offers transport feature bits 0x",
                            absl::Hex(device.device_features() & ~kDeviceFeatureMask),
                            " (device bits are 0-23 and 50-63)"));
  }
  const size_t queues = device.queues().size();
  if (queues == 0 || queues > static_cast<size_t>(kMaxQueues)) {
    return bad(absl::StrCat("has ", queues, " queues (want 1 to ", kMaxQueues, ")"));
  }
  const std::vector<uint64_t> shmem = device.shmem_region_sizes();
  if (shmem.size() > vhost_user::kMaxShmemRegions) {
    return bad(absl::StrCat("has ", shmem.size(), " shared memory regions (at most ",
                            vhost_user::kMaxShmemRegions, ")"));
  }
  for (size_t i = 0; i < shmem.size(); ++i) {
    if (shmem[i] % kPageSize != 0) {
      return bad(absl::StrCat("shared memory region ", i, " of ", shmem[i],
                              " bytes is not a multiple of 4 KiB"));
    }
  }
  if (device.ReadConfig().size() > vhost_user::kMaxConfigSize) {
    return bad(absl::StrCat("config space is over ", vhost_user::kMaxConfigSize, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

// DeviceHost for one guest: forwards to its current connection.
class EndpointHost final : public DeviceHost {
 public:
  explicit EndpointHost(std::string name) : name_(std::move(name)) {}
  void set(Connection* c) { connection_ = c; }

  absl::Status PushToQueue(uint16_t queue,
                           absl::FunctionRef<uint32_t(const DescriptorChain&)> fill) override {
    if (connection_ == nullptr) return NotConnected();
    return connection_->PushToQueue(queue, fill);
  }
  absl::Status MapShmem(const ShmemPiece& piece) override {
    if (connection_ == nullptr) return NotConnected();
    return connection_->MapShmem(piece);
  }
  absl::Status UnmapShmem(uint8_t region_id, uint64_t region_offset, uint64_t length) override {
    if (connection_ == nullptr) return NotConnected();
    return connection_->UnmapShmem(region_id, region_offset, length);
  }
  uint64_t acked_features() const override {
    return connection_ == nullptr ? 0 : connection_->acked_features();
  }
  int peer_pid() const override { return connection_ == nullptr ? 0 : connection_->peer_pid(); }

 private:
  absl::Status NotConnected() const {
    return absl::FailedPreconditionError(absl::StrCat("guest ", name_, ": no front-end connected"));
  }
  const std::string name_;
  Connection* connection_ = nullptr;
};

struct VhostUserServer::Endpoint {
  std::string name;
  std::string path;
  VirtioDevice* device;
  DeviceShape shape;
  Fd listener;
  Watch listener_watch;  // after `listener`: destroyed first
  EndpointHost host;
  std::shared_ptr<Connection> connection;
  uint64_t connections = 0;
  uint64_t refused = 0;
  std::string last_end;
  ConnectionStats last_stats;
};

VhostUserServer::VhostUserServer(EventLoop& loop) : loop_(loop) {}

VhostUserServer::~VhostUserServer() {
  for (std::unique_ptr<Endpoint>& e : endpoints_) {
    if (e->connection) EndConnection(*e, absl::CancelledError("the server is shutting down"));
    e->listener_watch.Reset();
    unlink(e->path.c_str());
  }
}

absl::Status VhostUserServer::AddGuest(const GuestConfig& config, VirtioDevice& device) {
  if (config.name.empty()) return absl::InvalidArgumentError("a guest needs a name");
  for (const std::unique_ptr<Endpoint>& e : endpoints_) {
    if (e->name == config.name) {
      return absl::InvalidArgumentError(absl::StrCat("guest ", config.name, " is already served"));
    }
  }
  if (absl::Status s = CheckDevice(config.name, device); !s.ok()) return s;
  absl::StatusOr<Fd> listener = ListenUnix(config.socket_path, kListenBacklog);
  if (!listener.ok()) {
    return absl::Status(listener.status().code(),
                        absl::StrCat("guest ", config.name, ": ", listener.status().message()));
  }

  auto e = std::unique_ptr<Endpoint>(new Endpoint{.name = config.name,
                                                  .path = config.socket_path,
                                                  .device = &device,
                                                  .host = EndpointHost(config.name)});
  e->shape.features =
      Bit(kVirtioFVersion1) | Bit(vhost_user::kFProtocolFeatures) | device.device_features();
  e->shape.protocol_features =
      Bit(vhost_user::kProtocolMq) | Bit(vhost_user::kProtocolReplyAck) |
      Bit(vhost_user::kProtocolBackendReq) | Bit(vhost_user::kProtocolConfig) |
      Bit(vhost_user::kProtocolBackendSendFd) | Bit(vhost_user::kProtocolResetDevice);
  e->shape.queues = device.queues();
  e->shape.shmem_sizes = device.shmem_region_sizes();
  if (!e->shape.shmem_sizes.empty()) e->shape.protocol_features |= Bit(vhost_user::kProtocolShmem);
  e->listener = *std::move(listener);
  Endpoint* raw = e.get();
  absl::StatusOr<Watch> watch =
      loop_.Add(raw->listener.get(), EPOLLIN, [this, raw](uint32_t) { OnListenerReady(*raw); });
  if (!watch.ok()) {
    unlink(config.socket_path.c_str());
    return watch.status();
  }
  e->listener_watch = *std::move(watch);
  endpoints_.push_back(std::move(e));
  return absl::OkStatus();
}

void VhostUserServer::OnListenerReady(Endpoint& e) {
  for (int n = 0; n < kListenBacklog + 1; ++n) {
    Fd socket(accept4(e.listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!socket.valid()) return;  // EAGAIN, or the client gave up meanwhile
    if (e.connection && !e.connection->broken() && !e.connection->PeerHungUp()) {
      ++e.refused;
      Log(absl::StrCat("guest ", e.name, ": refused a second front-end on ", e.path,
                       ": its VMM is connected"));
      continue;  // closing it tells the newcomer
    }
    if (e.connection) {
      EndConnection(e, absl::UnavailableError(
                           absl::StrCat("guest ", e.name, ": front-end hung up (a new one came)")));
    }
    Endpoint* raw = &e;
    absl::StatusOr<std::shared_ptr<Connection>> c = Connection::Start(
        loop_, std::move(socket), absl::StrCat("guest ", e.name, " front-end"), *e.device, e.shape,
        [this, raw](absl::Status reason) { EndConnection(*raw, reason); });
    if (!c.ok()) {
      Log(absl::StrCat("guest ", e.name, ": ", c.status().ToString()));
      continue;
    }
    e.connection = *std::move(c);
    e.host.set(e.connection.get());
    ++e.connections;
    e.device->OnConnect(e.host);
  }
}

void VhostUserServer::EndConnection(Endpoint& e, const absl::Status& reason) {
  if (!e.connection) return;
  e.last_stats = e.connection->stats();
  e.last_end = reason.ToString();
  e.host.set(nullptr);
  // Close the socket and unmap guest memory before the device hears of it.
  e.connection.reset();
  e.device->OnDisconnect();
}

absl::StatusOr<GuestStatus> VhostUserServer::Status(absl::string_view name) const {
  for (const std::unique_ptr<Endpoint>& e : endpoints_) {
    if (e->name != name) continue;
    GuestStatus s;
    s.connected = e->connection != nullptr;
    s.connections = e->connections;
    s.refused = e->refused;
    s.last_end = e->last_end;
    s.stats = e->connection ? e->connection->stats() : e->last_stats;
    return s;
  }
  return absl::NotFoundError(absl::StrCat("guest ", name, " is not served"));
}

}  // namespace rmem::virtio_rmem

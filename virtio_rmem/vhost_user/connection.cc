#include "virtio_rmem/vhost_user/connection.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/unix_socket.h"
#include "broker/check.h"
#include "virtio_rmem/vhost_user/limits.h"
#include "virtio_rmem/vhost_user/log.h"
#include "virtio_rmem/vhost_user/peer_eventfd.h"
#include "virtio_rmem/virtqueue/split_ring.h"

namespace rmem::virtio_rmem {
namespace {

using vhost_user::FrontendRequest;
using vhost_user::RequestSpace;

constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }

template <typename T>
std::vector<uint8_t> Body(const T& value) {
  const std::span<const uint8_t> b = vhost_user::Bytes(value);
  return {b.begin(), b.end()};
}

std::string Named(FrontendRequest r) {
  return vhost_user::NamedRequest(RequestSpace::kFrontend, static_cast<uint32_t>(r));
}

}  // namespace

absl::StatusOr<std::shared_ptr<Connection>> Connection::Start(
    EventLoop& loop, Fd socket, std::string peer, VirtioDevice& device, DeviceShape shape,
    std::function<void(absl::Status)> on_end) {
  std::shared_ptr<Connection> c(new Connection(loop, std::move(socket), std::move(peer), device,
                                               std::move(shape), std::move(on_end)));
  Connection* raw = c.get();
  absl::StatusOr<Watch> watch =
      loop.Add(raw->socket_.get(), EPOLLIN, [raw](uint32_t) { raw->OnSocketReady(); });
  if (!watch.ok()) return absl::InternalError(watch.status().message());
  raw->socket_watch_ = *std::move(watch);
  return c;
}

Connection::Connection(EventLoop& loop, Fd socket, std::string peer, VirtioDevice& device,
                       DeviceShape shape, std::function<void(absl::Status)> on_end)
    : loop_(loop),
      peer_(std::move(peer)),
      device_(device),
      shape_(std::move(shape)),
      on_end_(std::move(on_end)),
      socket_(std::move(socket)),
      reader_(RequestSpace::kFrontend, peer_),
      rings_(shape_.queues.size()) {
  stats_.rings.resize(shape_.queues.size());
}

Connection::~Connection() = default;

bool Connection::PeerHungUp() const {
  pollfd p{socket_.get(), POLLRDHUP, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void Connection::Break(absl::Status reason) {
  if (broken_) return;
  broken_ = reason;
  // A VMM that hung up between messages just left; anything else broke.
  Log(absl::StrCat(peer_, ": ", peer_left_ ? "connection ended" : "connection broken", ": ",
                   reason.ToString()));
  // Nothing more is read or kicked from now on; the teardown comes next
  // iteration, after whatever device call we are inside of has returned.
  socket_watch_.Reset();
  for (Ring& r : rings_) r.kick_watch.Reset();
  std::weak_ptr<Connection> self = weak_from_this();
  loop_.Post([self] {
    std::function<void(absl::Status)> on_end;
    absl::Status why;
    if (std::shared_ptr<Connection> c = self.lock()) {
      on_end = c->on_end_;
      why = *c->broken_;
    } else {
      return;  // already ended by its owner
    }
    // Without a reference of ours: the owner destroys the connection (socket
    // closed, memory unmapped) before it tells the device.
    on_end(why);
  });
}

void Connection::LogFault(absl::string_view what) {
  if (faults_logged_ >= kMaxLoggedFaults) return;
  ++faults_logged_;
  Log(absl::StrCat(peer_, ": ", what,
                   faults_logged_ == kMaxLoggedFaults ? " (further faults are only counted)" : ""));
}

// ---------------------------------------------------------------------------
// Messages

void Connection::OnSocketReady() {
  for (int n = 0; n < kMaxMessagesPerWakeup && !broken_; ++n) {
    absl::StatusOr<std::optional<vhost_user::Message>> m = reader_.ReadFrom(socket_.get());
    if (!m.ok()) {
      peer_left_ = absl::IsUnavailable(m.status()) && !reader_.in_progress();
      Break(m.status());
      return;
    }
    if (!m->has_value()) return;  // a partial message waits; nobody else does
    HandleMessage(**std::move(m));
  }
}

absl::Status Connection::SendReply(uint32_t request, std::span<const uint8_t> body) {
  const vhost_user::MsgHeader h{request, vhost_user::kVersion | vhost_user::kFlagReply,
                                static_cast<uint32_t>(body.size())};
  return vhost_user::SendMessage(socket_.get(), h, body, {}, vhost_user::SendMode::kNonBlocking,
                                 peer_, RequestSpace::kFrontend);
}

void Connection::HandleMessage(vhost_user::Message message) {
  const uint32_t code = message.header.request;
  const bool need_reply = (message.header.flags & vhost_user::kFlagNeedReply) != 0;
  const RequestRule* rule = FindRequestRule(code);
  const FrontendDecodeContext context{state_, protocol_features_, shape_.features, shape_.protocol_features,
                              static_cast<int>(rings_.size())};
  absl::StatusOr<FrontendMessage> request = DecodeFrontendRequest(std::move(message), context);
  absl::StatusOr<Reply> reply =
      request.ok() ? Dispatch(*request) : absl::StatusOr<Reply>(request.status());
  if (broken_) return;
  ++stats_.requests;
  absl::Status sent;
  if (reply.ok()) {
    if (reply->has_value()) {
      sent = SendReply(code, **reply);
    } else if (need_reply && (protocol_features_ & Bit(vhost_user::kProtocolReplyAck))) {
      sent = SendReply(code, vhost_user::Bytes(uint64_t{0}));
    }
  } else {
    const absl::Status& why = reply.status();
    ++stats_.refused;
    if (rule != nullptr && rule->request == FrontendRequest::kGetConfig) {
      // The spec's way for GET_CONFIG to fail: an empty payload.
      LogFault(why.ToString());
      sent = SendReply(code, {});
    } else if (rule != nullptr && rule->has_reply) {
      // The front-end awaits a reply body we cannot give.
      Break(why);
      return;
    } else if (need_reply && (protocol_features_ & Bit(vhost_user::kProtocolReplyAck))) {
      LogFault(why.ToString());
      sent = SendReply(code, vhost_user::Bytes(static_cast<uint64_t>(why.code())));
    } else {
      // No way to say no: the front-end would go on as if we had complied.
      Break(why);
      return;
    }
  }
  if (!sent.ok()) Break(sent);
}

absl::StatusOr<Connection::Reply> Connection::Dispatch(FrontendMessage& request) {
  switch (request.code) {
    case FrontendRequest::kGetFeatures:
      return Body(shape_.features);
    case FrontendRequest::kSetFeatures: {
      std::vector<bool> was_runnable;
      for (const Ring& r : rings_) was_runnable.push_back(Runnable(r));
      acked_features_ = request.u64;
      // Rings of a front-end without protocol features are enabled: one that
      // became runnable has work waiting.
      for (size_t i = 0; i < rings_.size(); ++i) {
        NoteStarted(static_cast<int>(i), was_runnable[i]);
        PostContinuation(static_cast<int>(i));
      }
      return Reply();
    }
    case FrontendRequest::kSetOwner:
      state_ = ConnectionState::kOwned;
      return Reply();
    case FrontendRequest::kResetOwner:
    case FrontendRequest::kResetDevice:
      ResetRings();
      acked_features_ = 0;
      device_.OnReset();
      return Reply();
    case FrontendRequest::kSetMemTable:
      return SetMemTable(request);
    case FrontendRequest::kSetVringNum:
    case FrontendRequest::kSetVringAddr:
    case FrontendRequest::kSetVringBase:
    case FrontendRequest::kGetVringBase:
    case FrontendRequest::kSetVringEnable:
      return RingRequest(request);
    case FrontendRequest::kSetVringKick:
    case FrontendRequest::kSetVringCall:
    case FrontendRequest::kSetVringErr:
      return SetVringFile(request);
    case FrontendRequest::kGetProtocolFeatures:
      return Body(shape_.protocol_features);
    case FrontendRequest::kSetProtocolFeatures:
      protocol_features_ = request.u64;
      return Reply();
    case FrontendRequest::kGetQueueNum:
      return Body(uint64_t{rings_.size()});
    case FrontendRequest::kSetBackendReqFd:
      backend_.emplace(std::move(request.fds[0]), absl::StrCat(peer_, " (back-end requests)"));
      return Reply();
    case FrontendRequest::kGetConfig:
      return GetConfig(request.config);
    case FrontendRequest::kSetConfig: {
      const ConfigSpec& c = request.config;
      if (c.flags == vhost_user::kConfigFlagMigration) {
        return absl::UnimplementedError(
            absl::StrCat(Named(request.code), ": live migration is not supported"));
      }
      if (absl::Status s = device_.WriteConfig(c.offset, c.bytes); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat(Named(request.code), ": ", s.message()));
      }
      return Reply();
    }
    case FrontendRequest::kGetShmemConfig: {
      vhost_user::ShmemConfig config;
      config.nregions = static_cast<uint32_t>(shape_.shmem_sizes.size());
      for (size_t i = 0; i < shape_.shmem_sizes.size(); ++i) {
        config.memory_sizes[i] = shape_.shmem_sizes[i];
      }
      return Body(config);
    }
    default:
      break;
  }
  // The decoder only lets through requests of kRequestRules, all handled.
  RMEM_CHECK(false);
  return Reply();
}

absl::StatusOr<Connection::Reply> Connection::GetConfig(const ConfigSpec& spec) {
  const std::vector<uint8_t> config = device_.ReadConfig();
  RMEM_CHECK(config.size() <= vhost_user::kMaxConfigSize);
  std::vector<uint8_t> out(sizeof(vhost_user::ConfigHeader) + spec.size, 0);
  const vhost_user::ConfigHeader h{spec.offset, spec.size, spec.flags};
  std::memcpy(out.data(), &h, sizeof(h));
  // Past the device's config space reads as zeros.
  for (uint32_t i = 0; i < spec.size && spec.offset + i < config.size(); ++i) {
    out[sizeof(h) + i] = config[spec.offset + i];
  }
  return out;
}

absl::StatusOr<Connection::Reply> Connection::SetMemTable(FrontendMessage& request) {
  const std::vector<MemRegionSpec>& regions = request.regions;
  absl::StatusOr<std::unique_ptr<MemoryTable>> table = MemoryTable::Map(regions, request.fds);
  if (!table.ok()) {
    return absl::Status(table.status().code(),
                        absl::StrCat(Named(request.code), ": ", table.status().message()));
  }
  // Check every ring against the new table before anything changes.
  std::vector<std::optional<SplitQueue>> queues;
  for (size_t i = 0; i < rings_.size(); ++i) {
    const Ring& r = rings_[i];
    const uint16_t base = r.queue ? r.queue->next_avail() : r.base;
    absl::StatusOr<std::optional<SplitQueue>> q =
        BuildQueue(static_cast<int>(i), r.size, r.addr, base, table->get());
    if (!q.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Named(request.code), ": ", q.status().message(), " in the new table"));
    }
    queues.push_back(*std::move(q));
  }
  // Commit: the old mappings go after the rings stopped pointing into them.
  for (size_t i = 0; i < rings_.size(); ++i) rings_[i].queue = std::move(queues[i]);
  memory_ = *std::move(table);
  for (size_t i = 0; i < rings_.size(); ++i) PostContinuation(static_cast<int>(i));
  return Reply();
}

absl::StatusOr<std::optional<SplitQueue>> Connection::BuildQueue(
    int ring, uint16_t size, const std::optional<VringAddrSpec>& addr, uint16_t base,
    const MemoryTable* memory) const {
  if (size == 0 || !addr || memory == nullptr) return std::nullopt;
  const struct {
    const char* name;
    FrontendVa at;
    uint64_t bytes;
  } parts[] = {
      {"descriptor table", addr->desc, DescTableBytes(size)},
      {"available ring", addr->avail, AvailRingBytes(size)},
      {"used ring", addr->used, UsedRingBytes(size)},
  };
  SplitQueueMemory views;
  std::span<uint8_t>* out[] = {&views.desc, &views.avail, &views.used};
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::span<uint8_t>> s = memory->TranslateFrontend(parts[i].at, parts[i].bytes);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("ring ", ring, " ", parts[i].name, " (",
                                                     parts[i].bytes, " bytes for ", size,
                                                     " entries): ", s.status().message()));
    }
    *out[i] = *s;
  }
  absl::StatusOr<SplitQueue> q = SplitQueue::Create(size, views, base);
  if (!q.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("ring ", ring, ": ", q.status().message()));
  }
  return std::optional<SplitQueue>(*std::move(q));
}

absl::StatusOr<Connection::Reply> Connection::RingRequest(FrontendMessage& request) {
  const std::string name = Named(request.code);
  if (request.code == FrontendRequest::kSetVringAddr) {
    const VringAddrSpec& a = request.addr;
    Ring& r = rings_[a.index];
    RingState next;
    if (absl::Status s = RingTransition(a.index, r.state, RingOp::kSetAddr, next); !s.ok()) {
      return s;
    }
    if (memory_ == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, ": ring ", a.index, " addresses before SET_MEM_TABLE"));
    }
    const uint16_t base = r.queue ? r.queue->next_avail() : r.base;
    absl::StatusOr<std::optional<SplitQueue>> q =
        BuildQueue(a.index, r.size, a, base, memory_.get());
    if (!q.ok()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", q.status().message()));
    const bool was_runnable = Runnable(r);
    r.addr = a;
    r.queue = *std::move(q);
    r.state = next;
    NoteStarted(a.index, was_runnable);
    PostContinuation(a.index);
    return Reply();
  }

  const vhost_user::VringState v = request.state;
  Ring& r = rings_[v.index];
  RingOp op;
  // clang-format off
  switch (request.code) {
    case FrontendRequest::kSetVringNum: op = RingOp::kSetNum; break;
    case FrontendRequest::kSetVringBase: op = RingOp::kSetBase; break;
    case FrontendRequest::kGetVringBase: op = RingOp::kGetBase; break;
    default: op = v.num == 1 ? RingOp::kEnable : RingOp::kDisable; break;
  }
  // clang-format on
  RingState next;
  if (absl::Status s = RingTransition(static_cast<int>(v.index), r.state, op, next); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(name, ": ", s.message()));
  }
  Reply reply;
  switch (op) {
    case RingOp::kSetNum:
    case RingOp::kSetBase: {
      const uint16_t size = op == RingOp::kSetNum ? static_cast<uint16_t>(v.num) : r.size;
      const uint16_t base = op == RingOp::kSetBase ? static_cast<uint16_t>(v.num)
                                                   : (r.queue ? r.queue->next_avail() : r.base);
      absl::StatusOr<std::optional<SplitQueue>> q =
          BuildQueue(static_cast<int>(v.index), size, r.addr, base, memory_.get());
      if (!q.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": ", q.status().message()));
      }
      r.size = size;
      r.base = base;
      r.queue = *std::move(q);
      break;
    }
    case RingOp::kGetBase: {
      // Stopping: no more kicks; the base is where a restart resumes.
      r.base = r.queue ? r.queue->next_avail() : r.base;
      r.kick_watch.Reset();
      r.kick = Fd();
      reply = Body(vhost_user::VringState{v.index, r.base});
      break;
    }
    default:
      break;
  }
  const bool was_runnable = Runnable(r);
  r.state = next;
  NoteStarted(static_cast<int>(v.index), was_runnable);
  PostContinuation(static_cast<int>(v.index));
  return reply;
}

absl::StatusOr<Connection::Reply> Connection::SetVringFile(FrontendMessage& request) {
  const VringFileSpec& f = request.file;
  Ring& r = rings_[f.index];
  const std::string what = absl::StrCat(Named(request.code), ": ring ", f.index);
  Fd fd;
  if (f.has_fd) {
    fd = std::move(request.fds[0]);
    if (absl::Status s = AdoptPeerEventFd(fd, what); !s.ok()) return s;
  }
  switch (request.code) {
    case FrontendRequest::kSetVringKick: {
      if (!f.has_fd) {
        return absl::UnimplementedError(absl::StrCat(
            what, ": polling (no kick fd) is not supported: one loop serves every guest"));
      }
      RingState next;
      if (absl::Status s = RingTransition(f.index, r.state, RingOp::kSetKick, next); !s.ok()) {
        return s;
      }
      // Edge-triggered: every write by the peer is one wake-up, whatever the
      // eventfd's mode (peer_eventfd.h).
      r.kick_watch.Reset();
      absl::StatusOr<Watch> watch =
          loop_.Add(fd.get(), EPOLLIN | EPOLLET, [this, i = f.index](uint32_t) { OnKick(i); });
      if (!watch.ok())
        return absl::InvalidArgumentError(absl::StrCat(what, ": ", watch.status().message()));
      r.kick = std::move(fd);
      r.kick_watch = *std::move(watch);
      const bool was_runnable = Runnable(r);
      r.state = next;
      NoteStarted(f.index, was_runnable);
      // The driver may have posted before the ring started.
      PostContinuation(f.index);
      return Reply();
    }
    case FrontendRequest::kSetVringCall:
      r.call = std::move(fd);
      return Reply();
    default:
      r.err = std::move(fd);
      return Reply();
  }
}

void Connection::ResetRings() {
  for (size_t i = 0; i < rings_.size(); ++i) {
    RingState next;
    RMEM_CHECK_OK(RingTransition(static_cast<int>(i), rings_[i].state, RingOp::kReset, next));
    rings_[i].kick_watch.Reset();
    rings_[i] = Ring();
    rings_[i].state = next;
  }
}

// ---------------------------------------------------------------------------
// Rings

bool Connection::Runnable(const Ring& r) const {
  const bool enabled =
      r.state.enabled || (acked_features_ & Bit(vhost_user::kFProtocolFeatures)) == 0;
  return !broken_ && r.state.started && enabled && r.queue.has_value();
}

void Connection::NoteStarted(int ring, bool was_runnable) {
  if (!was_runnable && Runnable(rings_[ring])) device_.OnRingStarted(static_cast<uint16_t>(ring));
}

void Connection::OnKick(int ring) {
  Ring& r = rings_[ring];
  DrainPeerEventFd(r.kick);
  ++stats_.rings[ring].kicks;
  if (!Runnable(r)) {
    ++stats_.rings[ring].ignored_kicks;
    return;
  }
  ProcessRing(ring);
}

void Connection::PostContinuation(int ring) {
  Ring& r = rings_[ring];
  if (r.continuation_posted || !Runnable(r) || !r.queue->HasAvailable()) return;
  r.continuation_posted = true;
  std::weak_ptr<Connection> self = weak_from_this();
  loop_.Post([self, ring] {
    if (std::shared_ptr<Connection> c = self.lock()) {
      c->rings_[ring].continuation_posted = false;
      c->ProcessRing(ring);
    }
  });
}

void Connection::ProcessRing(int ring) {
  Ring& r = rings_[ring];
  if (!Runnable(r)) return;
  if (shape_.queues[ring] == QueueKind::kDeviceToDriver) {
    // The buffers are the device's to take when it has something to say.
    device_.OnBuffersAvailable(static_cast<uint16_t>(ring));
    return;
  }
  RingStats& stats = stats_.rings[ring];
  bool used = false;
  for (int n = 0; n < kMaxChainsPerIteration; ++n) {
    absl::StatusOr<std::optional<SplitQueue::Popped>> p = r.queue->Pop(memory_->guest());
    if (!p.ok()) {
      RingFault(ring, p.status());
      return;
    }
    if (!p->has_value()) break;
    SplitQueue::Popped& popped = **p;
    uint32_t written = 0;
    if (!popped.chain.ok()) {
      ++stats.malformed_chains;
      LogFault(absl::StrCat("ring ", ring,
                            ": chain returned unused: ", popped.chain.status().message()));
    } else {
      ++stats.chains;
      written = device_.OnChain(static_cast<uint16_t>(ring), *popped.chain);
      RMEM_CHECK(written <= popped.chain->writable_size());
      // The device's call may have broken the connection (a stuck VMM).
      if (broken_) return;
    }
    r.queue->PushUsed(popped.head, written);
    used = true;
  }
  if (used) Notify(ring);
  // More than one iteration's share: the rest after the other guests.
  PostContinuation(ring);
}

void Connection::Notify(int ring) {
  Ring& r = rings_[ring];
  if (!r.call.valid() || !r.queue->ShouldNotify()) return;
  if (SignalPeerEventFd(r.call)) ++stats_.rings[ring].notifications;
}

void Connection::RingFault(int ring, const absl::Status& why) {
  Ring& r = rings_[ring];
  if (r.err.valid()) (void)SignalPeerEventFd(r.err);
  Break(absl::InvalidArgumentError(
      absl::StrCat("ring ", ring, " is corrupt, the device needs a reset: ", why.message())));
}

absl::Status Connection::PushToQueue(uint16_t queue,
                                     absl::FunctionRef<uint32_t(const DescriptorChain&)> fill) {
  if (broken_) {
    return absl::UnavailableError(absl::StrCat(peer_, ": connection broken: ", broken_->message()));
  }
  if (queue >= rings_.size() || shape_.queues[queue] != QueueKind::kDeviceToDriver) {
    return absl::FailedPreconditionError(
        absl::StrCat("queue ", queue, " is not a device-to-driver queue of this device"));
  }
  Ring& r = rings_[queue];
  if (!Runnable(r)) {
    return absl::FailedPreconditionError(
        absl::StrCat(peer_, ": ring ", queue, " is not started, enabled and set up"));
  }
  // Malformed chains are given back on the way; at most a queue's worth.
  for (int n = 0; n <= r.queue->size(); ++n) {
    absl::StatusOr<std::optional<SplitQueue::Popped>> p = r.queue->Pop(memory_->guest());
    if (!p.ok()) {
      RingFault(queue, p.status());
      return absl::UnavailableError(absl::StrCat(peer_, ": ring ", queue, " is corrupt"));
    }
    if (!p->has_value()) break;
    SplitQueue::Popped& popped = **p;
    uint32_t written = 0;
    if (popped.chain.ok()) {
      written = fill(*popped.chain);
      RMEM_CHECK(written <= popped.chain->writable_size());
      ++stats_.rings[queue].chains;
    } else {
      ++stats_.rings[queue].malformed_chains;
      LogFault(absl::StrCat("ring ", queue,
                            ": chain returned unused: ", popped.chain.status().message()));
    }
    r.queue->PushUsed(popped.head, written);
    Notify(queue);
    if (popped.chain.ok()) return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(
      absl::StrCat(peer_, ": the driver has no buffer posted on ring ", queue));
}

// ---------------------------------------------------------------------------
// Shared memory

absl::Status Connection::CheckShmemCall(const char* what) const {
  if (broken_) {
    return absl::UnavailableError(absl::StrCat(peer_, ": connection broken: ", broken_->message()));
  }
  const uint64_t needed = Bit(vhost_user::kProtocolBackendReq) |
                          Bit(vhost_user::kProtocolReplyAck) | Bit(vhost_user::kProtocolShmem) |
                          Bit(vhost_user::kProtocolBackendSendFd);
  if ((protocol_features_ & needed) != needed || !backend_) {
    return absl::FailedPreconditionError(
        absl::StrCat(peer_, ": cannot ", what,
                     ": the front-end did not negotiate BACKEND_REQ, REPLY_ACK, SHMEM "
                     "and BACKEND_SEND_FD (has 0x",
                     absl::Hex(protocol_features_), ") or sent no back-end socket"));
  }
  return absl::OkStatus();
}

absl::Status Connection::CheckShmemRange(uint8_t region_id, uint64_t offset,
                                         uint64_t length) const {
  const uint64_t size = region_id < shape_.shmem_sizes.size() ? shape_.shmem_sizes[region_id] : 0;
  if (size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared memory region ", region_id, " does not exist"));
  }
  if (length == 0 || offset > size || length > size - offset) {
    return absl::InvalidArgumentError(absl::StrCat("range ", Hex(offset), " + ", Hex(length),
                                                   " is empty or outside shared memory region ",
                                                   region_id, " of ", Hex(size), " bytes"));
  }
  return absl::OkStatus();
}

absl::Status Connection::MapShmem(const ShmemPiece& piece) {
  if (absl::Status s = CheckShmemCall("map shared memory"); !s.ok()) return s;
  if (absl::Status s = CheckShmemRange(piece.region_id, piece.region_offset, piece.length);
      !s.ok()) {
    return s;
  }
  if (piece.fd < 0 || piece.fd_offset > UINT64_MAX - piece.length) {
    return absl::InvalidArgumentError(absl::StrCat("SHMEM_MAP: no fd, or fd offset ",
                                                   Hex(piece.fd_offset), " + length overflows"));
  }
  vhost_user::ShmemMapMsg m;
  m.shmid = piece.region_id;
  m.fd_offset = piece.fd_offset;
  m.shm_offset = piece.region_offset;
  m.len = piece.length;
  m.flags = piece.writable ? vhost_user::kShmemMapReadWrite : 0;
  absl::Status s = backend_->Call(vhost_user::BackendRequest::kShmemMap, m, piece.fd);
  if (backend_->broken()) Break(s);
  return s;
}

absl::Status Connection::UnmapShmem(uint8_t region_id, uint64_t region_offset, uint64_t length) {
  if (absl::Status s = CheckShmemCall("unmap shared memory"); !s.ok()) return s;
  if (absl::Status s = CheckShmemRange(region_id, region_offset, length); !s.ok()) return s;
  vhost_user::ShmemMapMsg m;
  m.shmid = region_id;
  m.shm_offset = region_offset;
  m.len = length;
  absl::Status s = backend_->Call(vhost_user::BackendRequest::kShmemUnmap, m, -1);
  if (backend_->broken()) Break(s);
  return s;
}

int Connection::peer_pid() const {
  absl::StatusOr<PeerCredentials> peer = PeerOf(socket_.get());
  return peer.ok() ? peer->pid : 0;
}

}  // namespace rmem::virtio_rmem

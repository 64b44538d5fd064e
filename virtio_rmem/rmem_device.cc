#include "virtio_rmem/rmem_device.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "virtio_rmem/wire.h"

namespace rmem::virtio_rmem {
namespace {

// The writable size a successful response of each request needs.
size_t ResponseSize(const Request& request) {
  return std::visit(
      [](const auto& r) -> size_t {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, GetHeapRequest>) return sizeof(virtio_rmem_resp_get_heap);
        if constexpr (std::is_same_v<T, GetPeerRequest>) return sizeof(virtio_rmem_resp_get_peer);
        if constexpr (std::is_same_v<T, AllocRequest>) return sizeof(virtio_rmem_resp_alloc);
        if constexpr (std::is_same_v<T, OfferRequest> || std::is_same_v<T, DonateRequest>) {
          return sizeof(virtio_rmem_resp_offer);
        }
        if constexpr (std::is_same_v<T, RetrieveRequest>) return sizeof(virtio_rmem_resp_retrieve);
        if constexpr (std::is_same_v<T, ReclaimRequest>) return sizeof(virtio_rmem_resp_reclaim);
        return sizeof(virtio_rmem_resp_hdr);
      },
      request);
}

// NUL-padded, truncated to the field.
void CopyName(uint8_t (&field)[VIRTIO_RMEM_NAME_SIZE], const std::string& name) {
  std::memset(field, 0, sizeof(field));
  std::memcpy(field, name.data(), std::min(name.size(), sizeof(field)));
}

uint32_t KindOf(TxnKind kind) {
  switch (kind) {
    case TxnKind::kShare: return VIRTIO_RMEM_KIND_SHARE;
    case TxnKind::kLend: return VIRTIO_RMEM_KIND_LEND;
    case TxnKind::kDonate: return VIRTIO_RMEM_KIND_DONATE;
  }
  return 0;
}

uint32_t EventTypeOf(EventKind kind) {
  switch (kind) {
    case EventKind::kOffered: return VIRTIO_RMEM_EVENT_OFFERED;
    case EventKind::kRetrieved: return VIRTIO_RMEM_EVENT_RETRIEVED;
    case EventKind::kRelinquished: return VIRTIO_RMEM_EVENT_RELINQUISHED;
    case EventKind::kRevoked: return VIRTIO_RMEM_EVENT_REVOKED;
    case EventKind::kDonated: return VIRTIO_RMEM_EVENT_DONATED;
  }
  return 0;
}

uint64_t OffsetOf(const std::optional<GuestAddr>& mapped_at) {
  return mapped_at ? mapped_at->value() : VIRTIO_RMEM_NO_OFFSET;
}

template <typename T>
std::vector<uint8_t> Encode(const T& value) {
  std::vector<uint8_t> out;
  AppendWire(out, value);
  return out;
}

}  // namespace

uint32_t WireStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return VIRTIO_RMEM_S_OK;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return VIRTIO_RMEM_S_INVALID;
    case absl::StatusCode::kNotFound: return VIRTIO_RMEM_S_NOT_FOUND;
    case absl::StatusCode::kPermissionDenied: return VIRTIO_RMEM_S_DENIED;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists: return VIRTIO_RMEM_S_BUSY;
    case absl::StatusCode::kResourceExhausted: return VIRTIO_RMEM_S_NO_SPACE;
    case absl::StatusCode::kUnimplemented: return VIRTIO_RMEM_S_UNSUPPORTED;
    default: return VIRTIO_RMEM_S_DEVICE_ERROR;
  }
}

const char* WireStatusName(uint32_t status) {
  switch (status) {
    case VIRTIO_RMEM_S_OK: return "OK";
    case VIRTIO_RMEM_S_INVALID: return "INVALID";
    case VIRTIO_RMEM_S_UNSUPPORTED: return "UNSUPPORTED";
    case VIRTIO_RMEM_S_NOT_FOUND: return "NOT_FOUND";
    case VIRTIO_RMEM_S_DENIED: return "DENIED";
    case VIRTIO_RMEM_S_BUSY: return "BUSY";
    case VIRTIO_RMEM_S_NO_SPACE: return "NO_SPACE";
    case VIRTIO_RMEM_S_DEVICE_ERROR: return "DEVICE_ERROR";
    default: return "UNKNOWN";
  }
}

// A request's result: OK with the whole response, or a status and why.
struct RmemDevice::Outcome {
  uint32_t status = VIRTIO_RMEM_S_OK;
  std::string message;
  std::vector<uint8_t> response;  // OK only: header included

  static Outcome Failed(const absl::Status& s) {
    return Outcome{.status = WireStatus(s), .message = std::string(s.message())};
  }
};

RmemDevice::RmemDevice(Broker& broker, VmId vm) : broker_(broker), vm_(vm) {
  for (const VmConfig& v : broker_.policy().config().vms) {
    if (v.id != vm_) peers_.push_back(v.id);
  }
}

std::vector<uint8_t> RmemDevice::Config() const {
  virtio_rmem_config c{};
  c.vm_id = vm_.value();
  c.num_heaps = static_cast<uint32_t>(broker_.policy().heap_count());
  c.num_peers = static_cast<uint32_t>(peers_.size());
  c.max_receivers = static_cast<uint32_t>(broker_.options().max_receivers);
  const VmConfig* me = broker_.policy().FindVm(vm_);
  c.quota_bytes = me != nullptr ? me->quota_bytes : 0;
  return Encode(c);
}

std::vector<uint8_t> RmemDevice::HandleRequest(std::span<const uint8_t> request,
                                               size_t capacity) {
  if (capacity < sizeof(virtio_rmem_resp_hdr)) {
    ++counters_.unanswerable;
    last_error_ = absl::StrCat("a request chain with ", capacity,
                               " writable bytes cannot hold a response");
    return {};
  }
  ++counters_.requests;
  const absl::StatusOr<Request> decoded =
      DecodeRequest(request, DecodeContext{.features = features_,
                                           .max_receivers = static_cast<uint32_t>(
                                               broker_.options().max_receivers)});
  Outcome outcome;
  last_type_ = decoded.ok() ? WireType(*decoded) : 0;
  if (!decoded.ok()) {
    outcome = Outcome::Failed(decoded.status());
  } else if (const Request& r = *decoded; capacity < ResponseSize(r)) {
    outcome = Outcome{.status = VIRTIO_RMEM_S_INVALID,
                      .message = absl::StrCat(RequestTypeName(WireType(r)), " needs ", ResponseSize(r),
                                              " writable bytes for its response, the chain has ",
                                              capacity)};
  } else {
    outcome = Run(r);
    if (outcome.status != VIRTIO_RMEM_S_OK) {
      outcome.message = absl::StrCat(RequestTypeName(WireType(r)), ": ", outcome.message);
    }
  }
  if (outcome.status == VIRTIO_RMEM_S_OK) return std::move(outcome.response);
  ++counters_.failed;
  ++counters_.failed_by_status[outcome.status];
  last_error_ = absl::StrCat(WireStatusName(outcome.status), ": ", outcome.message);
  virtio_rmem_resp_hdr hdr{};
  hdr.status = outcome.status;
  return Encode(hdr);
}

RmemDevice::Outcome RmemDevice::Run(const Request& request) {
  const Policy& policy = broker_.policy();
  // Responses are zero-initialised: their status is already OK (0).
  auto ok = [](const auto& response) { return Outcome{.response = Encode(response)}; };
  if (const auto* r = std::get_if<GetHeapRequest>(&request)) {
    if (r->heap >= policy.heap_count()) {
      return Outcome::Failed(absl::NotFoundError(absl::StrCat(
          "no heap ", r->heap, " (the device has ", policy.heap_count(), ")")));
    }
    const HeapId id(r->heap);
    const HeapConfig& heap = policy.heap(id);
    const std::vector<PoolStats> pools = broker_.pool_stats();
    virtio_rmem_resp_get_heap resp{};
    CopyName(resp.name, heap.name);
    uint64_t max_align = 0;
    for (size_t c : policy.heap_carveouts(id)) {
      const Carveout& carveout = broker_.carveouts()[c];
      if (resp.size_bytes == 0) CopyName(resp.use_case, carveout.use_case);
      resp.size_bytes += carveout.size;
      resp.free_bytes += pools[c].stats.free.bytes();
      max_align = std::max(max_align, carveout.max_align);
    }
    resp.max_align = max_align;
    const HeapAccess* access = policy.FindAccess(id, vm_);
    resp.quota_bytes = access != nullptr ? access->quota_bytes : 0;
    resp.flags = (heap.cpu_map_allowed ? VIRTIO_RMEM_HEAP_F_CPU_MAP : 0) |
                 (access != nullptr && access->may_allocate ? VIRTIO_RMEM_HEAP_F_MAY_ALLOC : 0) |
                 (heap.owner_may_revoke ? VIRTIO_RMEM_HEAP_F_REVOKE : 0);
    resp.rights = access != nullptr ? access->max_rights.bits() : 0;
    return ok(resp);
  }
  if (const auto* r = std::get_if<GetPeerRequest>(&request)) {
    if (r->peer >= peers_.size()) {
      return Outcome::Failed(absl::NotFoundError(
          absl::StrCat("no peer ", r->peer, " (the device lists ", peers_.size(), ")")));
    }
    virtio_rmem_resp_get_peer resp{};
    resp.vm_id = peers_[r->peer].value();
    CopyName(resp.name, policy.FindVm(peers_[r->peer])->name);
    return ok(resp);
  }
  if (const auto* r = std::get_if<AllocRequest>(&request)) {
    if (r->heap >= policy.heap_count()) {
      return Outcome::Failed(absl::NotFoundError(absl::StrCat("no heap ", r->heap)));
    }
    absl::StatusOr<Allocation> a =
        broker_.Alloc(vm_, policy.heap(HeapId(r->heap)).name, r->size, r->align);
    if (!a.ok()) return Outcome::Failed(a.status());
    virtio_rmem_resp_alloc resp{};
    resp.buffer = a->id.value();
    resp.size = a->pages.size_bytes();
    resp.shm_offset = OffsetOf(a->mapped_at);
    resp.rights = a->rights.bits();
    return ok(resp);
  }
  if (const auto* r = std::get_if<FreeRequest>(&request)) {
    if (absl::Status s = broker_.Free(vm_, r->buffer); !s.ok()) return Outcome::Failed(s);
    return ok(virtio_rmem_resp_hdr{});
  }
  if (const auto* r = std::get_if<OfferRequest>(&request)) {
    absl::StatusOr<Handle> h = r->kind == TxnKind::kShare
                                   ? broker_.Share(vm_, r->buffer, r->receivers)
                                   : broker_.Lend(vm_, r->buffer, r->receivers);
    if (!h.ok()) return Outcome::Failed(h.status());
    virtio_rmem_resp_offer resp{};
    resp.handle = h->value();
    return ok(resp);
  }
  if (const auto* r = std::get_if<DonateRequest>(&request)) {
    absl::StatusOr<Handle> h = broker_.Donate(vm_, r->buffer, r->to);
    if (!h.ok()) return Outcome::Failed(h.status());
    virtio_rmem_resp_offer resp{};
    resp.handle = h->value();
    return ok(resp);
  }
  if (const auto* r = std::get_if<RetrieveRequest>(&request)) {
    absl::StatusOr<Retrieval> got = broker_.Retrieve(vm_, r->handle);
    if (!got.ok()) return Outcome::Failed(got.status());
    virtio_rmem_resp_retrieve resp{};
    resp.size = got->size_bytes;
    resp.shm_offset = OffsetOf(got->mapped_at);
    resp.buffer = got->buffer ? got->buffer->value() : 0;
    resp.owner = got->owner.value();
    resp.rights = got->rights.bits();
    resp.kind = KindOf(got->kind);
    return ok(resp);
  }
  if (const auto* r = std::get_if<RelinquishRequest>(&request)) {
    if (absl::Status s = broker_.Relinquish(vm_, r->handle); !s.ok()) return Outcome::Failed(s);
    return ok(virtio_rmem_resp_hdr{});
  }
  const auto& r = std::get<ReclaimRequest>(request);
  if (absl::Status s = broker_.Reclaim(
          vm_, r.buffer, r.revoke ? ReclaimMode::kRevoke : ReclaimMode::kWaitForBorrowers);
      !s.ok()) {
    return Outcome::Failed(s);
  }
  virtio_rmem_resp_reclaim resp{};
  resp.shm_offset = OffsetOf(broker_.OwnerMappedAt(vm_, r.buffer));
  return ok(resp);
}

std::optional<virtio_rmem_event> RmemDevice::NextEvent() {
  std::vector<Event> events = broker_.DrainEvents(vm_, 1);
  if (events.empty()) return std::nullopt;
  const Event& e = events.front();
  virtio_rmem_event out{};
  out.type = EventTypeOf(e.kind);
  out.reason = e.reason == EventReason::kPeerGone ? VIRTIO_RMEM_REASON_PEER_GONE
                                                  : VIRTIO_RMEM_REASON_REQUEST;
  out.handle = e.handle.value();
  out.buffer = e.buffer.value();
  out.size = e.size_bytes;
  out.peer = e.peer.value();
  out.rights = e.rights.bits();
  out.kind = KindOf(e.txn);
  out.heap = e.heap.value();
  const EventQueue* queue = broker_.events(vm_);
  const uint64_t dropped = queue != nullptr ? queue->dropped() : 0;
  out.dropped = static_cast<uint32_t>(std::min<uint64_t>(dropped - dropped_reported_, UINT32_MAX));
  dropped_reported_ = dropped;
  return out;
}

absl::Status RmemDevice::GuestGone() { return broker_.TeardownVm(vm_); }

}  // namespace rmem::virtio_rmem

// DecodeRequest: the one place where a guest's request bytes become typed
// values. Checks in the order request.h gives; the first failure answers.
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "virtio_rmem/request.h"
#include "virtio_rmem/wire.h"

namespace rmem::virtio_rmem {
namespace {

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

bool Negotiated(const DecodeContext& c, int bit) { return (c.features >> bit) & 1; }

// The exact readable size of a fixed-size request type; 0 for SHARE/LEND
// (variable) and unknown types.
size_t FixedSize(uint32_t type) {
  switch (type) {
    case VIRTIO_RMEM_REQ_GET_HEAP: return sizeof(virtio_rmem_req_get_heap);
    case VIRTIO_RMEM_REQ_GET_PEER: return sizeof(virtio_rmem_req_get_peer);
    case VIRTIO_RMEM_REQ_ALLOC: return sizeof(virtio_rmem_req_alloc);
    case VIRTIO_RMEM_REQ_FREE: return sizeof(virtio_rmem_req_free);
    case VIRTIO_RMEM_REQ_DONATE: return sizeof(virtio_rmem_req_donate);
    case VIRTIO_RMEM_REQ_RETRIEVE:
    case VIRTIO_RMEM_REQ_RELINQUISH: return sizeof(virtio_rmem_req_handle);
    case VIRTIO_RMEM_REQ_RECLAIM: return sizeof(virtio_rmem_req_reclaim);
    default: return 0;
  }
}

bool Known(uint32_t type) {
  return FixedSize(type) != 0 || type == VIRTIO_RMEM_REQ_SHARE || type == VIRTIO_RMEM_REQ_LEND;
}

absl::StatusOr<Request> DecodeOffer(std::span<const uint8_t> in, uint32_t type,
                                                const DecodeContext& c) {
  const std::string name = RequestTypeName(type);
  if (in.size() < sizeof(virtio_rmem_req_share)) {
    return Invalid(absl::StrCat(name, " of ", in.size(), " bytes is shorter than its ",
                                sizeof(virtio_rmem_req_share), "-byte header"));
  }
  const auto req = ReadWire<virtio_rmem_req_share>(in);
  const uint32_t n = req.num_receivers;
  if (n == 0 || n > c.max_receivers) {
    return Invalid(absl::StrCat(name, " names ", n, " receivers; the device takes 1 to ",
                                c.max_receivers));
  }
  const size_t want = sizeof(virtio_rmem_req_share) + size_t{n} * sizeof(virtio_rmem_receiver);
  if (in.size() != want) {
    return Invalid(absl::StrCat(name, " with ", n, " receivers must be ", want, " bytes, not ",
                                in.size()));
  }
  if (req.hdr.reserved != 0 || req.reserved != 0) {
    return Invalid(absl::StrCat(name, ": reserved fields must be 0"));
  }
  OfferRequest offer{.kind = type == VIRTIO_RMEM_REQ_SHARE ? TxnKind::kShare : TxnKind::kLend,
                     .buffer = BufferId(req.buffer)};
  for (uint32_t i = 0; i < n; ++i) {
    const auto r = ReadWire<virtio_rmem_receiver>(
        in.subspan(sizeof(virtio_rmem_req_share) + i * sizeof(virtio_rmem_receiver)));
    const std::optional<Rights> rights = Rights::FromBits(r.rights);
    if (!rights) {
      return Invalid(absl::StrCat(name, ": receiver ", i, " has undefined rights bits ",
                                  Hex(r.rights)));
    }
    offer.receivers.push_back(Offer{.vm = VmId(r.vm_id), .rights = *rights});
  }
  return Request(std::move(offer));  // NOLINT
}

}  // namespace

std::string RequestTypeName(uint32_t type) {
  switch (type) {
    case VIRTIO_RMEM_REQ_GET_HEAP: return "GET_HEAP";
    case VIRTIO_RMEM_REQ_GET_PEER: return "GET_PEER";
    case VIRTIO_RMEM_REQ_ALLOC: return "ALLOC";
    case VIRTIO_RMEM_REQ_FREE: return "FREE";
    case VIRTIO_RMEM_REQ_SHARE: return "SHARE";
    case VIRTIO_RMEM_REQ_LEND: return "LEND";
    case VIRTIO_RMEM_REQ_DONATE: return "DONATE";
    case VIRTIO_RMEM_REQ_RETRIEVE: return "RETRIEVE";
    case VIRTIO_RMEM_REQ_RELINQUISH: return "RELINQUISH";
    case VIRTIO_RMEM_REQ_RECLAIM: return "RECLAIM";
    default: return absl::StrCat("type ", Hex(type));
  }
}

uint32_t WireType(const Request& request) {
  return std::visit(
      [](const auto& r) -> uint32_t {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, GetHeapRequest>) return VIRTIO_RMEM_REQ_GET_HEAP;
        if constexpr (std::is_same_v<T, GetPeerRequest>) return VIRTIO_RMEM_REQ_GET_PEER;
        if constexpr (std::is_same_v<T, AllocRequest>) return VIRTIO_RMEM_REQ_ALLOC;
        if constexpr (std::is_same_v<T, FreeRequest>) return VIRTIO_RMEM_REQ_FREE;
        if constexpr (std::is_same_v<T, OfferRequest>) {
          return r.kind == TxnKind::kShare ? VIRTIO_RMEM_REQ_SHARE : VIRTIO_RMEM_REQ_LEND;
        }
        if constexpr (std::is_same_v<T, DonateRequest>) return VIRTIO_RMEM_REQ_DONATE;
        if constexpr (std::is_same_v<T, RetrieveRequest>) return VIRTIO_RMEM_REQ_RETRIEVE;
        if constexpr (std::is_same_v<T, RelinquishRequest>) return VIRTIO_RMEM_REQ_RELINQUISH;
        return VIRTIO_RMEM_REQ_RECLAIM;
      },
      request);
}

absl::StatusOr<Request> DecodeRequest(std::span<const uint8_t> in,
                                                  const DecodeContext& c) {
  if (in.size() < sizeof(virtio_rmem_req_hdr)) {
    return Invalid(absl::StrCat("request of ", in.size(), " bytes has no ",
                                sizeof(virtio_rmem_req_hdr), "-byte header"));
  }
  const auto hdr = ReadWire<virtio_rmem_req_hdr>(in);
  const uint32_t type = hdr.type;
  const std::string name = RequestTypeName(type);
  if (!Known(type)) {
    return absl::UnimplementedError(absl::StrCat("unknown request ", name));
  }
  if ((type == VIRTIO_RMEM_REQ_LEND || type == VIRTIO_RMEM_REQ_DONATE) &&
      !Negotiated(c, VIRTIO_RMEM_F_LEND_DONATE)) {
    return absl::UnimplementedError(
        absl::StrCat(name, " needs feature VIRTIO_RMEM_F_LEND_DONATE"));
  }
  if (type == VIRTIO_RMEM_REQ_SHARE || type == VIRTIO_RMEM_REQ_LEND) {
    return DecodeOffer(in, type, c);
  }
  const size_t want = FixedSize(type);
  if (in.size() != want) {
    return Invalid(absl::StrCat(name, " must be ", want, " bytes, not ", in.size()));
  }
  if (hdr.reserved != 0) return Invalid(absl::StrCat(name, ": reserved fields must be 0"));
  switch (type) {
    case VIRTIO_RMEM_REQ_GET_HEAP: {
      const auto r = ReadWire<virtio_rmem_req_get_heap>(in);
      if (r.reserved != 0) return Invalid(absl::StrCat(name, ": reserved fields must be 0"));
      return Request(GetHeapRequest{.heap = r.heap});
    }
    case VIRTIO_RMEM_REQ_GET_PEER: {
      const auto r = ReadWire<virtio_rmem_req_get_peer>(in);
      if (r.reserved != 0) return Invalid(absl::StrCat(name, ": reserved fields must be 0"));
      return Request(GetPeerRequest{.peer = r.peer});
    }
    case VIRTIO_RMEM_REQ_ALLOC: {
      const auto r = ReadWire<virtio_rmem_req_alloc>(in);
      if (r.flags != 0) {
        return Invalid(absl::StrCat(name, ": undefined flags ", Hex(r.flags)));
      }
      return Request(AllocRequest{.heap = r.heap, .size = r.size, .align = r.align});
    }
    case VIRTIO_RMEM_REQ_FREE:
      return Request(FreeRequest{.buffer = BufferId(ReadWire<virtio_rmem_req_free>(in).buffer)});
    case VIRTIO_RMEM_REQ_DONATE: {
      const auto r = ReadWire<virtio_rmem_req_donate>(in);
      if (r.reserved != 0) return Invalid(absl::StrCat(name, ": reserved fields must be 0"));
      return Request(DonateRequest{.buffer = BufferId(r.buffer), .to = VmId(r.vm_id)});
    }
    case VIRTIO_RMEM_REQ_RETRIEVE:
      return Request(RetrieveRequest{.handle = Handle(ReadWire<virtio_rmem_req_handle>(in).handle)});
    case VIRTIO_RMEM_REQ_RELINQUISH:
      return Request(
          RelinquishRequest{.handle = Handle(ReadWire<virtio_rmem_req_handle>(in).handle)});
    case VIRTIO_RMEM_REQ_RECLAIM: {
      const auto r = ReadWire<virtio_rmem_req_reclaim>(in);
      if (r.reserved != 0) return Invalid(absl::StrCat(name, ": reserved fields must be 0"));
      if ((r.flags & ~VIRTIO_RMEM_RECLAIM_REVOKE) != 0) {
        return Invalid(absl::StrCat(name, ": undefined flags ", Hex(r.flags)));
      }
      const bool revoke = r.flags & VIRTIO_RMEM_RECLAIM_REVOKE;
      if (revoke && !Negotiated(c, VIRTIO_RMEM_F_RECLAIM_REVOKE)) {
        return absl::UnimplementedError(absl::StrCat(name, " with revoke needs feature "
                                               "VIRTIO_RMEM_F_RECLAIM_REVOKE"));
      }
      return Request(ReclaimRequest{.buffer = BufferId(r.buffer), .revoke = revoke});
    }
  }
  return absl::UnimplementedError(absl::StrCat("unknown request ", name));
}

}  // namespace rmem::virtio_rmem

// virtio-rmem requests as the device sees them after decoding
// (docs/virtio-rmem.md, section 7): typed ids, rights checked for undefined
// bits, lengths and reserved fields already validated. The decoder is the
// one place where guest bytes become these; everything after it works on
// typed values only.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/broker.h"
#include "broker/types.h"

namespace rmem::virtio_rmem {

struct GetHeapRequest {
  uint32_t heap = 0;
};
struct GetPeerRequest {
  uint32_t peer = 0;
};
struct AllocRequest {
  uint32_t heap = 0;
  uint64_t size = 0;
  uint64_t align = 0;
};
struct FreeRequest {
  BufferId buffer;
};
// SHARE (kShare) and LEND (kLend).
struct OfferRequest {
  TxnKind kind = TxnKind::kShare;
  BufferId buffer;
  std::vector<Offer> receivers;
};
struct DonateRequest {
  BufferId buffer;
  VmId to;
};
struct RetrieveRequest {
  Handle handle;
};
struct RelinquishRequest {
  Handle handle;
};
struct ReclaimRequest {
  BufferId buffer;
  bool revoke = false;
};

using Request = std::variant<GetHeapRequest, GetPeerRequest, AllocRequest, FreeRequest,
                             OfferRequest, DonateRequest, RetrieveRequest, RelinquishRequest,
                             ReclaimRequest>;

// What decoding depends on: the negotiated features and the device's limit.
struct DecodeContext {
  uint64_t features = 0;  // negotiated device feature bits
  uint32_t max_receivers = 1;
};

// The request in `readable` (the chain's device-readable bytes), checked in
// this order: a whole header (InvalidArgument), a known type
// (Unimplemented), its feature negotiated (Unimplemented), the exact length
// for the type, reserved fields zero, no undefined flag or rights bits, a
// receiver count within 1..max_receivers (all InvalidArgument). The device
// answers these as VIRTIO_RMEM_S_INVALID and _UNSUPPORTED (WireStatus).
absl::StatusOr<Request> DecodeRequest(std::span<const uint8_t> readable,
                                      const DecodeContext& context);

// The request type in a header, for messages ("ALLOC", "type 0x99").
std::string RequestTypeName(uint32_t type);
// The wire type a decoded request came as (VIRTIO_RMEM_REQ_*).
uint32_t WireType(const Request& request);

}  // namespace rmem::virtio_rmem

// libFuzzer target: DecodeRequest on arbitrary bytes, with the first byte
// choosing the negotiated features and the receiver limit. Any outcome is
// fine; a crash, a sanitizer report or a decoded request that breaks the
// decoder's promises (receiver count within the limit, only defined rights
// bits, a known type) is a bug.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <variant>

#include "virtio_rmem/request.h"
#include "virtio_rmem/uapi/virtio_rmem.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rmem::virtio_rmem;  // NOLINT
  if (size == 0) return 0;
  const DecodeContext context{.features = data[0] & 3u, .max_receivers = 1u + (data[0] >> 4)};
  const absl::StatusOr<Request> r =
      DecodeRequest(std::span<const uint8_t>(data + 1, size - 1), context);
  if (!r.ok()) {
    if (r.status().message().empty() ||
        (r.status().code() != absl::StatusCode::kInvalidArgument &&
         r.status().code() != absl::StatusCode::kUnimplemented)) {
      std::abort();
    }
    return 0;
  }
  if (const auto* offer = std::get_if<OfferRequest>(&*r)) {
    if (offer->receivers.empty() || offer->receivers.size() > context.max_receivers) std::abort();
    for (const rmem::Offer& o : offer->receivers) {
      if ((o.rights.bits() & ~uint32_t{VIRTIO_RMEM_RIGHTS_ALL}) != 0) std::abort();
    }
    if (offer->kind == rmem::TxnKind::kLend && (context.features & 1) == 0) std::abort();
  }
  return 0;
}

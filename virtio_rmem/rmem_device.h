// RmemDevice: the virtio-rmem device of one guest (docs/virtio-rmem.md),
// transport-free. It turns a request chain's bytes into a broker call and
// the result into response bytes, and the broker's events for the guest
// into eventq records. One Broker serves every guest's RmemDevice, so
// buffers move between them; like the broker it is single-threaded.
//
// Where buffers appear: the broker's Stage2 backend maps them into this
// guest's shared memory region and reports the region offset as the
// GuestAddr of the mapping (broker/backend/stage2.h); the device passes it
// on as shm_offset.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "broker/broker.h"
#include "virtio_rmem/request.h"
#include "virtio_rmem/uapi/virtio_rmem.h"

namespace rmem::virtio_rmem {

// The device feature bits rmemd offers.
inline constexpr uint64_t kOfferedFeatures =
    (uint64_t{1} << VIRTIO_RMEM_F_LEND_DONATE) | (uint64_t{1} << VIRTIO_RMEM_F_RECLAIM_REVOKE);

class RmemDevice {
 public:
  // `broker` must outlive the device; `vm` must be a VM of its policy.
  RmemDevice(Broker& broker, VmId vm);

  VmId vm() const { return vm_; }
  // The configuration space (struct virtio_rmem_config), 24 bytes.
  std::vector<uint8_t> Config() const;
  // The driver's accepted feature bits (device-specific ones are kept;
  // bits the device did not offer are dropped).
  void SetFeatures(uint64_t features) { features_ = features & kOfferedFeatures; }
  uint64_t features() const { return features_; }

  // One requestq chain: `request` is its device-readable bytes, `capacity`
  // the size of its device-writable part. Returns the bytes to write there
  // (never more than `capacity`); empty when capacity < 8, which the
  // transport returns with used length 0 and counts as unanswerable.
  std::vector<uint8_t> HandleRequest(std::span<const uint8_t> request, size_t capacity);

  // The next event for this guest's eventq, oldest first; nullopt when none
  // is queued. `dropped` counts what the broker's bounded queue lost since
  // the last delivered event.
  std::optional<virtio_rmem_event> NextEvent();

  // The guest went away (its VMM disconnected) or reset the device: the
  // broker tears the VM down (revoke, scrub, reclaim). Idempotent. It
  // always happens; an error says the state store could not record it.
  absl::Status GuestGone();

  struct Counters {
    uint64_t requests = 0;       // chains answered
    uint64_t failed = 0;         // answered with a status other than OK
    uint64_t unanswerable = 0;   // writable part under 8 bytes
    std::map<uint32_t, uint64_t> failed_by_status;  // VIRTIO_RMEM_S_* -> count
  };
  const Counters& counters() const { return counters_; }
  // The last rejected request, for logs: "ALLOC: NOT_FOUND: ...".
  const std::string& last_error() const { return last_error_; }
  // The type (VIRTIO_RMEM_REQ_*) of the last request answered; 0 when it
  // could not be decoded.
  uint32_t last_type() const { return last_type_; }

 private:
  struct Outcome;
  Outcome Run(const Request& request);

  Broker& broker_;
  VmId vm_;
  uint64_t features_ = 0;
  std::vector<VmId> peers_;  // every other VM of the policy, in its order
  uint64_t dropped_reported_ = 0;
  Counters counters_;
  std::string last_error_;
  uint32_t last_type_ = 0;
};

// The response status for a broker error (the mapping of
// docs/virtio-rmem.md, section 7.1): InvalidArgument INVALID, NotFound
// NOT_FOUND, PermissionDenied DENIED, FailedPrecondition BUSY,
// ResourceExhausted NO_SPACE, Unimplemented UNSUPPORTED, anything else
// DEVICE_ERROR.
uint32_t WireStatus(const absl::Status& status);
const char* WireStatusName(uint32_t status);

}  // namespace rmem::virtio_rmem

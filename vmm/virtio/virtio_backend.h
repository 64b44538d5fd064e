// What a virtio transport (virtio_mmio.h) needs from the device behind it.
// The transport owns the guest-visible registers and the driver's status
// handshake; the backend is the device itself: here always a vhost-user
// backend in another process (vhost_user/frontend.h), reached through this
// interface so that the transport is tested without one.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "broker/types.h"

namespace rmem::vmm {

// One virtqueue as the driver configured it: guest physical addresses of
// the descriptor table, driver (avail) and device (used) rings, and the
// eventfds for driver→device kicks and device→driver calls.
struct VirtqueueSetup {
  int index = 0;
  uint16_t size = 0;
  GuestAddr desc;
  GuestAddr driver;
  GuestAddr device;
  int kick_fd = -1;  // signalled by KVM (ioeventfd) when the driver notifies the queue
  int call_fd = -1;  // signalled by the backend when it used buffers
};

// A VIRTIO shared memory region the device exposes (VIRTIO 1.2 §2.10): its
// id and length. The transport places it in guest physical space.
struct ShmRegionInfo {
  uint8_t id = 0;
  uint64_t size = 0;
};

class VirtioBackend {
 public:
  virtual ~VirtioBackend() = default;

  virtual uint32_t device_id() const = 0;
  // Device feature bits, VIRTIO_F_VERSION_1 (bit 32) included.
  virtual uint64_t device_features() const = 0;
  virtual int num_queues() const = 0;
  virtual uint16_t max_queue_size() const = 0;
  virtual std::vector<ShmRegionInfo> shm_regions() const = 0;

  // Device configuration space; errors are reported to the caller, which
  // reads zeros / drops the write (the guest cannot be told).
  virtual absl::Status ReadConfig(uint32_t offset, std::span<uint8_t> data) = 0;
  virtual absl::Status WriteConfig(uint32_t offset, std::span<const uint8_t> data) = 0;

  // The driver set DRIVER_OK: start the device with the negotiated features
  // and the queues the driver enabled. An error puts the device in
  // DEVICE_NEEDS_RESET.
  virtual absl::Status Start(uint64_t driver_features,
                             std::span<const VirtqueueSetup> queues) = 0;
  // The driver reset the device (status 0) after a Start: stop all queues.
  virtual absl::Status Stop() = 0;

  // An eventfd that becomes readable when the device failed for good (its
  // back-end process went away), or -1 if it cannot fail that way. The
  // transport then sets DEVICE_NEEDS_RESET and tells the driver.
  virtual int failure_fd() const { return -1; }

  // The VM is stopping: stop waiting for a back-end that went away (a
  // vCPU blocked in a call above then gets its error and can stop too).
  virtual void Abandon() {}
};

}  // namespace rmem::vmm

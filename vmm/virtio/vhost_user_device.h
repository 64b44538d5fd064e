// Puts a vhost-user device on a VM: connects to its backend, places the
// backend's shared memory regions in guest physical space, and adds a
// virtio-mmio transport for it to the bus. Architecture code chooses the
// addresses and the interrupt; this is the same on every architecture.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "broker/types.h"
#include "vmm/config/vm_config.h"
#include "vmm/vm.h"

namespace rmem::vmm {

struct VirtioPlacement {
  GuestAddr mmio_base;  // the transport's window (kVirtioMmioWindow bytes)
  IrqLine* irq = nullptr;
  // Shared memory regions go at [shm_next, shm_limit), each 2 MiB aligned;
  // shm_next advances past what this device took.
  GuestAddr* shm_next = nullptr;
  GuestAddr shm_limit;
};

// With `device.tag` the virtio-fs config space is served by the VMM
// (LocalConfigBackend). Errors name the device and socket: the backend is
// unreachable or broke negotiation, its regions do not fit, or a virtio-fs
// device has neither a tag= nor a back-end serving its config space.
// `reconnect_timeout`: how long the device waits for its back-end to come
// back after a hang-up (zero: it does not; vhost_user/frontend.h).
absl::Status AttachVhostUserDevice(Vm& vm, const DeviceConfig& device, int index,
                                   absl::Duration reconnect_timeout, const VirtioPlacement& where);

}  // namespace rmem::vmm

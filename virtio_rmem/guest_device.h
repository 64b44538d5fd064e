// GuestDevice: the virtio-rmem device of one guest as the vhost-user
// back-end serves it (vhost_user/device.h): request chains go to its
// RmemDevice, broker events go out on the eventq, and the guest's shared
// memory region is where ShmRegionStage2 maps its buffers (SHMEM_MAP through
// the back-end's DeviceHost).
//
// Connection lifecycle and the broker:
//   OnConnect     the VMM's process is noted (a pidfd on it);
//   OnRingStarted the request queue runs: the VM's region is attached to
//                 the stage-2 backend, which maps what the VM held before an
//                 rmemd restart (restored state), before the VMM hears the
//                 ring is enabled - so a reconnecting VMM resumes its guest
//                 with every mapping in place;
//   OnReset       the driver forgot every id and handle: the VM is torn
//                 down (revoke, scrub, reclaim), the connection lives on;
//   OnDisconnect  the VMM is gone or cut off. If it still had buffers
//                 mapped, the VMM process is killed (SIGKILL through a
//                 pidfd opened at connect) and waited for, so that no page
//                 can still be mapped when the broker scrubs and reuses it;
//                 then the region is detached and the VM torn down. The same
//                 kill serves ShmRegionStage2 when an unmap is not confirmed.
// Events the broker queues for any guest are pushed by FlushEvents, which
// the owner calls after every request of every guest (a SHARE by one guest
// is an OFFERED event for another).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "broker/backend/shm_region_stage2.h"
#include "virtio_rmem/rmem_device.h"
#include "virtio_rmem/vhost_user/device.h"

namespace rmem::virtio_rmem {

class GuestDevice : public VirtioDevice, public ShmRegionMapper {
 public:
  // `broker`, `stage2` outlive the device. `after_request` runs after each
  // request chain (rmemd flushes every guest's events there).
  GuestDevice(Broker& broker, ShmRegionStage2& stage2, VmId vm, uint64_t region_bytes,
              std::function<void()> after_request);
  ~GuestDevice() override;

  // VirtioDevice
  uint32_t device_id() const override { return VIRTIO_ID_RMEM; }
  uint64_t device_features() const override { return kOfferedFeatures; }
  std::vector<QueueKind> queues() const override {
    return {QueueKind::kRequest, QueueKind::kDeviceToDriver};
  }
  std::vector<uint64_t> shmem_region_sizes() const override { return {region_bytes_}; }
  std::vector<uint8_t> ReadConfig() const override { return rmem_.Config(); }
  void OnConnect(DeviceHost& host) override;
  void OnRingStarted(uint16_t queue) override;
  uint32_t OnChain(uint16_t queue, const DescriptorChain& chain) override;
  void OnBuffersAvailable(uint16_t queue) override;
  void OnReset() override;
  void OnDisconnect() override;

  // ShmRegionMapper (called by ShmRegionStage2 during broker requests)
  absl::Status Map(uint64_t region_offset, int fd, uint64_t fd_offset, uint64_t length,
                   bool writable) override;
  absl::Status Unmap(uint64_t region_offset, uint64_t length) override;

  // rmemd is stopping: while the VMM is still connected, tears the VM down
  // (its mappings are unmapped through the VMM, borrowers revoked), so the
  // disconnect that follows finds nothing mapped and kills no VMM.
  void Retire();

  // Moves this guest's queued broker events into its eventq while the
  // driver has buffers posted; the rest wait for OnBuffersAvailable.
  void FlushEvents();

  VmId vm() const { return rmem_.vm(); }
  bool connected() const { return host_ != nullptr; }
  const RmemDevice& rmem() const { return rmem_; }
  uint64_t events_delivered() const { return events_delivered_; }

 private:
  // The broker forgets the VM (GuestGone); a failure to record it is logged.
  void TearDown();
  ShmRegionStage2& stage2_;
  RmemDevice rmem_;
  uint64_t region_bytes_;
  // Kills the connected VMM and waits until it has exited (its mappings
  // are gone then). A VMM in our own process (in-process tests) is not
  // killed: said on stderr.
  void SeverVmm();

  std::function<void()> after_request_;
  DeviceHost* host_ = nullptr;
  int vmm_pid_ = 0;     // the connected VMM (SO_PEERCRED at connect)
  int vmm_pidfd_ = -1;  // a handle on it, opened at connect
  std::deque<virtio_rmem_event> pending_;  // taken from the broker, not yet delivered
  uint64_t events_delivered_ = 0;
};

}  // namespace rmem::virtio_rmem

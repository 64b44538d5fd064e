// The virtio-mmio transport, modern interface only (VIRTIO 1.2 §4.2.2,
// Version 2), with the shared memory region registers (SHMSel 0x0ac,
// SHMLen 0x0b0/0x0b4, SHMBase 0x0b8/0x0bc). The device behind it is a
// VirtioBackend; the transport owns the registers, the status handshake and
// the eventfds:
//  - kicks: one eventfd per queue, registered with KVM as an ioeventfd on
//    QueueNotify with the queue index as datamatch, so a notify never exits to
//    the VMM (a notify that does reach MmioWrite signals the same eventfd);
//  - calls: one eventfd per queue that the backend signals; a watcher thread
//    turns each into InterruptStatus bit 0 and a level on the device's line,
//    which the driver's InterruptACK lowers (virtio-mmio has no MSI, and the
//    driver reads InterruptStatus, so an irqfd straight into the GIC would lose it).
// Guest mistakes (bad register widths, writes in the wrong state, features we
// did not offer) are ignored and counted, never fatal; see docs/vmm.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "broker/types.h"
#include "vmm/devices/mmio_device.h"
#include "base/fd.h"
#include "vmm/virtio/virtio_backend.h"

namespace rmem::vmm {

inline constexpr uint64_t kVirtioMmioWindow = 0x200;
inline constexpr uint64_t kVirtioMmioNotify = 0x050;

// Where the transport tells the guest a shared memory region lives.
struct ShmPlacement {
  uint8_t id = 0;
  GuestAddr base;
  uint64_t size = 0;
};

class VirtioMmioTransport final : public MmioDevice {
 public:
  // Registers an eventfd for guest writes of `datamatch` to `addr` (KVM's
  // ioeventfd in the VMM; a recorder in tests).
  using IoEventRegistrar = std::function<absl::Status(GuestAddr addr, uint64_t datamatch, int fd)>;

  // `name` labels log lines. The backend and irq outlive the transport.
  static absl::StatusOr<std::unique_ptr<VirtioMmioTransport>> Create(
      std::string name, GuestAddr base, VirtioBackend* backend, IrqLine* irq,
      std::vector<ShmPlacement> shm, const IoEventRegistrar& register_kick);
  ~VirtioMmioTransport() override;

  void MmioRead(uint64_t offset, std::span<uint8_t> data) override;
  void MmioWrite(uint64_t offset, std::span<const uint8_t> data) override;

  // Guest accesses that broke the transport's rules (for tests and the exit report).
  uint64_t guest_errors() const;

 private:
  struct Queue {
    uint16_t num = 0;
    bool ready = false;
    uint64_t desc = 0, driver = 0, device = 0;
    Fd kick;
    Fd call;
  };

  VirtioMmioTransport(std::string name, VirtioBackend* backend, IrqLine* irq,
                      std::vector<ShmPlacement> shm);
  uint32_t ReadRegLocked(uint64_t offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteRegLocked(uint64_t offset, uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteStatusLocked(uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResetLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetInterruptLocked(uint32_t bits) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateIrqLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void GuestErrorLocked(const std::string& what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WatchCalls();

  const std::string name_;
  VirtioBackend* const backend_;
  IrqLine* const irq_;
  const std::vector<ShmPlacement> shm_;
  const uint64_t device_features_;
  Fd stop_;  // eventfd ending the call watcher

  mutable absl::Mutex mu_;
  std::vector<Queue> queues_ ABSL_GUARDED_BY(mu_);
  uint32_t status_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t device_features_sel_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t driver_features_sel_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t driver_features_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t queue_sel_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t shm_sel_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t interrupt_status_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t config_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool irq_level_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t guest_errors_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread watcher_;
};

}  // namespace rmem::vmm

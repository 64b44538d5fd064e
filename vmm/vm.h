// A running guest, independent of architecture: KVM VM, RAM, vCPUs, the MMIO
// bus and the devices on it. arch/<arch>/ builds one (BuildVm), Run() drives
// it until the guest powers off, resets or crashes, the wall-clock timeout
// passes, SIGTERM/SIGINT arrive, or a vCPU fails.
//
// Threads: one per vCPU (KVM_RUN; MMIO exits go to devices on that thread)
// and the caller's thread, which waits on a signalfd, a timerfd and an
// eventfd the vCPUs signal when they stop. Stopping sets every vCPU's
// immediate_exit and kicks its thread with SIGUSR1, so no KVM_RUN outlives Run().
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vmm/devices/mmio_bus.h"
#include "vmm/kvm/kvm.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/kvm/kvm_slot_mapper.h"
#include "vmm/memory/shm_window.h"
#include "vmm/virtio/virtio_backend.h"

namespace rmem::vmm {

// Why a guest stopped. The process exit code for each is part of rmem-vmm's
// interface (docs/vmm.md): callers read it.
enum class VmExit {
  kPoweredOff,  // PSCI SYSTEM_OFF (or the architecture's equivalent): exit 0
  kReset,       // the guest asked for a reset; rmem-vmm does not reboot: exit 3
  kCrashed,     // the guest reported a crash (PSCI SYSTEM_CRASH-style event): exit 4
  kTimedOut,    // the wall-clock limit passed: exit 124, like timeout(1)
  kSignalled,   // SIGTERM or SIGINT: orderly shutdown, exit 143
  kIsolationViolation,  // the guest touched shared memory it was not granted: exit 5
};
int ExitCode(VmExit exit);
const char* VmExitName(VmExit exit);

class Vm {
 public:
  Vm(KvmVm kvm, GuestMemory ram) : kvm_(std::move(kvm)), ram_(std::move(ram)) {}
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  KvmVm& kvm() { return kvm_; }
  const GuestMemory& ram() const { return ram_; }
  MmioBus& bus() { return bus_; }
  std::vector<KvmVcpu>& vcpus() { return vcpus_; }

  // Keeps `line` alive as long as the VM; returns it for devices to use.
  IrqLine* Own(std::unique_ptr<IrqLine> line);
  // Keeps a KVM object (e.g. the interrupt controller's device fd) open as long as the VM.
  void OwnFd(Fd fd) { fds_.push_back(std::move(fd)); }
  // The memslot pool for shared memory pieces (created on first use).
  KvmSlotMapper* slot_mapper();
  // Keeps `windows` alive as long as the VM. Accesses that exit to the VMM
  // inside them are isolation violations: reported with their address, and
  // the guest is stopped.
  ShmWindows* OwnShmWindows(std::unique_ptr<ShmWindows> windows);
  // Keeps a device's backend alive as long as the VM (after its transport).
  VirtioBackend* OwnBackend(std::unique_ptr<VirtioBackend> backend);
  // Places `device` on the bus at [base, base + size) and keeps it alive.
  absl::Status AddDevice(std::string name, GuestAddr base, uint64_t size,
                         std::unique_ptr<MmioDevice> device);

  // Runs until the guest stops (see VmExit). An error Status means the VMM
  // failed (a KVM_RUN error, an exit reason we cannot handle), naming it.
  // A zero timeout means none. Called once.
  absl::StatusOr<VmExit> Run(absl::Duration timeout);

  // What a run cost, for --stats: exits to the VMM and who caused them.
  struct Stats {
    uint64_t exits = 0;      // KVM_RUN returns to rmem-vmm, all reasons
    uint64_t unclaimed = 0;  // MMIO no device claimed
    std::vector<std::pair<std::string, uint64_t>> mmio_by_device;
  };
  Stats stats() const;

 private:
  void VcpuLoop(int index);
  std::optional<std::string> ClassifyViolation(GuestAddr addr, bool is_write) const;
  // The first outcome wins; later ones are dropped.
  void Finish(absl::StatusOr<VmExit> outcome);

  // Declared in dependency order, so destroyed in reverse: devices (virtio
  // transports) before their backends, backends (whose threads map shared
  // memory) before the windows, windows (which remove memslots) before the
  // slot pool, all before the KVM VM and its RAM.
  KvmVm kvm_;
  GuestMemory ram_;
  std::vector<KvmVcpu> vcpus_;
  std::vector<Fd> fds_;
  std::vector<std::unique_ptr<IrqLine>> irqs_;
  std::unique_ptr<KvmSlotMapper> slot_mapper_;
  std::vector<std::unique_ptr<ShmWindows>> shm_windows_;
  std::vector<std::unique_ptr<VirtioBackend>> backends_;
  std::vector<std::unique_ptr<MmioDevice>> devices_;
  MmioBus bus_;

  std::atomic<bool> stopping_{false};
  int done_fd_ = -1;  // eventfd: a vCPU stopped
  absl::Mutex mu_;
  std::optional<absl::StatusOr<VmExit>> outcome_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> unclaimed_mmio_{0};
  std::atomic<uint64_t> exits_{0};
};

}  // namespace rmem::vmm

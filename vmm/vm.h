// A running guest, independent of architecture: KVM VM, RAM, vCPUs, the MMIO
// bus and the devices on it. arch/<arch>/ builds one (BuildVm), Run() drives
// it until the guest powers off, resets or crashes, the wall-clock timeout
// passes, SIGTERM/SIGINT arrive, a vCPU fails, or (ViolationPolicy::kStop)
// the guest touches shared memory it was not granted. Under the default
// policy such an access only costs the guest an external abort.
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
#include "vmm/arch/external_abort.h"
#include "vmm/config/vm_config.h"
#include "vmm/devices/mmio_bus.h"
#include "vmm/kvm/kvm.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/kvm/kvm_slot_mapper.h"
#include "vmm/memory/shm_window.h"
#include "vmm/memory/violation_log.h"
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
  // The guest touched shared memory it was not granted and was stopped for
  // it (--on-violation stop, or a KVM that cannot inject an abort): exit 5.
  kIsolationViolation,
};
int ExitCode(VmExit exit);
// rmem-vmm's exit status for a run that ended with `exit` after `violations`
// isolation violations: ExitCode(exit), except that a guest that powered off
// after violations (each answered with an external abort) exits 5 too, so
// that a caller learns of them. Other ways of stopping keep their status.
int ExitStatus(VmExit exit, uint64_t violations);
const char* VmExitName(VmExit exit);

class Vm {
 public:
  // Violations are reported on stderr.
  Vm(KvmVm kvm, GuestMemory ram);
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
  // inside them are isolation violations: counted, reported with their
  // address, and answered as SetViolationPolicy says.
  ShmWindows* OwnShmWindows(std::unique_ptr<ShmWindows> windows);
  // How isolation violations are answered (docs/vmm.md, "Policy"): kAbort
  // injects an external data abort with `injector` and the guest continues;
  // kStop, or kAbort without an injector (this KVM cannot), stops the guest,
  // and `stop_reason` ends the violation's log line. `injector` also answers
  // accesses KVM could not decode outside RAM (KVM_EXIT_ARM_NISV) that are
  // no violation. Before Run(); by default the guest is stopped.
  void SetViolationPolicy(ViolationPolicy policy, std::unique_ptr<ExternalAbortInjector> injector,
                          std::string stop_reason);
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
    uint64_t undecoded = 0;  // accesses outside RAM KVM could not decode, not violations
    uint64_t shm_waits = 0;  // shared memory accesses that waited for a back-end to reconnect
    // Bytes of shared memory rmem-vmm loaded or stored itself on the guest's
    // behalf (an access that waited for a back-end, then performed on the
    // host mapping); guests' own accesses never pass through the VMM.
    uint64_t shm_bytes_accessed = 0;
    std::vector<std::pair<std::string, uint64_t>> mmio_by_device;
  };
  Stats stats() const;
  // Isolation violations so far (all of them; only the first few are logged).
  const ViolationLog& violations() const { return violations_; }

 private:
  void VcpuLoop(int index);
  std::optional<std::string> ClassifyViolation(GuestAddr addr, bool is_write) const;
  // While `addr` is in a shared memory region whose back-end is away (the
  // frontend reconnects), waits for it to come back, or for Run to stop.
  void AwaitShm(int index, GuestAddr addr);
  // Performs an access of up to 8 bytes on a piece that maps `addr` with
  // that right (an empty `data` only checks); false if none does.
  bool ShmAccess(GuestAddr addr, std::span<uint8_t> data, bool is_write);
  // The sum of the shared memory windows' changes().
  uint64_t ShmChanges() const;
  // After KVM_RUN failed with EFAULT: whether the shared memory windows
  // changed since `since` (waiting up to kRevokedPieceWait for it), so that
  // running again may succeed; false without windows.
  bool AwaitShmChange(int index, uint64_t since);
  // Records and answers one violation; false if the vCPU must stop (the
  // outcome is then set).
  bool OnViolation(int index, KvmVcpu& vcpu, const std::string& what);
  // An access KVM could not decode, in no shared memory region; false if the
  // vCPU must stop.
  bool OnUndecodedAccess(int index, KvmVcpu& vcpu, GuestAddr addr, bool is_write);
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
  std::atomic<uint64_t> undecoded_{0};
  static constexpr absl::Duration kRevokedPieceWait = absl::Seconds(5);
  std::atomic<uint64_t> revoked_waits_{0};  // KVM_RUN EFAULTs waited out (logged up to a limit)
  std::atomic<uint64_t> shm_waits_{0};  // accesses that waited for a back-end to come back
  std::atomic<uint64_t> exits_{0};

  // Set before Run(), read by the vCPU threads.
  ViolationPolicy violation_policy_ = ViolationPolicy::kStop;
  std::unique_ptr<ExternalAbortInjector> abort_injector_;
  std::string stop_reason_ = "stopping the guest";
  ViolationLog violations_;
};

}  // namespace rmem::vmm

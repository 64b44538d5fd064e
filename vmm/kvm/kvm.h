// Thin, architecture-neutral wrappers over the KVM ioctls rmem-vmm uses.
// Every failure is a Status naming the ioctl and errno; architecture code
// (arch/<arch>/) adds what only it needs through Ioctl().
#pragma once

#include <linux/kvm.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "broker/types.h"
#include "vmm/devices/mmio_device.h"
#include "base/fd.h"

namespace rmem::vmm {

// ioctl(fd, request, arg) with EINTR retried; the result or ErrnoError(name).
absl::StatusOr<int> Ioctl(int fd, unsigned long request, const char* name, uintptr_t arg);
template <typename T>
absl::StatusOr<int> Ioctl(int fd, unsigned long request, const char* name, T* arg) {
  return Ioctl(fd, request, name, reinterpret_cast<uintptr_t>(arg));
}

class KvmVcpu {
 public:
  KvmVcpu(Fd fd, kvm_run* run, size_t run_size) : fd_(std::move(fd)), run_(run),
                                                  run_size_(run_size) {}
  KvmVcpu(KvmVcpu&& o) noexcept;
  KvmVcpu& operator=(KvmVcpu&&) = delete;
  KvmVcpu(const KvmVcpu&) = delete;
  ~KvmVcpu();

  int fd() const { return fd_.get(); }
  kvm_run* run() const { return run_; }

 private:
  Fd fd_;
  kvm_run* run_;
  size_t run_size_;
};

class KvmVm {
 public:
  // Opens /dev/kvm and creates a VM of `type` (0 = the architecture's
  // default). FailedPrecondition if KVM is absent or its API version is not 12.
  static absl::StatusOr<KvmVm> Create(unsigned long type = 0);

  int fd() const { return vm_.get(); }
  int kvm_fd() const { return kvm_.get(); }

  // KVM_CHECK_EXTENSION on the VM; 0 if unsupported.
  int CheckExtension(int cap) const;
  // KVM_ENABLE_CAP on the VM, without arguments.
  absl::Status EnableCap(uint32_t cap);
  absl::Status SetMemorySlot(uint32_t slot, GuestAddr guest, uint64_t size, void* host,
                             bool read_only);
  absl::StatusOr<KvmVcpu> CreateVcpu(int index);
  // Registers `eventfd` to be signalled, without a vCPU exit, when the guest
  // writes the `len`-byte value `datamatch` at `addr`.
  absl::Status AddIoEventFd(GuestAddr addr, uint32_t len, uint64_t datamatch, int eventfd);
  // Registers `eventfd` to inject interrupt `gsi` when signalled.
  absl::Status AddIrqFd(uint32_t gsi, int eventfd);

 private:
  KvmVm(Fd kvm, Fd vm, size_t run_size) : kvm_(std::move(kvm)), vm_(std::move(vm)),
                                          run_size_(run_size) {}
  Fd kvm_;
  Fd vm_;
  size_t run_size_;
};

// An interrupt line driven with KVM_IRQ_LINE. `irq` is the architecture's
// encoding (arm64: type << 24 | INTID).
class KvmIrqLine final : public IrqLine {
 public:
  KvmIrqLine(int vm_fd, uint32_t irq) : vm_fd_(vm_fd), irq_(irq) {}
  void SetLevel(bool high) override;

 private:
  int vm_fd_;
  uint32_t irq_;
};

}  // namespace rmem::vmm

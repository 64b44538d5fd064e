#include "vmm/kvm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "broker/check.h"
#include "base/sys_error.h"

namespace rmem::vmm {

absl::StatusOr<int> Ioctl(int fd, unsigned long request, const char* name, uintptr_t arg) {
  int rc;
  do {
    rc = ioctl(fd, request, arg);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return ErrnoError(name);
  return rc;
}

KvmVcpu::KvmVcpu(KvmVcpu&& o) noexcept
    : fd_(std::move(o.fd_)), run_(std::exchange(o.run_, nullptr)), run_size_(o.run_size_) {}

KvmVcpu::~KvmVcpu() {
  if (run_ != nullptr) munmap(run_, run_size_);
}

absl::StatusOr<KvmVm> KvmVm::Create(unsigned long type) {
  Fd kvm(open("/dev/kvm", O_RDWR | O_CLOEXEC));
  if (!kvm.valid()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open /dev/kvm: ", std::strerror(errno),
                     " (is KVM enabled in this kernel, and are you allowed to use it?)"));
  }
  absl::StatusOr<int> version = Ioctl(kvm.get(), KVM_GET_API_VERSION, "KVM_GET_API_VERSION", 0);
  if (!version.ok()) return version.status();
  if (*version != KVM_API_VERSION) {
    return absl::FailedPreconditionError(
        absl::StrCat("KVM API version is ", *version, ", rmem-vmm needs ", KVM_API_VERSION));
  }
  absl::StatusOr<int> run_size =
      Ioctl(kvm.get(), KVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE", 0);
  if (!run_size.ok()) return run_size.status();
  absl::StatusOr<int> vm = Ioctl(kvm.get(), KVM_CREATE_VM, "KVM_CREATE_VM", type);
  if (!vm.ok()) return vm.status();
  return KvmVm(std::move(kvm), Fd(*vm), static_cast<size_t>(*run_size));
}

int KvmVm::CheckExtension(int cap) const {
  const int rc = ioctl(vm_.get(), KVM_CHECK_EXTENSION, cap);
  return rc < 0 ? 0 : rc;
}

absl::Status KvmVm::EnableCap(uint32_t cap) {
  kvm_enable_cap enable{};
  enable.cap = cap;
  return Ioctl(vm_.get(), KVM_ENABLE_CAP, "KVM_ENABLE_CAP", &enable).status();
}

absl::Status KvmVm::SetMemorySlot(uint32_t slot, GuestAddr guest, uint64_t size, void* host,
                                  bool read_only) {
  kvm_userspace_memory_region region{
      .slot = slot,
      .flags = read_only ? static_cast<uint32_t>(KVM_MEM_READONLY) : 0u,
      .guest_phys_addr = guest.value(),
      .memory_size = size,
      .userspace_addr = reinterpret_cast<uintptr_t>(host),
  };
  return Ioctl(vm_.get(), KVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", &region)
      .status();
}

absl::StatusOr<KvmVcpu> KvmVm::CreateVcpu(int index) {
  absl::StatusOr<int> fd = Ioctl(vm_.get(), KVM_CREATE_VCPU, "KVM_CREATE_VCPU",
                                 static_cast<uintptr_t>(index));
  if (!fd.ok()) return fd.status();
  Fd vcpu(*fd);
  void* run = mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu.get(), 0);
  if (run == MAP_FAILED) return ErrnoError("mapping the vCPU's kvm_run");
  return KvmVcpu(std::move(vcpu), static_cast<kvm_run*>(run), run_size_);
}

absl::Status KvmVm::AddIoEventFd(GuestAddr addr, uint32_t len, uint64_t datamatch, int eventfd) {
  kvm_ioeventfd io{.datamatch = datamatch, .addr = addr.value(), .len = len, .fd = eventfd,
                   .flags = KVM_IOEVENTFD_FLAG_DATAMATCH, .pad = {}};
  return Ioctl(vm_.get(), KVM_IOEVENTFD, "KVM_IOEVENTFD", &io).status();
}

absl::Status KvmVm::AddIrqFd(uint32_t gsi, int eventfd) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(eventfd);
  irqfd.gsi = gsi;
  return Ioctl(vm_.get(), KVM_IRQFD, "KVM_IRQFD", &irqfd).status();
}

void KvmIrqLine::SetLevel(bool high) {
  kvm_irq_level level{};
  level.irq = irq_;
  level.level = high ? 1 : 0;
  // Failing to raise an interrupt we configured is our bug, not the guest's.
  RMEM_CHECK_OK(Ioctl(vm_fd_, KVM_IRQ_LINE, "KVM_IRQ_LINE", &level));
}

}  // namespace rmem::vmm

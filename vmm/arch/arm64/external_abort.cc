#include "vmm/arch/arm64/external_abort.h"

#include <linux/kvm.h>

#include "absl/strings/str_cat.h"

namespace rmem::vmm::arm64 {
namespace {

class ExtDabtInjector final : public ExternalAbortInjector {
 public:
  absl::Status InjectDataAbort(KvmVcpu& vcpu) override {
    // Documentation/virt/kvm/api.rst, KVM_SET_VCPU_EVENTS (arm64): meant for
    // exactly this, after KVM_EXIT_MMIO or KVM_EXIT_ARM_NISV. KVM builds an
    // EL1 synchronous data abort (ESR_EL1 EC = data abort, FSC = external
    // abort; FAR_EL1 = the faulting virtual address) and delivers it at the
    // next entry.
    kvm_vcpu_events events{};
    events.exception.ext_dabt_pending = 1;
    if (absl::Status s =
            Ioctl(vcpu.fd(), KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS (external abort)", &events)
                .status();
        !s.ok()) {
      return s;
    }
    // The next KVM_RUN would otherwise complete the MMIO first
    // (kvm_handle_mmio_return(): a load's register written, the PC stepped
    // past the access). Kernels with "KVM: arm64: Don't retire aborted MMIO
    // instruction" (upstream late 2024; stable 6.1.120, Debian 6.1.123-1)
    // skip that when a synchronous exception is pending; older ones WARN and
    // keep the PC step pending past the injection, skipping an instruction
    // of the guest's exception handler. KVM completes an MMIO only if the
    // exit reason still says KVM_EXIT_MMIO, so on any kernel this access is
    // never completed. docs/vmm.md has the details.
    vcpu.run()->exit_reason = KVM_EXIT_UNKNOWN;
    return absl::OkStatus();
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<ExternalAbortInjector>> MakeExternalAbortInjector(
    const KvmVm& kvm) {
  for (const auto& [cap, name] : {std::pair{KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
                                  std::pair{KVM_CAP_ARM_INJECT_EXT_DABT,
                                            "KVM_CAP_ARM_INJECT_EXT_DABT"}}) {
    if (kvm.CheckExtension(cap) == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("this KVM cannot inject external aborts (no ", name, ")"));
    }
  }
  return std::make_unique<ExtDabtInjector>();
}

absl::StatusOr<bool> ReportUndecodedAccesses(KvmVm& kvm) {
  if (kvm.CheckExtension(KVM_CAP_ARM_NISV_TO_USER) == 0) return false;
  if (absl::Status s = kvm.EnableCap(KVM_CAP_ARM_NISV_TO_USER); !s.ok()) return s;
  return true;
}

}  // namespace rmem::vmm::arm64

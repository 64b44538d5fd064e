// arm64: the external abort rmem-vmm answers an isolation violation with
// (arch/external_abort.h), and KVM's reports of accesses it cannot decode.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "vmm/arch/external_abort.h"
#include "vmm/kvm/kvm.h"

namespace rmem::vmm::arm64 {

// An injector for `kvm`'s vCPUs if this KVM can inject a synchronous
// external data abort after an exit (KVM_CAP_VCPU_EVENTS and
// KVM_CAP_ARM_INJECT_EXT_DABT), else FailedPrecondition naming the missing
// capability.
absl::StatusOr<std::unique_ptr<ExternalAbortInjector>> MakeExternalAbortInjector(
    const KvmVm& kvm);

// Asks KVM to return a data abort without a valid instruction syndrome
// (ESR_EL2.ISV clear: LDP/STP, SIMD and other multi-register accesses)
// outside RAM to us as KVM_EXIT_ARM_NISV, instead of failing KVM_RUN with
// ENOSYS. Returns whether it did (false: this KVM lacks
// KVM_CAP_ARM_NISV_TO_USER; such accesses then still fail the VMM).
absl::StatusOr<bool> ReportUndecodedAccesses(KvmVm& kvm);

}  // namespace rmem::vmm::arm64

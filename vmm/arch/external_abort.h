// Failing a guest access inside the guest, as hardware fails a transaction
// its bus firewall forbids: with an external abort (SLVERR), not a machine
// stop. The architecture implements it (arch/arm64/external_abort.h); Vm
// uses it to answer isolation violations (docs/vmm.md, "Policy").
#pragma once

#include "absl/status/status.h"
#include "vmm/kvm/kvm.h"

namespace rmem::vmm {

class ExternalAbortInjector {
 public:
  virtual ~ExternalAbortInjector() = default;
  // Makes the access that caused `vcpu`'s last exit (an MMIO exit, or on
  // arm64 one without an instruction syndrome) take a synchronous external
  // data abort when the vCPU runs again, instead of completing: a load
  // writes no register, a store writes nothing. Called on the vCPU's own
  // thread, between that exit and the next KVM_RUN.
  virtual absl::Status InjectDataAbort(KvmVcpu& vcpu) = 0;
};

}  // namespace rmem::vmm

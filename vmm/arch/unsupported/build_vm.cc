// BuildVm on hosts without a port: a clear error, so that the rest of
// rmem-vmm (command line, device model, tests) still builds and runs there.
#include "vmm/arch/build_vm.h"

namespace rmem::vmm {

absl::StatusOr<std::unique_ptr<Vm>> BuildVm(const VmConfig&) {
  return absl::UnimplementedError(
      "this rmem-vmm was built for a host without a VMM port; it boots arm64 guests on "
      "arm64 hosts (use the test SoC: images/build, then images/soc.py)");
}

}  // namespace rmem::vmm

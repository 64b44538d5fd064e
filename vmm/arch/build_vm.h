// The one architecture-specific entry point: build a ready-to-run Vm (KVM VM,
// RAM, vCPUs, interrupt controller, console, boot images loaded) from a
// VmConfig. arch/arm64/ implements it on aarch64 hosts; other hosts get
// arch/unsupported/, which says so. An x86-64 port adds arch/x86_64/.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "vmm/config/vm_config.h"
#include "vmm/vm.h"

namespace rmem::vmm {

absl::StatusOr<std::unique_ptr<Vm>> BuildVm(const VmConfig& config);

}  // namespace rmem::vmm

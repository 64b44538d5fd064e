// BuildVm for arm64 hosts: a KVM VM with memfd RAM at kRamBase, vCPUs with
// PSCI 0.2+ (served by KVM), an in-kernel GICv3, the console UART, and the
// kernel, initramfs and generated device tree loaded per booting.rst
// (x0 = device tree address, PC = kernel entry, MMU off, EL1h: KVM's reset state).
#include <linux/kvm.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "vmm/arch/arm64/boot_layout.h"
#include "vmm/arch/arm64/device_tree.h"
#include "vmm/arch/arm64/external_abort.h"
#include "vmm/arch/arm64/memory_map.h"
#include "vmm/arch/build_vm.h"
#include "vmm/devices/uart_16550.h"
#include "vmm/sys_file.h"
#include "vmm/virtio/vhost_user_device.h"

namespace rmem::vmm {
namespace {

using namespace arm64;  // NOLINT: this file is the arm64 port

constexpr uint64_t kMaxKernelSize = 256ull << 20;
constexpr uint64_t kMaxInitrdSize = 1ull << 30;
constexpr uint32_t kRamSlot = 0;

// KVM_IRQ_LINE's arm64 encoding of a shared peripheral interrupt.
uint32_t SpiIrqLine(uint32_t spi) { return (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | (32 + spi); }

uint64_t CoreRegId(size_t offset_in_kvm_regs) {
  return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |
         static_cast<uint64_t>(offset_in_kvm_regs / sizeof(uint32_t));
}

absl::Status SetCoreReg(int vcpu_fd, size_t offset, uint64_t value) {
  kvm_one_reg reg{.id = CoreRegId(offset), .addr = reinterpret_cast<uintptr_t>(&value)};
  return Ioctl(vcpu_fd, KVM_SET_ONE_REG, "KVM_SET_ONE_REG", &reg).status();
}

absl::Status SetDeviceAttr(int dev_fd, uint32_t group, uint64_t attr, const void* value,
                           const char* what) {
  kvm_device_attr a{.flags = 0, .group = group, .attr = attr,
                    .addr = reinterpret_cast<uintptr_t>(value)};
  absl::StatusOr<int> rc = Ioctl(dev_fd, KVM_SET_DEVICE_ATTR, what, &a);
  return rc.status();
}

absl::Status InitVcpus(Vm& vm, int cpus) {
  kvm_vcpu_init preferred{};
  if (auto rc = Ioctl(vm.kvm().fd(), KVM_ARM_PREFERRED_TARGET, "KVM_ARM_PREFERRED_TARGET",
                      &preferred);
      !rc.ok()) {
    return rc.status();
  }
  if (vm.kvm().CheckExtension(KVM_CAP_ARM_PSCI_0_2) == 0) {
    return absl::FailedPreconditionError("this KVM has no PSCI 0.2 (KVM_CAP_ARM_PSCI_0_2)");
  }
  for (int i = 0; i < cpus; ++i) {
    absl::StatusOr<KvmVcpu> vcpu = vm.kvm().CreateVcpu(i);
    if (!vcpu.ok()) return vcpu.status();
    kvm_vcpu_init init = preferred;
    init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
    // Secondaries wait powered off until the guest starts them with PSCI CPU_ON.
    if (i > 0) init.features[0] |= 1u << KVM_ARM_VCPU_POWER_OFF;
    if (auto rc = Ioctl(vcpu->fd(), KVM_ARM_VCPU_INIT, "KVM_ARM_VCPU_INIT", &init); !rc.ok()) {
      return rc.status();
    }
    vm.vcpus().push_back(std::move(*vcpu));
  }
  return absl::OkStatus();
}

// The in-kernel GICv3, created after the vCPUs (it sizes its redistributors
// from them) and initialised before any vCPU runs.
absl::Status InitGic(Vm& vm) {
  kvm_create_device dev{.type = KVM_DEV_TYPE_ARM_VGIC_V3, .fd = 0, .flags = 0};
  if (auto rc = Ioctl(vm.kvm().fd(), KVM_CREATE_DEVICE, "KVM_CREATE_DEVICE (GICv3)", &dev);
      !rc.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(rc.status().message(), " — this host has no GICv3 virtualisation"));
  }
  vm.OwnFd(Fd(static_cast<int>(dev.fd)));
  const uint64_t dist = kGicDistBase;
  const uint64_t redist = kGicRedistBase;
  const uint32_t nr_irqs = 32 + kVirtioMmioFirstSpi + kMaxVirtioDevices;  // SGIs/PPIs + our SPIs
  const uint32_t nr_irqs_rounded = (nr_irqs + 31) / 32 * 32;
  if (absl::Status s = SetDeviceAttr(dev.fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST,
                                     &dist, "GICv3 distributor address");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = SetDeviceAttr(dev.fd, KVM_DEV_ARM_VGIC_GRP_ADDR,
                                     KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist,
                                     "GICv3 redistributor address");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = SetDeviceAttr(dev.fd, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs_rounded,
                                     "GICv3 interrupt count");
      !s.ok()) {
    return s;
  }
  return SetDeviceAttr(dev.fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, nullptr,
                       "GICv3 init");
}

// How isolation violations are answered (docs/vmm.md, "Policy"): an external
// abort where KVM can inject one, else fail-stop, said once at start-up.
absl::Status InitViolationPolicy(Vm& vm, ViolationPolicy policy) {
  absl::StatusOr<bool> nisv = ReportUndecodedAccesses(vm.kvm());
  if (!nisv.ok()) return nisv.status();
  absl::StatusOr<std::unique_ptr<ExternalAbortInjector>> injector =
      MakeExternalAbortInjector(vm.kvm());
  std::string stop_reason = "stopping the guest (--on-violation stop)";
  if (!injector.ok()) {
    stop_reason = absl::StrCat("stopping the guest (", injector.status().message(), ")");
    if (policy == ViolationPolicy::kAbort) {
      std::fprintf(stderr,
                   "rmem-vmm: %s: a guest access to shared memory it was not granted will "
                   "stop the guest (exit 5) instead\n",
                   std::string(injector.status().message()).c_str());
    }
  }
  vm.SetViolationPolicy(policy, injector.ok() ? std::move(*injector) : nullptr,
                        std::move(stop_reason));
  return absl::OkStatus();
}

// The console: bytes go to stdout, flushed at each newline so that a
// caller reading markers sees them as they happen.
void ConsoleOut(uint8_t byte) {
  std::fputc(byte, stdout);
  if (byte == '\n') std::fflush(stdout);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Vm>> BuildVm(const VmConfig& config) {
  absl::StatusOr<std::vector<uint8_t>> kernel =
      ReadWholeFile(config.kernel, "kernel image", kMaxKernelSize);
  if (!kernel.ok()) return kernel.status();
  absl::StatusOr<ImageHeader> header = ParseImageHeader(*kernel);
  if (!header.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(config.kernel, ": ", header.status().message()));
  }
  std::vector<uint8_t> initrd;
  if (!config.initrd.empty()) {
    absl::StatusOr<std::vector<uint8_t>> read =
        ReadWholeFile(config.initrd, "initramfs", kMaxInitrdSize);
    if (!read.ok()) return read.status();
    initrd = std::move(*read);
  }

  const uint64_t ram_size = config.memory_mib << 20;
  absl::StatusOr<BootLayout> layout =
      PlanBootLayout(GuestAddr(kRamBase), ram_size, *header, kernel->size(), initrd.size());
  if (!layout.ok()) return layout.status();

  absl::StatusOr<KvmVm> kvm = KvmVm::Create();
  if (!kvm.ok()) return kvm.status();
  absl::StatusOr<GuestMemory> ram = GuestMemory::Create(GuestAddr(kRamBase), ram_size);
  if (!ram.ok()) return ram.status();
  auto vm = std::make_unique<Vm>(std::move(*kvm), std::move(*ram));
  if (absl::Status s = vm->kvm().SetMemorySlot(kRamSlot, vm->ram().base(), vm->ram().size(),
                                               vm->ram().host_base(), /*read_only=*/false);
      !s.ok()) {
    return s;
  }

  if (absl::Status s = InitViolationPolicy(*vm, config.on_violation); !s.ok()) return s;
  if (absl::Status s = InitVcpus(*vm, config.cpus); !s.ok()) return s;
  if (absl::Status s = InitGic(*vm); !s.ok()) return s;

  IrqLine* uart_irq = vm->Own(std::make_unique<KvmIrqLine>(vm->kvm().fd(), SpiIrqLine(kUartSpi)));
  if (absl::Status s = vm->AddDevice("uart", GuestAddr(kUartBase), Uart16550::kWindowSize,
                                     std::make_unique<Uart16550>(ConsoleOut, uart_irq));
      !s.ok()) {
    return s;
  }

  GuestAddr shm_next(kShmBase);
  std::vector<VirtioMmioNode> virtio;
  for (size_t i = 0; i < config.devices.size(); ++i) {
    const GuestAddr base(kVirtioMmioBase + i * kVirtioMmioStride);
    const uint32_t spi = kVirtioMmioFirstSpi + static_cast<uint32_t>(i);
    IrqLine* irq = vm->Own(std::make_unique<KvmIrqLine>(vm->kvm().fd(), SpiIrqLine(spi)));
    if (absl::Status s = AttachVhostUserDevice(
            *vm, config.devices[i], static_cast<int>(i), config.reconnect_timeout,
            {.mmio_base = base, .irq = irq, .shm_next = &shm_next, .shm_limit = GuestAddr(kShmLimit)});
        !s.ok()) {
      return s;
    }
    virtio.push_back({.base = base, .size = kVirtioMmioStride, .spi = spi});
  }

  DeviceTreeSpec dt{.ram_base = vm->ram().base(),
                    .ram_size = vm->ram().size(),
                    .cpus = config.cpus,
                    .bootargs = config.append,
                    .initrd = layout->initrd,
                    .initrd_size = initrd.size(),
                    .virtio = std::move(virtio)};
  absl::StatusOr<std::vector<uint8_t>> dtb = BuildDeviceTree(dt);
  if (!dtb.ok()) return dtb.status();
  if (!config.dtb_out.empty()) {
    if (absl::Status s = WriteWholeFile(config.dtb_out, *dtb); !s.ok()) return s;
  }

  if (absl::Status s = vm->ram().Write(layout->kernel, *kernel); !s.ok()) return s;
  if (absl::Status s = vm->ram().Write(layout->initrd, initrd); !s.ok()) return s;
  if (absl::Status s = vm->ram().Write(layout->dtb, *dtb); !s.ok()) return s;

  const int boot_fd = vm->vcpus()[0].fd();
  if (absl::Status s = SetCoreReg(boot_fd, offsetof(kvm_regs, regs.regs[0]), layout->dtb.value());
      !s.ok()) {
    return s;
  }
  for (int x = 1; x <= 3; ++x) {
    if (absl::Status s = SetCoreReg(boot_fd, offsetof(kvm_regs, regs.regs[0]) + 8 * x, 0); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = SetCoreReg(boot_fd, offsetof(kvm_regs, regs.pc), layout->kernel.value());
      !s.ok()) {
    return s;
  }
  return vm;
}

}  // namespace rmem::vmm

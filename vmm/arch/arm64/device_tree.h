// The device tree rmem-vmm gives an arm64 guest, generated with libfdt from
// what the VMM actually built: memory, CPUs (PSCI via HVC, served by KVM),
// the GICv3, the architected timer, the console UART, virtio-mmio
// transports, and /chosen (command line, initramfs, stdout).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/types.h"

namespace rmem::vmm::arm64 {

struct VirtioMmioNode {
  GuestAddr base;
  uint64_t size = 0;
  uint32_t spi = 0;
};

struct DeviceTreeSpec {
  GuestAddr ram_base;
  uint64_t ram_size = 0;
  int cpus = 1;
  std::string bootargs;
  GuestAddr initrd;
  uint64_t initrd_size = 0;  // 0: no initramfs
  std::vector<VirtioMmioNode> virtio;
};

// The flattened tree, at most kMaxDtbSize bytes. InvalidArgument for a spec
// out of range (cpus outside [1, kMaxCpus]); Internal if libfdt fails.
absl::StatusOr<std::vector<uint8_t>> BuildDeviceTree(const DeviceTreeSpec& spec);

}  // namespace rmem::vmm::arm64

// What the user asked rmem-vmm to run: parsed from the command line by
// ParseCommandLine (cli.h), consumed by BuildVm (arch/build_vm.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace rmem::vmm {

// VIRTIO device IDs (VIRTIO 1.2 §5) that have a name on the command line.
inline constexpr uint32_t kVirtioIdBlock = 2;
inline constexpr uint32_t kVirtioIdFs = 26;
// virtio-fs's tag field (VIRTIO 1.2 §5.11.4).
inline constexpr size_t kVirtioFsTagSize = 36;

// A virtio device served by a vhost-user backend in another process.
struct DeviceConfig {
  std::string socket;      // the backend's Unix socket
  uint32_t device_id = 0;  // VIRTIO device ID (kVirtioIdBlock, kVirtioIdFs, ...)
  std::string type;        // as written: "blk", "fs" or a number
  // virtio-fs only: the tag the guest mounts. Non-empty: the VMM serves the
  // device's config space itself, as QEMU's vhost-user-fs does (virtiofsd
  // has none to offer).
  std::string tag;
};

// What rmem-vmm does when the guest touches a shared memory region where it
// holds no grant (a write to a read-only piece, any access to an unmapped
// offset): docs/vmm.md, "Policy: a violation is an external abort".
enum class ViolationPolicy {
  kAbort,  // inject a synchronous external data abort; the guest continues
  kStop,   // stop the guest (exit 5)
};

struct VmConfig {
  std::string kernel;       // an uncompressed arm64 Image
  std::string initrd;       // empty: none
  std::string append;       // the kernel command line
  uint64_t memory_mib = 256;
  int cpus = 1;
  absl::Duration timeout = absl::ZeroDuration();  // zero: none
  std::string dtb_out;      // non-empty: also write the generated device tree here
  std::vector<DeviceConfig> devices;
  bool stats = false;       // print set-up/run times and exit counts on stderr at the end
  ViolationPolicy on_violation = ViolationPolicy::kAbort;
  // How long a vhost-user device waits for its back-end to come back after
  // it hung up (vhost_user/frontend.h); zero: it does not reconnect.
  absl::Duration reconnect_timeout = absl::Seconds(30);
};

}  // namespace rmem::vmm

// The guest physical map of an rmem-vmm arm64 guest. Chosen to resemble
// QEMU's "virt" board so that guest kernels and people find things where
// they expect them; RAM starts at 1 GiB.
#pragma once

#include <cstdint>

namespace rmem::vmm::arm64 {

inline constexpr uint64_t kGicDistBase = 0x08000000;
inline constexpr uint64_t kGicDistSize = 0x10000;
inline constexpr uint64_t kGicRedistBase = 0x080a0000;
inline constexpr uint64_t kGicRedistSizePerCpu = 0x20000;  // RD + SGI frames
inline constexpr int kMaxCpus = 8;  // redistributors fit below the UART

inline constexpr uint64_t kUartBase = 0x09000000;
inline constexpr uint32_t kUartSpi = 1;

// virtio-mmio transports: one 512-byte window each, SPIs from 16.
inline constexpr uint64_t kVirtioMmioBase = 0x0a000000;
inline constexpr uint64_t kVirtioMmioStride = 0x200;
inline constexpr uint32_t kVirtioMmioFirstSpi = 16;
inline constexpr int kMaxVirtioDevices = 32;

inline constexpr uint64_t kRamBase = 0x40000000;

// VIRTIO shared memory regions: [512 GiB, 1 TiB), inside KVM's default 40-bit
// IPA space and far above any RAM size we allow.
inline constexpr uint64_t kShmBase = uint64_t{1} << 39;
inline constexpr uint64_t kShmLimit = uint64_t{1} << 40;

// Architected timer PPIs (secure phys, non-secure phys, virtual, hyp) as the
// GIC numbers them from 16: KVM's virtual timer is INTID 27 = PPI 11.
inline constexpr uint32_t kTimerPpis[4] = {13, 14, 11, 10};

static_assert(kGicRedistBase + kMaxCpus * kGicRedistSizePerCpu <= kUartBase);

}  // namespace rmem::vmm::arm64

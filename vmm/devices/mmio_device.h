// What the VMM's devices look like to the vCPU loop: a window of guest
// physical MMIO space with byte-addressed reads and writes, and interrupt
// lines they raise. Devices are called from vCPU threads concurrently and
// lock their own state.
#pragma once

#include <cstdint>
#include <span>

namespace rmem::vmm {

class MmioDevice {
 public:
  virtual ~MmioDevice() = default;
  // `offset` is relative to the device's window; `data` is 1, 2, 4 or 8
  // bytes (the guest's access size), little-endian. Reads fill `data`.
  virtual void MmioRead(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void MmioWrite(uint64_t offset, std::span<const uint8_t> data) = 0;
};

// A level-triggered interrupt line into the guest's interrupt controller.
class IrqLine {
 public:
  virtual ~IrqLine() = default;
  virtual void SetLevel(bool high) = 0;
};

}  // namespace rmem::vmm

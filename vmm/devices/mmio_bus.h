// The guest physical MMIO map: which device answers which address. Windows
// never overlap; an access no device claims is reported to the caller, which
// decides what an unclaimed access means (the vCPU loop logs it and reads
// return zeros, like an unassigned bus region).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "broker/types.h"
#include "vmm/devices/mmio_device.h"

namespace rmem::vmm {

class MmioBus {
 public:
  // Adds `device` (not owned; outlives the bus) at [base, base + size).
  // InvalidArgument if the window is empty, wraps, or overlaps another.
  absl::Status Add(std::string name, GuestAddr base, uint64_t size, MmioDevice* device);

  // False if no device covers the whole access [addr, addr + data.size()).
  bool Read(GuestAddr addr, std::span<uint8_t> data) const;
  bool Write(GuestAddr addr, std::span<const uint8_t> data) const;

  // How many accesses each device served, by name, in address order.
  std::vector<std::pair<std::string, uint64_t>> AccessCounts() const;

 private:
  struct Window {
    std::string name;
    uint64_t base;
    uint64_t size;
    MmioDevice* device;
    mutable std::atomic<uint64_t> accesses{0};
  };
  const Window* Find(GuestAddr addr, uint64_t len) const;

  // Sorted by base; few devices, set up before vCPUs run.
  std::vector<std::unique_ptr<Window>> windows_;
};

}  // namespace rmem::vmm

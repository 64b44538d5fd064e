#include "vmm/devices/mmio_bus.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace rmem::vmm {

absl::Status MmioBus::Add(std::string name, GuestAddr base, uint64_t size, MmioDevice* device) {
  const std::optional<GuestAddr> end = base.Plus(size);
  if (size == 0 || !end) {
    return absl::InvalidArgumentError(absl::StrCat("MMIO window of ", name, " at ",
                                                   base.ToString(), "+", Hex(size),
                                                   " is empty or wraps"));
  }
  for (const std::unique_ptr<Window>& w : windows_) {
    if (base.value() < w->base + w->size && w->base < end->value()) {
      return absl::InvalidArgumentError(absl::StrCat("MMIO window of ", name, " at ",
                                                     base.ToString(), " overlaps ", w->name,
                                                     " at ", Hex(w->base)));
    }
  }
  auto w = std::make_unique<Window>();
  w->name = std::move(name);
  w->base = base.value();
  w->size = size;
  w->device = device;
  windows_.push_back(std::move(w));
  std::sort(windows_.begin(), windows_.end(),
            [](const auto& a, const auto& b) { return a->base < b->base; });
  return absl::OkStatus();
}

const MmioBus::Window* MmioBus::Find(GuestAddr addr, uint64_t len) const {
  auto it = std::upper_bound(windows_.begin(), windows_.end(), addr.value(),
                             [](uint64_t a, const auto& w) { return a < w->base; });
  if (it == windows_.begin()) return nullptr;
  const Window& w = **std::prev(it);
  const uint64_t offset = addr.value() - w.base;
  if (offset >= w.size || len > w.size - offset) return nullptr;
  w.accesses.fetch_add(1, std::memory_order_relaxed);
  return &w;
}

bool MmioBus::Read(GuestAddr addr, std::span<uint8_t> data) const {
  const Window* w = Find(addr, data.size());
  if (w == nullptr) return false;
  w->device->MmioRead(addr.value() - w->base, data);
  return true;
}

bool MmioBus::Write(GuestAddr addr, std::span<const uint8_t> data) const {
  const Window* w = Find(addr, data.size());
  if (w == nullptr) return false;
  w->device->MmioWrite(addr.value() - w->base, data);
  return true;
}

std::vector<std::pair<std::string, uint64_t>> MmioBus::AccessCounts() const {
  std::vector<std::pair<std::string, uint64_t>> counts;
  for (const std::unique_ptr<Window>& w : windows_) {
    counts.emplace_back(w->name, w->accesses.load(std::memory_order_relaxed));
  }
  return counts;
}

}  // namespace rmem::vmm

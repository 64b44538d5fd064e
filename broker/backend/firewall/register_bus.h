// RegisterBus: how a firewall driver reaches its controller's registers --
// 32-bit reads and writes at byte offsets into the controller's register
// frame. The drivers (Tzc400Firewall, BlockFirewall) program hardware only
// through this, so a real platform differs from our models only in the
// accessor: a mapped MMIO window (volatile loads/stores), or a call into
// the secure monitor that owns the controller.
#pragma once

#include <cstdint>

namespace rmem {

class RegisterBus {
 public:
  virtual ~RegisterBus() = default;
  virtual uint32_t Read32(uint32_t offset) = 0;
  virtual void Write32(uint32_t offset, uint32_t value) = 0;
};

}  // namespace rmem

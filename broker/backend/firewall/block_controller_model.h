// BlockControllerModel: a register-level MODEL of a block-granular bus
// firewall (the register map of block_controller_registers.h). This machine
// has no such hardware; rmemd and the tests program this model exactly as
// they would program the part, and ask it what the hardware would decide.
// It restricts no real DMA master.
//
// What it decides for an access:
//   - outside the window it guards: permitted -- another controller (or
//     none) is in charge of that address, not this one;
//   - Secure-world accesses (BusAccess::secure): permitted -- the controller
//     checks non-secure masters; the Secure world that owns it is trusted;
//   - CTRL.ENABLE clear (the reset value): permitted;
//   - otherwise: the block's read or write enable bit for the access's
//     domain (BusAccess::id); an id with no bit (>= 16) is denied.
// Reset state: CTRL = 0 and every permission word 0, i.e. once enabled
// every block denies every domain until programmed.
//
// Faults (Access() denying): the first is captured (address, domain,
// direction) in FAULT_STATUS/FAULT_ADDR; later ones only set OVERRUN until
// software clears the capture through FAULT_CLEAR.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "broker/backend/firewall/block_controller_registers.h"
#include "broker/backend/firewall/firewall_model.h"

namespace rmem {

class BlockControllerModel : public FirewallModel {
 public:
  struct Options {
    uint64_t window_base = 0;  // physical, aligned to block_size
    uint64_t window_size = 0;  // a non-zero multiple of block_size
    uint64_t block_size = 0;   // a power of two >= 4 KiB
  };
  // CHECK-fails on nonsense options (they are our own test or platform
  // configuration), or on more than block_controller::kMaxBlocks blocks.
  explicit BlockControllerModel(const Options& options);

  uint32_t Read32(uint32_t offset) override;
  void Write32(uint32_t offset, uint32_t value) override;
  bool Permits(const BusAccess& access) const override;
  bool Access(const BusAccess& access) override;

  // Denied accesses seen by Access() since construction.
  uint64_t failures() const { return failures_; }
  // The fault interrupt line: FAULT_IRQ set and a capture valid.
  bool interrupt() const;
  // Test hook: later writes to `offset` are dropped silently (still counted
  // and observed, as a write the bus accepted but the part lost).
  void DropWritesTo(uint32_t offset) { dropped_.insert(offset); }
  void StopDroppingWrites() { dropped_.clear(); }

  uint64_t block_size() const { return uint64_t{1} << block_shift_; }
  uint32_t block_count() const { return static_cast<uint32_t>(perm_.size()); }

 private:
  uint32_t RegisterValue(uint32_t offset) const;
  void Store(uint32_t offset, uint32_t value);

  uint64_t window_base_;
  uint64_t window_size_;
  uint32_t block_shift_;
  uint32_t ctrl_ = 0;
  uint32_t fault_status_ = 0;
  uint64_t fault_addr_ = 0;
  std::vector<uint32_t> perm_;  // one word per block
  absl::flat_hash_set<uint32_t> dropped_;
  uint64_t failures_ = 0;
};

}  // namespace rmem

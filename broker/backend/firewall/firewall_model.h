// FirewallModel: what the register-level MODELS of firewall hardware
// (Tzc400Model, BlockControllerModel) have in common. This machine has no
// bus firewall, so rmemd programs a model exactly as it would program the
// hardware -- same registers, same order -- and tests ask the model what
// the hardware would decide for any bus access. A model restricts no real
// DMA master: it is named as a model wherever it is used.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

#include "broker/backend/firewall/register_bus.h"

namespace rmem {

// One access arriving at the firewall from a bus master.
struct BusAccess {
  uint64_t address = 0;  // physical byte address
  bool write = false;
  uint32_t id = 0;       // the master's id at this firewall (TZC-400: NSAID)
  bool secure = false;   // AxPROT[1] == 0: a Secure-world access
};

class FirewallModel : public RegisterBus {
 public:
  // What the hardware decides for `access` in its current register state.
  // No side effects (the oracle calls this for every page and party).
  virtual bool Permits(const BusAccess& access) const = 0;
  // An access as the hardware sees it: decides, and on denial records the
  // failure the way the hardware does (fail status registers, interrupt
  // status). Returns whether the access was permitted.
  virtual bool Access(const BusAccess& access) = 0;

  // Called after every register write has taken effect, with the offset and
  // the value written: tests check the access state between any two writes.
  void set_write_observer(std::function<void(uint32_t offset, uint32_t value)> observer) {
    observer_ = std::move(observer);
  }
  uint64_t reads() const { return reads_; }
  uint64_t writes() const { return writes_; }

 protected:
  // Implementations count every Read32/Write32 and call this after a write.
  void CountRead() { ++reads_; }
  void AfterWrite(uint32_t offset, uint32_t value) {
    ++writes_;
    if (observer_) observer_(offset, value);
  }

 private:
  std::function<void(uint32_t, uint32_t)> observer_;
  uint64_t reads_ = 0, writes_ = 0;
};

}  // namespace rmem

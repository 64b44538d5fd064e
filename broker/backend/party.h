// A party that can touch memory: a VM's CPUs (reached through stage-2) or a
// device initiator (reached through the firewall). The isolation invariant
// is stated over parties.
#pragma once

#include <compare>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "broker/types.h"

namespace rmem {

struct Party {
  enum class Kind : uint8_t { kVmCpu, kInitiator };
  Kind kind = Kind::kVmCpu;
  uint32_t id = 0;

  static Party Cpu(VmId vm) { return {Kind::kVmCpu, vm.value()}; }
  static Party Device(InitiatorId ini) { return {Kind::kInitiator, ini.value()}; }
  std::string ToString() const {
    return kind == Kind::kVmCpu ? absl::StrCat("vm ", id, " cpu") : absl::StrCat("initiator ", id);
  }
  auto operator<=>(const Party&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const Party& p) {
    return H::combine(std::move(h), p.kind, p.id);
  }
};

}  // namespace rmem

// Quota accounting: bytes each VM owns, per heap and in total, and bytes
// allocated from each heap, against the limits of the Policy.
#pragma once

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "broker/policy/policy.h"

namespace rmem {

class QuotaLedger {
 public:
  explicit QuotaLedger(const Policy* policy) : policy_(policy) {}

  // OK if `vm` may own `bytes` more from `heap`. ResourceExhausted naming
  // the quota that would be exceeded (the VM's, the VM's on the heap, or
  // the heap's) with its limit and current use.
  absl::Status CheckCharge(VmId vm, HeapId heap, uint64_t bytes) const;
  // Records ownership; the caller checked first (CHECKs the limits).
  void Charge(VmId vm, HeapId heap, uint64_t bytes);
  // Records ownership found in a restored state, without checking limits:
  // what a restarted broker finds owned stays owned, even if the
  // configuration lowered a limit since (new charges are refused until use
  // falls below it).
  void ChargeRestored(VmId vm, HeapId heap, uint64_t bytes);
  // Returns bytes charged before (CHECKs against underflow).
  void Release(VmId vm, HeapId heap, uint64_t bytes);

  uint64_t vm_bytes(VmId vm) const;
  uint64_t heap_bytes(HeapId heap) const;
  uint64_t vm_heap_bytes(VmId vm, HeapId heap) const;

 private:
  static uint64_t Get(const auto& map, const auto& key) {
    auto it = map.find(key);
    return it == map.end() ? 0 : it->second;
  }
  const Policy* policy_;
  absl::flat_hash_map<VmId, uint64_t> by_vm_;
  absl::flat_hash_map<HeapId, uint64_t> by_heap_;
  absl::flat_hash_map<std::pair<VmId, HeapId>, uint64_t> by_vm_heap_;
};

}  // namespace rmem

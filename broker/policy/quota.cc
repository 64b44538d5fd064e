// Quota checks and accounting.
#include "broker/policy/quota.h"

#include "absl/strings/str_cat.h"
#include "broker/check.h"

namespace rmem {
namespace {

// True if used + bytes stays within limit (no overflow either).
bool Fits(uint64_t used, uint64_t bytes, uint64_t limit) {
  const std::optional<uint64_t> total = CheckedAdd(used, bytes);
  return total && *total <= limit;
}

std::string Describe(uint64_t limit, uint64_t used, uint64_t bytes) {
  return absl::StrCat("limit ", Hex(limit), " bytes, ", Hex(used), " in use, ", Hex(bytes),
                      " requested");
}

}  // namespace

absl::Status QuotaLedger::CheckCharge(VmId vm, HeapId heap, uint64_t bytes) const {
  const VmConfig* vm_config = policy_->FindVm(vm);
  RMEM_CHECK(vm_config != nullptr);
  const HeapConfig& heap_config = policy_->heap(heap);

  const uint64_t vm_used = vm_bytes(vm);
  if (!Fits(vm_used, bytes, vm_config->quota_bytes)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        VmName(vm), " quota exceeded: ", Describe(vm_config->quota_bytes, vm_used, bytes)));
  }
  const HeapAccess* access = policy_->FindAccess(heap, vm);
  const uint64_t vm_heap_limit = access ? access->quota_bytes : 0;
  const uint64_t vm_heap_used = vm_heap_bytes(vm, heap);
  if (!Fits(vm_heap_used, bytes, vm_heap_limit)) {
    return absl::ResourceExhaustedError(
        absl::StrCat(VmName(vm), " quota on heap '", heap_config.name,
                     "' exceeded: ", Describe(vm_heap_limit, vm_heap_used, bytes)));
  }
  const uint64_t heap_used = heap_bytes(heap);
  if (!Fits(heap_used, bytes, heap_config.quota_bytes)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("heap '", heap_config.name,
                     "' quota exceeded: ", Describe(heap_config.quota_bytes, heap_used, bytes)));
  }
  return absl::OkStatus();
}

void QuotaLedger::Charge(VmId vm, HeapId heap, uint64_t bytes) {
  RMEM_CHECK_OK(CheckCharge(vm, heap, bytes));
  ChargeRestored(vm, heap, bytes);
}

void QuotaLedger::ChargeRestored(VmId vm, HeapId heap, uint64_t bytes) {
  by_vm_[vm] += bytes;
  by_heap_[heap] += bytes;
  by_vm_heap_[{vm, heap}] += bytes;
}

void QuotaLedger::Release(VmId vm, HeapId heap, uint64_t bytes) {
  auto sub = [bytes](auto& map, const auto& key) {
    auto it = map.find(key);
    RMEM_CHECK(it != map.end() && it->second >= bytes);
    it->second -= bytes;
    if (it->second == 0) map.erase(it);
  };
  sub(by_vm_, vm);
  sub(by_heap_, heap);
  sub(by_vm_heap_, std::make_pair(vm, heap));
}

uint64_t QuotaLedger::vm_bytes(VmId vm) const { return Get(by_vm_, vm); }
uint64_t QuotaLedger::heap_bytes(HeapId heap) const { return Get(by_heap_, heap); }
uint64_t QuotaLedger::vm_heap_bytes(VmId vm, HeapId heap) const {
  return Get(by_vm_heap_, std::make_pair(vm, heap));
}

}  // namespace rmem

#include "vmm/kvm/kvm_slot_mapper.h"

#include "absl/strings/str_cat.h"

namespace rmem::vmm {

KvmSlotMapper::KvmSlotMapper(KvmVm* kvm, uint32_t first_slot)
    : kvm_(kvm),
      end_slot_(static_cast<uint32_t>(std::max(kvm->CheckExtension(KVM_CAP_NR_MEMSLOTS), 0))),
      next_(first_slot) {}

absl::StatusOr<uint32_t> KvmSlotMapper::Install(GuestAddr guest, uint8_t* host, uint64_t len,
                                                bool writable) {
  uint32_t slot;
  {
    absl::MutexLock lock(&mu_);
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else if (next_ < end_slot_) {
      slot = next_++;
    } else {
      return absl::ResourceExhaustedError(
          absl::StrCat("all ", end_slot_, " KVM memslots are in use; unmap pieces first"));
    }
  }
  absl::Status s = kvm_->SetMemorySlot(slot, guest, len, host, /*read_only=*/!writable);
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    free_.push_back(slot);
    return s;
  }
  return slot;
}

absl::Status KvmSlotMapper::Remove(uint32_t slot) {
  // A zero-sized region deletes the slot; KVM unmaps it from stage 2 first.
  if (absl::Status s = kvm_->SetMemorySlot(slot, GuestAddr(0), 0, nullptr, false); !s.ok()) {
    return s;
  }
  absl::MutexLock lock(&mu_);
  free_.push_back(slot);
  return absl::OkStatus();
}

}  // namespace rmem::vmm

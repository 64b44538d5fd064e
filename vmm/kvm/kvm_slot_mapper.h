// GuestMapper over KVM memslots: every installed range is its own memslot,
// read-only ones flagged KVM_MEM_READONLY (guest writes exit as MMIO writes).
// Slot numbers come from a pool above the ones the VM reserved for RAM.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vmm/kvm/kvm.h"
#include "vmm/memory/shm_window.h"

namespace rmem::vmm {

class KvmSlotMapper final : public GuestMapper {
 public:
  // Uses slots [first_slot, KVM_CAP_NR_MEMSLOTS).
  KvmSlotMapper(KvmVm* kvm, uint32_t first_slot);

  absl::StatusOr<uint32_t> Install(GuestAddr guest, uint8_t* host, uint64_t len,
                                   bool writable) override;
  absl::Status Remove(uint32_t slot) override;

 private:
  KvmVm* const kvm_;
  const uint32_t end_slot_;
  absl::Mutex mu_;
  uint32_t next_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rmem::vmm

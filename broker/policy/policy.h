// Policy: the VMs, the device initiators each VM owns, and the heaps (named
// uses of carve-outs) with who may allocate from each, the most rights each
// VM may hold there, CPU-mapping rules and quotas. Built once from
// configuration, validated, then read-only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "broker/carveout/carveout.h"
#include "broker/rights.h"
#include "broker/types.h"

namespace rmem {

inline constexpr uint64_t kUnlimited = UINT64_MAX;

using HeapId = Id<struct HeapIdTag, uint32_t>;  // index into the heap list

struct VmConfig {
  VmId id;
  std::string name;
  uint64_t quota_bytes = kUnlimited;  // bytes it may own, all heaps together
};

struct InitiatorConfig {
  InitiatorId id;
  std::string name;  // e.g. "video-decoder"
  VmId owner;        // the VM whose rights it follows; kHostVm = nobody's
  // The most it may ever be given (firmware's rmem,max-access): it gets its
  // owner's read/write rights intersected with this. Not kNone.
  Access max_access = Access::kReadWrite;
};

// One VM's standing on one heap.
struct HeapAccess {
  VmId vm;
  bool may_allocate = false;
  // The most this VM may hold on buffers of this heap, as owner or receiver.
  // An allocating VM holds exactly these rights on its new buffers.
  Rights max_rights;
  uint64_t quota_bytes = kUnlimited;  // bytes it may own from this heap
};

struct HeapConfig {
  std::string name;                    // e.g. "secure-video"
  std::vector<std::string> carveouts;  // tried in this order
  bool cpu_map_allowed = true;         // false: device-only buffers
  bool owner_may_revoke = false;       // RECLAIM may revoke retrieved borrowers
  uint64_t quota_bytes = kUnlimited;   // all VMs together
  std::vector<HeapAccess> access;      // VMs not listed have no access
};

struct PolicyConfig {
  std::vector<VmConfig> vms;
  std::vector<InitiatorConfig> initiators;
  std::vector<HeapConfig> heaps;
};

class Policy {
 public:
  // Validates the configuration against the carve-outs.
  // InvalidArgument naming the entry and the rule it breaks.
  static absl::StatusOr<Policy> Create(PolicyConfig config, absl::Span<const Carveout> carveouts);

  const PolicyConfig& config() const { return config_; }
  const VmConfig* FindVm(VmId vm) const;
  std::optional<HeapId> FindHeap(absl::string_view name) const;
  const HeapConfig& heap(HeapId id) const { return config_.heaps[id.value()]; }
  size_t heap_count() const { return config_.heaps.size(); }
  // Indices into the carve-out list the policy was created with.
  absl::Span<const size_t> heap_carveouts(HeapId id) const { return heap_carveouts_[id.value()]; }
  // nullptr when the VM is not listed on the heap.
  const HeapAccess* FindAccess(HeapId heap, VmId vm) const;
  // The device initiators a VM owns (empty for unknown VMs).
  absl::Span<const InitiatorId> initiators_of(VmId vm) const;
  // What `ini` gets when its owner holds `owner_access`: the intersection
  // with its max_access (kNone: nothing to program).
  Access InitiatorAccess(InitiatorId ini, Access owner_access) const;

  // ALLOC: PermissionDenied unless the VM is listed with may_allocate.
  absl::Status CheckMayAllocate(HeapId heap, VmId vm) const;
  // An offer of `rights` to `vm`: PermissionDenied beyond its ceiling or
  // CPU mapping on a device-only heap; NotFound for unknown VMs.
  absl::Status CheckMayReceive(HeapId heap, VmId vm, Rights rights) const;

 private:
  Policy() = default;
  PolicyConfig config_;
  absl::flat_hash_map<VmId, size_t> vm_index_;
  absl::flat_hash_map<std::string, HeapId> heap_index_;
  std::vector<std::vector<size_t>> heap_carveouts_;
  absl::flat_hash_map<std::pair<uint32_t, VmId>, size_t> access_index_;
  absl::flat_hash_map<VmId, std::vector<InitiatorId>> initiators_by_vm_;
  absl::flat_hash_map<InitiatorId, Access> initiator_max_;
};

}  // namespace rmem

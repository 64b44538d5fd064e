// Policy validation and lookups.
#include "broker/policy/policy.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "broker/check.h"

namespace rmem {
namespace {

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

}  // namespace

absl::StatusOr<Policy> Policy::Create(PolicyConfig config, absl::Span<const Carveout> carveouts) {
  Policy p;
  absl::flat_hash_set<std::string> vm_names;
  for (size_t i = 0; i < config.vms.size(); ++i) {
    const VmConfig& vm = config.vms[i];
    if (vm.id == kHostVm) {
      return Invalid(absl::StrCat("vm '", vm.name, "' has id 0, which is the host's"));
    }
    if (vm.name.empty()) return Invalid(absl::StrCat(VmName(vm.id), " has no name"));
    if (!p.vm_index_.emplace(vm.id, i).second) {
      return Invalid(absl::StrCat(VmName(vm.id), " is configured twice"));
    }
    if (!vm_names.insert(vm.name).second) {
      return Invalid(absl::StrCat("vm name '", vm.name, "' is used twice"));
    }
  }

  absl::flat_hash_set<InitiatorId> initiator_ids;
  absl::flat_hash_set<std::string> initiator_names;
  for (const InitiatorConfig& ini : config.initiators) {
    const std::string what = absl::StrCat("initiator '", ini.name, "' (id ", ini.id.value(), ")");
    if (ini.name.empty()) {
      return Invalid(absl::StrCat("initiator id ", ini.id.value(), " has no name"));
    }
    if (!initiator_ids.insert(ini.id).second) {
      return Invalid(absl::StrCat("initiator id ", ini.id.value(), " is used twice"));
    }
    if (!initiator_names.insert(ini.name).second) {
      return Invalid(absl::StrCat("initiator name '", ini.name, "' is used twice"));
    }
    if (ini.max_access == Access::kNone) {
      return Invalid(absl::StrCat(what, " may access nothing (max access none): leave it out"));
    }
    p.initiator_max_.emplace(ini.id, ini.max_access);
    if (ini.owner != kHostVm) {
      if (!p.vm_index_.contains(ini.owner)) {
        return Invalid(absl::StrCat(what, " is owned by unknown ", VmName(ini.owner)));
      }
      p.initiators_by_vm_[ini.owner].push_back(ini.id);
    }
  }

  absl::flat_hash_map<std::string, size_t> carveout_index;
  for (size_t i = 0; i < carveouts.size(); ++i) carveout_index.emplace(carveouts[i].name, i);

  for (size_t h = 0; h < config.heaps.size(); ++h) {
    const HeapConfig& heap = config.heaps[h];
    if (heap.name.empty()) return Invalid(absl::StrCat("heap #", h, " has no name"));
    const std::string what = absl::StrCat("heap '", heap.name, "'");
    if (!p.heap_index_.emplace(heap.name, HeapId(static_cast<uint32_t>(h))).second) {
      return Invalid(absl::StrCat("heap name '", heap.name, "' is used twice"));
    }
    if (heap.carveouts.empty()) return Invalid(what + " has no carve-outs");
    std::vector<size_t> indices;
    for (const std::string& name : heap.carveouts) {
      auto it = carveout_index.find(name);
      if (it == carveout_index.end()) {
        return Invalid(absl::StrCat(what, " uses unknown carve-out '", name, "'"));
      }
      for (size_t seen : indices) {
        if (seen == it->second) {
          return Invalid(absl::StrCat(what, " lists carve-out '", name, "' twice"));
        }
      }
      indices.push_back(it->second);
    }
    p.heap_carveouts_.push_back(std::move(indices));
    for (size_t a = 0; a < heap.access.size(); ++a) {
      const HeapAccess& acc = heap.access[a];
      const std::string who = absl::StrCat(what, ", ", VmName(acc.vm));
      if (!p.vm_index_.contains(acc.vm)) {
        return Invalid(absl::StrCat(what, " lists unknown ", VmName(acc.vm)));
      }
      if (!p.access_index_.emplace(std::make_pair(static_cast<uint32_t>(h), acc.vm), a).second) {
        return Invalid(absl::StrCat(who, " is listed twice"));
      }
      if (acc.max_rights.empty()) {
        return Invalid(absl::StrCat(who, ": max rights '", acc.max_rights.ToString(),
                                    "' hold neither read nor write"));
      }
      if (acc.max_rights.cpu_map() && !heap.cpu_map_allowed) {
        return Invalid(absl::StrCat(who, ": cpu-map is not allowed on a device-only heap"));
      }
    }
  }
  p.config_ = std::move(config);
  return p;
}

const VmConfig* Policy::FindVm(VmId vm) const {
  auto it = vm_index_.find(vm);
  return it == vm_index_.end() ? nullptr : &config_.vms[it->second];
}

std::optional<HeapId> Policy::FindHeap(absl::string_view name) const {
  auto it = heap_index_.find(name);
  if (it == heap_index_.end()) return std::nullopt;
  return it->second;
}

const HeapAccess* Policy::FindAccess(HeapId heap, VmId vm) const {
  auto it = access_index_.find(std::make_pair(heap.value(), vm));
  return it == access_index_.end() ? nullptr : &config_.heaps[heap.value()].access[it->second];
}

absl::Span<const InitiatorId> Policy::initiators_of(VmId vm) const {
  auto it = initiators_by_vm_.find(vm);
  if (it == initiators_by_vm_.end()) return {};
  return it->second;
}

Access Policy::InitiatorAccess(InitiatorId ini, Access owner_access) const {
  auto it = initiator_max_.find(ini);
  RMEM_CHECK(it != initiator_max_.end());
  return owner_access & it->second;
}

absl::Status Policy::CheckMayAllocate(HeapId heap, VmId vm) const {
  const HeapAccess* acc = FindAccess(heap, vm);
  if (acc == nullptr || !acc->may_allocate) {
    return absl::PermissionDeniedError(
        absl::StrCat(VmName(vm), " may not allocate from heap '", this->heap(heap).name, "'"));
  }
  return absl::OkStatus();
}

absl::Status Policy::CheckMayReceive(HeapId heap, VmId vm, Rights rights) const {
  if (FindVm(vm) == nullptr) {
    return absl::NotFoundError(absl::StrCat(VmName(vm), " is not a configured VM"));
  }
  const HeapConfig& h = this->heap(heap);
  if (rights.cpu_map() && !h.cpu_map_allowed) {
    return absl::PermissionDeniedError(
        absl::StrCat("heap '", h.name, "' is device-only; cpu-map cannot be granted"));
  }
  const HeapAccess* acc = FindAccess(heap, vm);
  if (acc == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat(VmName(vm), " may not hold buffers of heap '", h.name, "'"));
  }
  if (!acc->max_rights.Includes(rights)) {
    return absl::PermissionDeniedError(absl::StrCat(VmName(vm), " may hold at most ",
                                                    acc->max_rights.ToString(), " on heap '",
                                                    h.name, "', not ", rights.ToString()));
  }
  return absl::OkStatus();
}

}  // namespace rmem

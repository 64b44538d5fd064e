#include "broker/rmemd/setup.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rmem::rmemd {
namespace {

// "secure-video@70000000" from "/reserved-memory/secure-video@70000000".
std::string NodeName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

absl::StatusOr<BrokerSetup> MakeBrokerSetup(const firmware_handoff::Platform& platform,
                                            const RmemdConfig& config) {
  BrokerSetup setup;
  setup.guests = config.guests;
  setup.max_receivers = config.max_receivers;
  std::vector<std::string> use_cases;
  for (const firmware_handoff::HandoffCarveout& c : platform.carveouts) {
    setup.carveouts.push_back(Carveout{.name = NodeName(c.node),
                                       .base = c.base,
                                       .size = c.size,
                                       .use_case = c.use_case,
                                       .max_align = kPageSize});
    use_cases.push_back(c.use_case);
  }
  // Which heap set each carve-out's max_align, for the conflict message.
  absl::flat_hash_map<size_t, std::string> align_set_by;
  for (const HeapFileConfig& h : config.heaps) {
    HeapConfig heap{.name = h.name,
                    .carveouts = {},
                    .cpu_map_allowed = h.cpu_map,
                    .owner_may_revoke = h.owner_may_revoke,
                    .quota_bytes = h.quota_bytes,
                    .access = {}};
    for (const std::string& use : h.use_cases) {
      bool found = false;
      for (size_t i = 0; i < setup.carveouts.size(); ++i) {
        Carveout& c = setup.carveouts[i];
        if (c.use_case != use) continue;
        found = true;
        heap.carveouts.push_back(c.name);
        if (auto it = align_set_by.find(i); it != align_set_by.end() && c.max_align != h.max_align) {
          return absl::InvalidArgumentError(absl::StrCat(
              config.source, ": carve-out ", c.name, " is in heap '", it->second, "' (max_align ",
              Hex(c.max_align), ") and heap '", h.name, "' (max_align ", Hex(h.max_align),
              "): give both the same max_align"));
        }
        c.max_align = h.max_align;
        align_set_by[i] = h.name;
      }
      if (!found) {
        return absl::InvalidArgumentError(absl::StrCat(
            config.source, ": heap '", h.name, "' uses carve-outs for '", use,
            "', but firmware handed over none (its carve-outs are for: ",
            use_cases.empty() ? "nothing" : absl::StrJoin(use_cases, ", "), ")"));
      }
    }
    for (const HeapGuestConfig& g : h.guests) {
      VmId id;
      for (const GuestConfig& guest : config.guests) {
        if (guest.name == g.vm) id = guest.id;
      }
      heap.access.push_back(HeapAccess{.vm = id,
                                       .may_allocate = g.allocate,
                                       .max_rights = g.rights,
                                       .quota_bytes = g.quota_bytes});
    }
    setup.policy.heaps.push_back(std::move(heap));
  }
  for (const GuestConfig& g : config.guests) {
    setup.policy.vms.push_back(VmConfig{.id = g.id, .name = g.name, .quota_bytes = g.quota_bytes});
  }
  for (size_t i = 0; i < platform.initiators.size(); ++i) {
    const firmware_handoff::HandoffInitiator& fw = platform.initiators[i];
    const GuestConfig* owner = nullptr;
    for (const GuestConfig& g : config.guests) {
      if (g.name == fw.owner_vm) owner = &g;
    }
    if (owner == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device initiator ", fw.node, " belongs to VM '", fw.owner_vm, "' (rmem,owner-vm), which ",
          config.source, " does not define: add a [[vm]] named '", fw.owner_vm,
          "' or fix the device tree"));
    }
    setup.policy.initiators.push_back(InitiatorConfig{
        .id = InitiatorId(static_cast<uint32_t>(i + 1)),
        .name = fw.node,
        .owner = owner->id,
        .max_access = fw.max_access});
  }
  absl::StatusOr<Policy> checked = Policy::Create(setup.policy, setup.carveouts);
  if (!checked.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(config.source, ": ", checked.status().message()));
  }
  return setup;
}

}  // namespace rmem::rmemd

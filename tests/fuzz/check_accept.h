// What every accepted result must satisfy, whatever the input: the
// contract's promises about carve-outs, and the platform reader agreeing
// with the contract reader (same verdict on carve-outs; initiators only
// with well-formed owners and distinct firewall ids). Fuzz targets abort if
// one breaks.
#pragma once

#include <cstdlib>
#include <set>
#include <string>
#include <utility>

#include "firmware_handoff/handoff.h"

namespace rmem::firmware_handoff {

inline void CheckResult(const HandoffResult& result) {
  (void)ToJson(result);  // the JSON writer must cope with any message or use-case
  const auto* list = std::get_if<std::vector<HandoffCarveout>>(&result);
  if (list == nullptr) return;
  for (size_t i = 0; i < list->size(); ++i) {
    const HandoffCarveout& c = (*list)[i];
    if (c.size == 0 || c.base.value() % 4096 != 0 || c.size % 4096 != 0 || c.use_case.empty() ||
        (c.base.value() != 0 && c.size > 0 - c.base.value())) {
      std::abort();
    }
    if (i > 0) {
      const HandoffCarveout& p = (*list)[i - 1];
      if (c.base.value() <= p.base.value() + (p.size - 1)) std::abort();  // sorted, disjoint
    }
  }
}

// `platform` read from the same bytes as `contract`.
inline void CheckPlatform(const HandoffResult& contract, const PlatformResult& platform) {
  (void)ToJson(platform);
  const auto* p = std::get_if<Platform>(&platform);
  const auto* list = std::get_if<std::vector<HandoffCarveout>>(&contract);
  if (list != nullptr) {
    // The contract accepted: the platform reader has the same carve-outs or
    // rejects for its own binding only.
    if (p == nullptr) {
      if (std::get<HandoffError>(platform).kind != ErrorKind::kRmemBadInitiator) std::abort();
      return;
    }
    if (p->carveouts != *list) std::abort();
  } else {
    // The contract rejected: the platform reader says the same.
    if (p != nullptr || std::get<HandoffError>(platform).kind !=
                            std::get<HandoffError>(contract).kind) {
      std::abort();
    }
    return;
  }
  std::set<std::pair<std::string, uint32_t>> ids;
  for (const HandoffInitiator& i : p->initiators) {
    if (i.owner_vm.empty() || i.owner_vm.size() > 32 || i.max_access == Access::kNone ||
        i.firewalls.empty()) {
      std::abort();
    }
    std::set<std::string> controllers;
    for (const FirewallRef& f : i.firewalls) {
      if (f.node.empty() || !ids.emplace(f.node, f.index).second ||
          !controllers.insert(f.node).second) {
        std::abort();
      }
    }
  }
}

}  // namespace rmem::firmware_handoff

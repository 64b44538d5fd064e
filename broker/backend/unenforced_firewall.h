// UnenforcedFirewall: for platforms whose bus firewall rmemd cannot program
// yet (the test SoC has none; the register-level TZC-400 and block
// controller models are issue 6). It records every grant, so status output
// and tests can see what device initiators would be allowed, and ENFORCES
// NOTHING: DMA masters are not restricted by it. rmemd says so at start.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "broker/backend/firewall.h"
#include "broker/check.h"

namespace rmem {

class UnenforcedFirewall : public Firewall {
 public:
  struct Grant_ {
    PageRange pages;
    Access access;
  };
  absl::Status Grant(InitiatorId initiator, PageRange pages, Access access) override {
    grants_[initiator].push_back({pages, access});
    return absl::OkStatus();
  }
  void Revoke(InitiatorId initiator, PageRange pages) override {
    std::vector<Grant_>& list = grants_[initiator];
    for (auto it = list.begin(); it != list.end(); ++it) {
      if (it->pages == pages) {
        list.erase(it);
        return;
      }
    }
    RMEM_CHECK(false && "revoke of a grant never made");
  }
  // The grants an initiator holds now.
  const std::vector<Grant_>& grants(InitiatorId initiator) { return grants_[initiator]; }

 private:
  absl::flat_hash_map<InitiatorId, std::vector<Grant_>> grants_;
};

}  // namespace rmem

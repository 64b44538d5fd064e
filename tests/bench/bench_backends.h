// Backends for benchmarks: they count calls and do nothing else, so the
// figures measure the broker's own work. (Scrubbing real memory is measured
// separately, against a memset floor.)
#pragma once

#include <cstdint>

#include "broker/backend/firewall.h"
#include "broker/backend/scrubber.h"
#include "broker/backend/stage2.h"

namespace rmem::bench {

struct CountingBackends : Stage2, Firewall, Scrubber {
  uint64_t maps = 0, unmaps = 0, grants = 0, revokes = 0, scrubs = 0;
  absl::StatusOr<GuestAddr> Map(VmId, PageRange pages, Access) override {
    ++maps;
    return GuestAddr(pages.base().value());
  }
  absl::Status MapAt(VmId, PageRange, Access, GuestAddr) override {
    ++maps;
    return absl::OkStatus();
  }
  void Unmap(VmId, PageRange) override { ++unmaps; }
  absl::Status Grant(InitiatorId, PageRange, Access) override {
    ++grants;
    return absl::OkStatus();
  }
  void Revoke(InitiatorId, PageRange) override { ++revokes; }
  void Scrub(PageRange) override { ++scrubs; }
  Backends backends() { return Backends{this, this, this}; }
};

}  // namespace rmem::bench

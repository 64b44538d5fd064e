// Null backends: for platforms without the mechanism. They refuse every
// grant with Unimplemented, so nothing is ever reachable through them.
#pragma once

#include "absl/strings/str_cat.h"
#include "broker/backend/firewall.h"
#include "broker/backend/stage2.h"
#include "broker/check.h"

namespace rmem {

class NullStage2 : public Stage2 {
 public:
  absl::StatusOr<GuestAddr> Map(VmId vm, PageRange, Access) override {
    return absl::UnimplementedError(
        absl::StrCat("no stage-2 backend: cannot map memory into ", VmName(vm)));
  }
  absl::Status MapAt(VmId vm, PageRange pages, Access access, GuestAddr) override {
    return Map(vm, pages, access).status();
  }
  void Unmap(VmId, PageRange) override { RMEM_CHECK(false && "nothing was ever mapped"); }
};

class NullFirewall : public Firewall {
 public:
  absl::Status Grant(InitiatorId initiator, PageRange, Access) override {
    return absl::UnimplementedError(
        absl::StrCat("no firewall backend: cannot grant initiator ", initiator.value(), " access"));
  }
  void Revoke(InitiatorId, PageRange) override { RMEM_CHECK(false && "nothing was ever granted"); }
};

}  // namespace rmem

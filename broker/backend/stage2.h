// Stage2: makes carve-out pages reachable by one VM's CPUs, with read or
// read+write access, and takes them away again. Implementations: the VMM
// over vhost-user SHMEM_MAP/UNMAP (shm_region_stage2.h), Xen (later),
// FakeStage2 (records calls, injects failures; fake_backends.h) and
// NullStage2 (null_backends.h).
#pragma once

#include "absl/status/statusor.h"
#include "broker/rights.h"
#include "broker/types.h"

namespace rmem {

class Stage2 {
 public:
  virtual ~Stage2() = default;
  // Maps `pages` into `vm` with `access` (kRead or kReadWrite). Returns
  // where the guest sees them. On error nothing is mapped. Errors are the
  // backend's (e.g. Unavailable: the VMM is gone; ResourceExhausted: no
  // room in the guest's window; Unimplemented: the null backend).
  virtual absl::StatusOr<GuestAddr> Map(VmId vm, PageRange pages, Access access) = 0;
  // Re-establishes a mapping the broker restored from its state after a
  // restart, where the guest saw it before (`at`, from an earlier Map): the
  // guest may hold that address. A backend whose VM is not reachable yet
  // (its VMM has not reconnected) keeps it and maps it when it is. Errors
  // as Map; InvalidArgument when `at` cannot be where these pages are.
  virtual absl::Status MapAt(VmId vm, PageRange pages, Access access, GuestAddr at) = 0;
  // Removes exactly one earlier Map of these pages from `vm`. Cannot fail:
  // a backend that cannot confirm removal must make the pages unreachable
  // some other way (e.g. stop the VM) before it returns.
  virtual void Unmap(VmId vm, PageRange pages) = 0;
};

}  // namespace rmem

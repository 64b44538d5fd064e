// The isolation violations of a run: guest accesses to a VIRTIO shared
// memory region that its grants do not allow (a write to a read-only piece,
// any access to an unmapped offset; ShmWindows::Classify describes them).
// Every one is counted; the first few are reported, one line each, so that a
// guest (or a revoke racing a reader, which the device contract allows) cannot
// flood the log (STYLE.md rule 4). Thread-safe: vCPU threads record
// concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/strings/string_view.h"

namespace rmem::vmm {

class ViolationLog {
 public:
  // Receives each report line, without a trailing newline.
  using Sink = std::function<void(const std::string& line)>;
  static constexpr uint64_t kDefaultLogLimit = 8;

  explicit ViolationLog(Sink sink, uint64_t log_limit = kDefaultLogLimit)
      : sink_(std::move(sink)), log_limit_(log_limit) {}

  // Counts one violation by vCPU `vcpu`. `what` is what it broke
  // ("virtio-65534.0: guest write to read-only piece ..."), `outcome` what
  // rmem-vmm did about it ("external abort injected"). The first log_limit
  // are reported as
  //   rmem-vmm: vCPU <vcpu>: isolation violation: <what>: <outcome>
  // and the next one adds, once,
  //   rmem-vmm: more isolation violations are counted but not logged
  void Record(int vcpu, absl::string_view what, absl::string_view outcome);

  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

  // The line for the end of the run, "rmem-vmm: isolation violations: <n>
  // (<logged> logged)", or empty if there were none.
  std::string Summary() const;

 private:
  const Sink sink_;
  const uint64_t log_limit_;
  std::atomic<uint64_t> count_{0};
};

}  // namespace rmem::vmm

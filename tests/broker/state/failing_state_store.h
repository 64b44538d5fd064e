// A StateStore wrapper for tests: forwards to a real store and fails the
// commits it is told to (Unavailable, as a full or read-only disk would),
// without touching the real store, so the broker's handling of a store that
// refuses can be checked anywhere in a sequence.
#pragma once

#include <cstdint>

#include "broker/state/state_store.h"

namespace rmem::testing {

class FailingStateStore : public StateStore {
 public:
  explicit FailingStateStore(StateStore* real) : real_(real) {}

  // The `nth` commit from now (1 = the next) fails.
  void FailNthCommit(uint64_t nth) { fail_in_ = nth; }
  void ClearFailures() { fail_in_ = 0; }
  uint64_t failed() const { return failed_; }
  uint64_t commits() const { return commits_; }

  absl::StatusOr<std::optional<StoredState>> Load() override { return real_->Load(); }
  absl::Status Commit(const StateDelta& delta, const StoredState* replace_first) override {
    if (fail_in_ != 0 && --fail_in_ == 0) {
      ++failed_;
      return absl::UnavailableError("state database: injected failure (disk full)");
    }
    ++commits_;
    return real_->Commit(delta, replace_first);
  }
  absl::StatusOr<std::vector<AuditEntry>> ReadAudit(uint64_t after_seq, size_t max) override {
    return real_->ReadAudit(after_seq, max);
  }

 private:
  StateStore* real_;
  uint64_t fail_in_ = 0;
  uint64_t failed_ = 0;
  uint64_t commits_ = 0;
};

}  // namespace rmem::testing

// Fake backends for tests: FakeStage2, FakeFirewall and FakeScrubber share
// one FakeMemory that records, per party and page, the access programmed,
// which parties could have written each page since it was last scrubbed,
// and a journal of every grant made. Fallible calls (Map, Grant) can be made
// to fail on demand. Misuse by the broker (mapping a page twice for one
// party, removing a mapping that does not exist) is our bug and CHECK-fails.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "broker/backend/firewall.h"
#include "broker/backend/party.h"
#include "broker/backend/scrubber.h"
#include "broker/backend/stage2.h"

namespace rmem {

class FakeMemory {
 public:
  // A grant made through a backend, with the parties that could have written
  // those pages since their last scrub (the content the grantee now sees).
  struct Exposure {
    Party party;
    PageRange pages;
    Access access;
    absl::btree_set<Party> writers;
  };
  struct Counters {
    // Stage-2 maps and firewall grants both count as grants.
    uint64_t grants = 0, revokes = 0, scrubs = 0, scrubbed_pages = 0, failed = 0;
  };

  Access AccessOf(Party party, Pfn pfn) const;
  // Parties that could have written `pfn` since its last scrub.
  absl::btree_set<Party> WritersOf(Pfn pfn) const;
  bool IsClean(PageRange pages) const;
  // Simulates unknown content (e.g. left by firmware) on these pages.
  void MarkWritten(PageRange pages, Party writer);

  // rmemd died and came back: the VMMs' mappings and the firewall's grants
  // are reset (the broker restores them), what pages hold stays.
  void ForgetAccess() { mappings_.clear(); }

  // Every party holding some access, with its ranges.
  std::vector<Party> parties() const;

  const std::vector<Exposure>& journal() const { return journal_; }
  void ClearJournal() { journal_.clear(); }
  const Counters& counters() const { return counters_; }

  // The `nth` fallible call from now (1 = the next) fails with `status`.
  void FailNthCall(uint64_t nth, absl::Status status);
  void ClearFailures() { fail_at_.reset(); }
  // Fallible calls made so far.
  uint64_t fallible_calls() const { return fallible_calls_; }

  // Used by the fake backends.
  absl::Status Grant(Party party, PageRange pages, Access access);
  void Revoke(Party party, PageRange pages);
  void Scrub(PageRange pages);

 private:
  struct Mapping {
    uint64_t count;
    Access access;
  };
  absl::flat_hash_map<Party, absl::btree_map<uint64_t, Mapping>> mappings_;
  absl::flat_hash_map<uint64_t, absl::btree_set<Party>> writers_;  // pfn -> writers
  std::vector<Exposure> journal_;
  Counters counters_;
  uint64_t fallible_calls_ = 0;
  std::optional<std::pair<uint64_t, absl::Status>> fail_at_;
};

class FakeStage2 : public Stage2 {
 public:
  explicit FakeStage2(FakeMemory* memory) : memory_(memory) {}
  // The guest sees the pages at their host physical address (identity).
  absl::StatusOr<GuestAddr> Map(VmId vm, PageRange pages, Access access) override;
  // InvalidArgument unless `at` is the pages' address (identity).
  absl::Status MapAt(VmId vm, PageRange pages, Access access, GuestAddr at) override;
  void Unmap(VmId vm, PageRange pages) override;

 private:
  FakeMemory* memory_;
};

class FakeFirewall : public Firewall {
 public:
  explicit FakeFirewall(FakeMemory* memory) : memory_(memory) {}
  absl::Status Grant(InitiatorId initiator, PageRange pages, Access access) override;
  void Revoke(InitiatorId initiator, PageRange pages) override;

 private:
  FakeMemory* memory_;
};

class FakeScrubber : public Scrubber {
 public:
  explicit FakeScrubber(FakeMemory* memory) : memory_(memory) {}
  void Scrub(PageRange pages) override { memory_->Scrub(pages); }

 private:
  FakeMemory* memory_;
};

// The three fakes over one memory, for tests that want them all.
struct FakeBackends {
  FakeMemory memory;
  FakeStage2 stage2{&memory};
  FakeFirewall firewall{&memory};
  FakeScrubber scrubber{&memory};
};

}  // namespace rmem

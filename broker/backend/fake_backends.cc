// Fake backends; see fake_backends.h.
#include "broker/backend/fake_backends.h"

#include <cstdio>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "broker/check.h"

namespace rmem {

Access FakeMemory::AccessOf(Party party, Pfn pfn) const {
  auto p = mappings_.find(party);
  if (p == mappings_.end()) return Access::kNone;
  auto it = p->second.upper_bound(pfn.value());
  if (it == p->second.begin()) return Access::kNone;
  --it;
  return pfn.value() < it->first + it->second.count ? it->second.access : Access::kNone;
}

absl::btree_set<Party> FakeMemory::WritersOf(Pfn pfn) const {
  auto it = writers_.find(pfn.value());
  return it == writers_.end() ? absl::btree_set<Party>() : it->second;
}

bool FakeMemory::IsClean(PageRange pages) const {
  for (uint64_t p = pages.first().value(); p < pages.end().value(); ++p) {
    if (writers_.contains(p)) return false;
  }
  return true;
}

void FakeMemory::MarkWritten(PageRange pages, Party writer) {
  for (uint64_t p = pages.first().value(); p < pages.end().value(); ++p) {
    writers_[p].insert(writer);
  }
}

std::vector<Party> FakeMemory::parties() const {
  std::vector<Party> out;
  for (const auto& [party, ranges] : mappings_) {
    if (!ranges.empty()) out.push_back(party);
  }
  return out;
}

void FakeMemory::FailNthCall(uint64_t nth, absl::Status status) {
  RMEM_CHECK(nth >= 1 && !status.ok());
  fail_at_.emplace(fallible_calls_ + nth, std::move(status));
}

absl::Status FakeMemory::Grant(Party party, PageRange pages, Access access) {
  RMEM_CHECK(!pages.empty());
  RMEM_CHECK(access != Access::kNone);
  ++fallible_calls_;
  if (fail_at_ && fail_at_->first == fallible_calls_) {
    ++counters_.failed;
    absl::Status s = fail_at_->second;
    fail_at_.reset();
    return s;
  }
  auto& ranges = mappings_[party];
  // No existing range of this party may overlap: the broker maps a page at
  // most once per party.
  auto next = ranges.lower_bound(pages.first().value());
  if (next != ranges.end() && next->first < pages.end().value()) {
    std::fprintf(stderr, "FakeMemory: %s mapped %s twice\n", party.ToString().c_str(),
                 pages.ToString().c_str());
    RMEM_CHECK(false);
  }
  if (next != ranges.begin()) {
    auto prev = std::prev(next);
    RMEM_CHECK(prev->first + prev->second.count <= pages.first().value());
  }
  ranges.emplace(pages.first().value(), Mapping{pages.count().value(), access});
  ++counters_.grants;

  Exposure e{party, pages, access, {}};
  for (uint64_t p = pages.first().value(); p < pages.end().value(); ++p) {
    auto w = writers_.find(p);
    if (w != writers_.end()) e.writers.insert(w->second.begin(), w->second.end());
    if (Covers(access, Access::kWrite)) writers_[p].insert(party);
  }
  journal_.push_back(std::move(e));
  return absl::OkStatus();
}

void FakeMemory::Revoke(Party party, PageRange pages) {
  auto p = mappings_.find(party);
  RMEM_CHECK(p != mappings_.end());
  auto it = p->second.find(pages.first().value());
  if (it == p->second.end() || it->second.count != pages.count().value()) {
    std::fprintf(stderr, "FakeMemory: %s unmapped %s, which it did not map\n",
                 party.ToString().c_str(), pages.ToString().c_str());
    RMEM_CHECK(false);
  }
  p->second.erase(it);
  if (p->second.empty()) mappings_.erase(p);
  ++counters_.revokes;
}

void FakeMemory::Scrub(PageRange pages) {
  ++counters_.scrubs;
  counters_.scrubbed_pages += pages.count().value();
  for (uint64_t p = pages.first().value(); p < pages.end().value(); ++p) writers_.erase(p);
}

absl::StatusOr<GuestAddr> FakeStage2::Map(VmId vm, PageRange pages, Access access) {
  absl::Status s = memory_->Grant(Party::Cpu(vm), pages, access);
  if (!s.ok()) return s;
  return GuestAddr(pages.base().value());
}

absl::Status FakeStage2::MapAt(VmId vm, PageRange pages, Access access, GuestAddr at) {
  if (at.value() != pages.base().value()) {
    return absl::InvalidArgumentError(absl::StrCat("fake stage-2 maps ", pages.ToString(), " at ",
                                                   Hex(pages.base().value()), ", not ",
                                                   at.ToString()));
  }
  return Map(vm, pages, access).status();
}

void FakeStage2::Unmap(VmId vm, PageRange pages) { memory_->Revoke(Party::Cpu(vm), pages); }

absl::Status FakeFirewall::Grant(InitiatorId initiator, PageRange pages, Access access) {
  return memory_->Grant(Party::Device(initiator), pages, access);
}

void FakeFirewall::Revoke(InitiatorId initiator, PageRange pages) {
  memory_->Revoke(Party::Device(initiator), pages);
}

}  // namespace rmem

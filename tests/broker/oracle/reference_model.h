// The reference model: DESIGN.md's ownership model restated as simply as
// possible, independently of broker/ (it reads the policy configuration as
// plain data and shares no code with the broker's checks).
//
// For every request it answers two questions:
//  - Expect*(): which outcomes are acceptable. The set of status codes of
//    every rule the request breaks, or {OK} when it breaks none. (The order
//    in which the broker reports several broken rules is a unit-test
//    matter; here any broken rule's code is accepted, OK is not.)
//  - Apply*(): given the broker's successful result, update the model and
//    check what the broker chose (ids, pages) is consistent; returns a
//    description of any inconsistency.
// From the model follow the expected access of every party to every page
// (the isolation invariant's "ownership model grants it"), the expected
// events, and each buffer's lineage: the parties that were ever authorised to
// write it (as owner, or as a receiver offered write) since it was allocated.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "broker/backend/party.h"
#include "broker/broker.h"
#include "broker/events.h"
#include "tests/broker/oracle/test_platform.h"

namespace rmem::testing {

using Codes = std::set<absl::StatusCode>;

// An event as the model predicts it.
struct ExpectedEvent {
  VmId to;
  EventKind kind;
  EventReason reason;
  Handle handle;
  VmId peer;
  auto operator<=>(const ExpectedEvent&) const = default;
};

class ReferenceModel {
 public:
  struct MReceiver {
    Rights rights;
    bool retrieved = false;
  };
  struct MBuffer {
    BufferId id;
    VmId owner;
    size_t heap = 0;
    PageRange pages;
    Rights owner_rights;
    std::optional<TxnKind> txn;
    Handle handle;
    std::map<VmId, MReceiver> receivers;
    // Parties authorised to write it since ALLOC: the owners, and receivers
    // offered write.
    std::set<Party> lineage;
  };

  explicit ReferenceModel(const TestPlatform& platform);

  Codes ExpectAlloc(VmId caller, const std::string& heap, uint64_t size, uint64_t align) const;
  std::string ApplyAlloc(VmId caller, const std::string& heap, uint64_t size, uint64_t align,
                         const Allocation& a);
  Codes ExpectOffer(VmId caller, BufferId b, TxnKind kind, const std::vector<Offer>& to) const;
  std::string ApplyOffer(VmId caller, BufferId b, TxnKind kind, const std::vector<Offer>& to,
                         Handle h);
  Codes ExpectRetrieve(VmId caller, Handle h) const;
  std::string ApplyRetrieve(VmId caller, Handle h, const Retrieval& r);
  Codes ExpectRelinquish(VmId caller, Handle h) const;
  void ApplyRelinquish(VmId caller, Handle h);
  Codes ExpectReclaim(VmId caller, BufferId b, ReclaimMode mode) const;
  void ApplyReclaim(VmId caller, BufferId b);
  Codes ExpectFree(VmId caller, BufferId b) const;
  void ApplyFree(VmId caller, BufferId b);
  void ApplyTeardown(VmId vm);

  // The access the ownership model grants `party` on `pfn`.
  Access AccessOf(Party party, Pfn pfn) const;
  // The live buffer holding `pfn`, or nullptr if the page is free.
  const MBuffer* BufferAt(Pfn pfn) const;
  // The buffer of handle `h` if its transaction names `vm`.
  const MBuffer* OfferedTo(VmId vm, Handle h) const;
  // Whether `party` is `vm`'s CPUs or one of its initiators.
  bool BelongsTo(Party party, VmId vm) const;
  // Every party the platform has: each VM's CPUs and every initiator.
  std::vector<Party> AllParties() const;
  // Events predicted since the last call.
  std::vector<ExpectedEvent> TakeEvents();

  const std::map<BufferId, MBuffer>& buffers() const { return buffers_; }
  const std::map<Handle, BufferId>& txns() const { return txns_; }
  const TestPlatform& platform() const { return platform_; }
  // Every buffer id and handle ever issued (live or not).
  const std::vector<BufferId>& all_buffer_ids() const { return all_ids_; }
  const std::vector<Handle>& all_handles() const { return all_handles_; }
  uint64_t allocated_pages(size_t carveout) const;
  // Buffers `vm` owns / handles offered to `vm`, in a stable order.
  std::vector<BufferId> OwnedBy(VmId vm) const;
  std::vector<Handle> OfferedTo(VmId vm) const;

 private:
  const VmConfig* Vm(VmId vm) const;
  std::optional<size_t> Heap(const std::string& name) const;
  const HeapAccess* HeapRule(size_t heap, VmId vm) const;
  void QuotaCodes(VmId vm, size_t heap, uint64_t bytes, Codes& codes) const;
  bool FitExists(size_t heap, uint64_t pages, uint64_t align_bytes) const;
  std::vector<InitiatorId> InitiatorsOf(VmId vm) const;
  Access InitiatorMax(InitiatorId ini) const;
  void AddLineage(MBuffer& b, VmId vm, Rights rights);
  void Emit(VmId to, EventKind kind, EventReason reason, Handle h, VmId peer);
  // Everything receivers hold is dropped, with events to them.
  void CloseTxn(MBuffer& b, EventReason reason);

  TestPlatform platform_;
  std::map<BufferId, MBuffer> buffers_;
  std::map<Handle, BufferId> txns_;
  std::map<uint64_t, BufferId> by_first_pfn_;
  std::map<VmId, uint64_t> vm_bytes_;
  std::map<std::pair<VmId, size_t>, uint64_t> vm_heap_bytes_;
  std::map<size_t, uint64_t> heap_bytes_;
  std::set<uint64_t> seen_ids_, seen_handles_;
  std::vector<BufferId> all_ids_;
  std::vector<Handle> all_handles_;
  std::vector<ExpectedEvent> events_;
};

}  // namespace rmem::testing

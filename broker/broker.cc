// The broker's request handling: check, prepare, commit. See broker.h.
#include "broker/broker.h"

#include <algorithm>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/check.h"

namespace rmem {
namespace {

absl::Status Reject(const absl::StatusCode code, absl::string_view message) {
  return absl::Status(code, message);
}

// Keeps the backend's code, says what the broker was doing.
absl::Status Annotate(const absl::Status& s, absl::string_view doing) {
  return absl::Status(s.code(), absl::StrCat(doing, ": ", s.message()));
}

std::string NotYours(VmId vm, BufferId b) {
  return absl::StrCat(VmName(vm), " owns no ", BufferName(b));
}
std::string NotAddressed(VmId vm, Handle h) {
  return absl::StrCat(HandleName(h), " is not offered to ", VmName(vm));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Broker>> Broker::Create(std::vector<Carveout> carveouts,
                                                       PolicyConfig policy_config,
                                                       Backends backends, BrokerOptions options) {
  if (backends.stage2 == nullptr || backends.firewall == nullptr || backends.scrubber == nullptr) {
    return absl::InvalidArgumentError("the broker needs stage-2, firewall and scrubber backends");
  }
  if (options.max_receivers == 0 || options.event_queue_capacity == 0) {
    return absl::InvalidArgumentError("max_receivers and event_queue_capacity must be > 0");
  }
  if (absl::Status s = ValidateCarveouts(carveouts); !s.ok()) return s;
  absl::StatusOr<Policy> policy = Policy::Create(std::move(policy_config), carveouts);
  if (!policy.ok()) return policy.status();
  auto broker = std::unique_ptr<Broker>(
      new Broker(std::move(carveouts), *std::move(policy), backends, options));
  std::optional<StoredState> stored;
  if (backends.state != nullptr) {
    absl::StatusOr<std::optional<StoredState>> loaded = backends.state->Load();
    if (!loaded.ok()) return loaded.status();
    stored = *std::move(loaded);
  }
  if (stored) {
    if (absl::Status s = broker->RestoreLedger(*stored); !s.ok()) return s;
  }
  // Whatever firmware, an earlier user or a buffer freed just before a
  // crash left in a free page must not reach a guest: the pools start clean.
  for (PageAllocator& pool : broker->pools_) {
    for (const PageRange& run : pool.FreeRuns()) broker->backends_.scrubber->Scrub(run);
  }
  if (stored) {
    if (absl::Status s = broker->RestoreAccess(); !s.ok()) return s;
  } else {
    StateDelta first;  // a new store: where the id sequences start
    if (absl::Status s = broker->Persist(first); !s.ok()) return s;
  }
  return broker;
}

Broker::Broker(std::vector<Carveout> carveouts, Policy policy, Backends backends,
               BrokerOptions options)
    : carveouts_(std::move(carveouts)),
      policy_(std::move(policy)),
      backends_(backends),
      options_(options),
      quotas_(&policy_),
      buffer_ids_(options.buffer_id_key.value_or(IdKey::Random())),
      handles_(options.handle_key.value_or(IdKey::Random())) {
  for (const Carveout& c : carveouts_) {
    const PageRange range = *PageRange::FromBytes(c.base, c.size);  // validated
    pools_.emplace_back(range, options_.allocator);  // scrubbed by Create
  }
  for (const VmConfig& vm : policy_.config().vms) {
    events_.emplace(vm.id, EventQueue(options_.event_queue_capacity));
  }
}

absl::Status Broker::CheckCaller(VmId caller) const {
  if (policy_.FindVm(caller) == nullptr) {
    return absl::NotFoundError(absl::StrCat(VmName(caller), " is not a configured VM"));
  }
  return absl::OkStatus();
}

std::string Broker::Describe(const Buffer& b) const {
  std::vector<std::string> names;
  if (b.txn) {
    for (const Receiver& r : ledger_.FindTxn(*b.txn)->receivers) names.push_back(VmName(r.vm));
  }
  const std::string to = names.empty() ? "nobody" : absl::StrJoin(names, ", ");
  switch (b.state) {
    case BufferState::kOwned:
      return absl::StrCat(BufferName(b.id), " is owned by ", VmName(b.owner));
    case BufferState::kShared:
      return absl::StrCat(BufferName(b.id), " is shared with ", to);
    case BufferState::kLent:
      return absl::StrCat(BufferName(b.id), " is lent to ", to);
    case BufferState::kDonating:
      return absl::StrCat(BufferName(b.id), " is being donated to ", to);
    case BufferState::kGone:
      break;
  }
  return BufferName(b.id);
}

void Broker::Notify(VmId vm, const Event& e) {
  auto it = events_.find(vm);
  RMEM_CHECK(it != events_.end());
  it->second.Push(e);
}

absl::StatusOr<std::optional<GuestAddr>> Broker::GrantAccess(VmId vm, PageRange pages,
                                                             Rights rights,
                                                             std::optional<GuestAddr> restore_at) {
  RMEM_CHECK(!rights.empty());
  // The firewall first: its regions are scarce, so it is the step that is
  // refused in normal operation (ResourceExhausted), and then nothing has
  // been reachable, not even for a moment. The VM's initiators get its
  // read/write rights within their own maximum (a display controller only
  // ever reads); those left with nothing get no grant, in RevokeAccess too.
  std::vector<InitiatorId> granted;
  std::optional<GuestAddr> mapped_at;
  absl::Cleanup undo = [&] {
    if (mapped_at) backends_.stage2->Unmap(vm, pages);
    for (InitiatorId ini : granted) backends_.firewall->Revoke(ini, pages);
  };
  for (InitiatorId ini : policy_.initiators_of(vm)) {
    const Access access = policy_.InitiatorAccess(ini, rights.access());
    if (access == Access::kNone) continue;
    absl::Status s = backends_.firewall->Grant(ini, pages, access);
    if (!s.ok()) {
      return Annotate(s, absl::StrCat("granting initiator ", ini.value(), " of ", VmName(vm),
                                      " access"));
    }
    granted.push_back(ini);
  }
  if (rights.cpu_access() != Access::kNone) {
    absl::StatusOr<GuestAddr> m = restore_at.value_or(GuestAddr());
    if (restore_at) {
      absl::Status s = backends_.stage2->MapAt(vm, pages, rights.cpu_access(), *restore_at);
      if (!s.ok()) m = s;
    } else {
      m = backends_.stage2->Map(vm, pages, rights.cpu_access());
    }
    if (!m.ok()) return Annotate(m.status(), absl::StrCat("mapping into ", VmName(vm)));
    mapped_at = *m;
  }
  std::move(undo).Cancel();
  return mapped_at;
}

void Broker::RevokeAccess(VmId vm, PageRange pages, Rights rights) {
  for (InitiatorId ini : policy_.initiators_of(vm)) {
    if (policy_.InitiatorAccess(ini, rights.access()) != Access::kNone) {
      backends_.firewall->Revoke(ini, pages);
    }
  }
  if (rights.cpu_access() != Access::kNone) backends_.stage2->Unmap(vm, pages);
}

void Broker::Destroy(Buffer& b) {
  RMEM_CHECK(!b.txn.has_value());
  if (b.owner_has_access()) RevokeAccess(b.owner, b.pages, b.owner_rights);
  backends_.scrubber->Scrub(b.pages);
  pools_[b.carveout].Free(b.pages);
  quotas_.Release(b.owner, b.heap, b.size_bytes());
  ledger_.RemoveBuffer(b.id);
}

// ---- The state store ---------------------------------------------------------

StoredBuffer Broker::Stored(const Buffer& b) const {
  return StoredBuffer{b, policy_.heap(b.heap).name, carveouts_[b.carveout].name};
}

void Broker::Audit(StateDelta& delta, const char* op, AuditAction action, VmId actor, VmId vm,
                   const Buffer& b, Handle handle, Rights rights) {
  AuditEntry e;
  e.op = op;
  e.action = action;
  e.actor = actor;
  e.vm = vm;
  e.buffer = b.id;
  e.handle = handle;
  e.pages = b.pages;
  e.rights = rights;
  delta.audit.push_back(std::move(e));
}

absl::Status Broker::Persist(StateDelta& delta, const IdSequence* buffer_ids,
                             const IdSequence* handles) {
  if (backends_.state == nullptr) return absl::OkStatus();
  if (buffer_ids == nullptr) buffer_ids = &buffer_ids_;
  if (handles == nullptr) handles = &handles_;
  if (buffer_ids->next_counter() != persisted_buffer_counter_) {
    delta.buffer_ids = StoredIds{buffer_ids->key(), buffer_ids->next_counter()};
  }
  if (handles->next_counter() != persisted_handle_counter_) {
    delta.handle_ids = StoredIds{handles->key(), handles->next_counter()};
  }
  std::optional<StoredState> whole;
  if (state_behind_) whole = Snapshot();
  if (absl::Status s = backends_.state->Commit(delta, whole ? &*whole : nullptr); !s.ok()) {
    return s;
  }
  persisted_buffer_counter_ = buffer_ids->next_counter();
  persisted_handle_counter_ = handles->next_counter();
  state_behind_ = false;
  return absl::OkStatus();
}

absl::Status Broker::CatchUpState() {
  if (!state_behind_) return absl::OkStatus();
  StateDelta nothing;
  return Persist(nothing);
}

std::vector<const Buffer*> Broker::BuffersById() const {
  std::vector<const Buffer*> out;
  out.reserve(ledger_.buffer_count());
  for (const auto& [id, b] : ledger_.buffers()) out.push_back(&b);
  std::sort(out.begin(), out.end(), [](const Buffer* a, const Buffer* b) { return a->id < b->id; });
  return out;
}

std::vector<const Transaction*> Broker::TxnsByHandle() const {
  std::vector<const Transaction*> out;
  out.reserve(ledger_.txn_count());
  for (const auto& [h, t] : ledger_.txns()) out.push_back(&t);
  std::sort(out.begin(), out.end(),
            [](const Transaction* a, const Transaction* b) { return a->handle < b->handle; });
  return out;
}

StoredState Broker::Snapshot() const {
  StoredState out;
  out.buffer_ids = StoredIds{buffer_ids_.key(), buffer_ids_.next_counter()};
  out.handle_ids = StoredIds{handles_.key(), handles_.next_counter()};
  for (const Buffer* b : BuffersById()) out.buffers.push_back(Stored(*b));
  for (const Transaction* t : TxnsByHandle()) out.txns.push_back(*t);
  return out;
}

// ---- ALLOC -----------------------------------------------------------------

absl::StatusOr<Allocation> Broker::Alloc(VmId caller, absl::string_view heap_name, uint64_t size,
                                         uint64_t align) {
  // Check.
  if (absl::Status s = CheckCaller(caller); !s.ok()) return s;
  const std::optional<HeapId> heap = policy_.FindHeap(heap_name);
  if (!heap) return absl::NotFoundError(absl::StrCat("no heap '", heap_name, "'"));
  const HeapConfig& heap_config = policy_.heap(*heap);
  if (absl::Status s = policy_.CheckMayAllocate(*heap, caller); !s.ok()) return s;
  if (size == 0) return absl::InvalidArgumentError("allocation size is 0");
  const std::optional<uint64_t> pages = BytesToPagesRoundUp(size);
  if (!pages || *pages >= kPfnLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("allocation size ", Hex(size), " overflows when rounded up to pages"));
  }
  if (align != 0 && !IsPowerOfTwo(align)) {
    return absl::InvalidArgumentError(
        absl::StrCat("alignment ", Hex(align), " is not a power of two"));
  }
  const uint64_t align_bytes = std::max(align, kPageSize);
  uint64_t heap_max_align = 0;
  for (size_t c : policy_.heap_carveouts(*heap)) {
    heap_max_align = std::max(heap_max_align, carveouts_[c].max_align);
  }
  if (align_bytes > heap_max_align) {
    return absl::InvalidArgumentError(absl::StrCat("alignment ", Hex(align_bytes),
                                                   " exceeds heap '", heap_config.name,
                                                   "' maximum ", Hex(heap_max_align)));
  }
  const uint64_t bytes = PageCount(*pages).bytes();
  if (absl::Status s = quotas_.CheckCharge(caller, *heap, bytes); !s.ok()) return s;
  const Rights rights = policy_.FindAccess(*heap, caller)->max_rights;

  // Prepare: pages, then the owner's access.
  std::optional<PageRange> range;
  uint32_t carveout = 0;
  for (size_t c : policy_.heap_carveouts(*heap)) {
    if (carveouts_[c].max_align < align_bytes) continue;
    range = pools_[c].Allocate(PageCount(*pages), PageCount(align_bytes >> kPageShift));
    if (range) {
      carveout = static_cast<uint32_t>(c);
      break;
    }
  }
  if (!range) {
    uint64_t free_bytes = 0, largest = 0;
    for (size_t c : policy_.heap_carveouts(*heap)) {
      const PageAllocator::Stats st = pools_[c].stats();
      free_bytes += st.free.bytes();
      largest = std::max(largest, st.largest_free.bytes());
    }
    return absl::ResourceExhaustedError(absl::StrCat(
        "heap '", heap_config.name, "' has no free run of ", Hex(bytes), " bytes at alignment ",
        Hex(align_bytes), " (free ", Hex(free_bytes), ", largest run ", Hex(largest), ")"));
  }
  absl::Cleanup return_pages = [&] {
    // The owner may have been mapped for a moment: scrub before reuse.
    backends_.scrubber->Scrub(*range);
    pools_[carveout].Free(*range);
  };
  const std::string doing = absl::StrCat("allocating from heap '", heap_config.name, "'");
  absl::StatusOr<std::optional<GuestAddr>> mapped = GrantAccess(caller, *range, rights);
  if (!mapped.ok()) return Annotate(mapped.status(), doing);
  IdSequence ids = buffer_ids_;  // moves on only if the request is recorded
  Buffer b;
  b.id = BufferId(ids.Next());
  b.owner = caller;
  b.heap = *heap;
  b.carveout = carveout;
  b.pages = *range;
  b.owner_rights = rights;
  b.state = BufferState::kOwned;
  b.mapped_at = *mapped;
  StateDelta delta;
  delta.put_buffers.push_back(Stored(b));
  Audit(delta, "alloc", AuditAction::kGrant, caller, caller, b, Handle(), rights);
  if (absl::Status s = Persist(delta, &ids); !s.ok()) {
    RevokeAccess(caller, *range, rights);
    return Annotate(s, doing);
  }
  std::move(return_pages).Cancel();

  // Commit.
  buffer_ids_ = ids;
  ledger_.AddBuffer(b);
  quotas_.Charge(caller, *heap, bytes);
  return Allocation{b.id, b.pages, rights, b.mapped_at};
}

// ---- SHARE / LEND / DONATE -------------------------------------------------

absl::StatusOr<Handle> Broker::Share(VmId caller, BufferId buffer, absl::Span<const Offer> to) {
  return OpenTransaction(caller, buffer, Op::kShare, TxnKind::kShare, to);
}

absl::StatusOr<Handle> Broker::Lend(VmId caller, BufferId buffer, absl::Span<const Offer> to) {
  return OpenTransaction(caller, buffer, Op::kLend, TxnKind::kLend, to);
}

absl::StatusOr<Handle> Broker::Donate(VmId caller, BufferId buffer, VmId to) {
  if (absl::Status s = CheckCaller(caller); !s.ok()) return s;
  const Buffer* b = ledger_.FindOwned(caller, buffer);
  if (b == nullptr) return absl::NotFoundError(NotYours(caller, buffer));
  // The receiver will own it with its own rights on the heap.
  const HeapAccess* access = policy_.FindAccess(b->heap, to);
  const Offer offer{to, access != nullptr ? access->max_rights : Rights()};
  return OpenTransaction(caller, buffer, Op::kDonate, TxnKind::kDonate, {&offer, 1});
}

absl::StatusOr<Handle> Broker::OpenTransaction(VmId caller, BufferId buffer, Op op, TxnKind kind,
                                               absl::Span<const Offer> to) {
  // Check.
  if (absl::Status s = CheckCaller(caller); !s.ok()) return s;
  Buffer* b = ledger_.FindOwned(caller, buffer);
  if (b == nullptr) return absl::NotFoundError(NotYours(caller, buffer));
  const BufferOutcome& t = BufferTransition(b->state, op);
  if (!t.allowed) return Reject(t.code, absl::StrCat(Describe(*b), t.reason));
  if (to.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(OpName(op), " of ", BufferName(buffer), " names no receivers"));
  }
  if (to.size() > options_.max_receivers) {
    return absl::InvalidArgumentError(
        absl::StrCat(OpName(op), " of ", BufferName(buffer), " names ", to.size(),
                     " receivers; the limit is ", options_.max_receivers));
  }
  absl::flat_hash_set<VmId> seen;
  for (const Offer& o : to) {
    if (o.vm == caller) {
      return absl::InvalidArgumentError(
          absl::StrCat(VmName(caller), " cannot offer ", BufferName(buffer), " to itself"));
    }
    if (!seen.insert(o.vm).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(OpName(op), " of ", BufferName(buffer), " names ", VmName(o.vm), " twice"));
    }
    if (policy_.FindVm(o.vm) == nullptr) {
      return absl::NotFoundError(absl::StrCat(VmName(o.vm), " is not a configured VM"));
    }
    if (kind != TxnKind::kDonate) {
      if (o.rights.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("rights offered to ", VmName(o.vm), " hold neither read nor write"));
      }
    }
    if (absl::Status s = policy_.CheckMayReceive(b->heap, o.vm, o.rights); !s.ok()) return s;
    if (kind != TxnKind::kDonate && !b->owner_rights.Includes(o.rights)) {
      return absl::PermissionDeniedError(
          absl::StrCat(VmName(caller), " holds ", b->owner_rights.ToString(), " on ",
                       BufferName(buffer), " and cannot offer ", o.rights.ToString()));
    }
  }

  // Prepare: only the record (offers reserve nothing).
  IdSequence handles = handles_;  // moves on only if the request is recorded
  const Handle handle(handles.Next());
  std::vector<Receiver> receivers;
  receivers.reserve(to.size());
  for (const Offer& o : to) receivers.push_back(Receiver{o.vm, o.rights});
  {
    StateDelta delta;
    Buffer next = *b;
    next.state = t.next;
    next.txn = handle;
    if (op != Op::kShare) next.mapped_at.reset();
    delta.put_buffers.push_back(Stored(next));
    delta.put_txns.push_back(Transaction{handle, kind, b->id, {receivers.begin(), receivers.end()}});
    const char* op_name = op == Op::kShare ? "share" : op == Op::kLend ? "lend" : "donate";
    if (op != Op::kShare) {
      Audit(delta, op_name, AuditAction::kRevoke, caller, caller, *b, handle, b->owner_rights);
    }
    for (const Offer& o : to) {
      Audit(delta, op_name, AuditAction::kOffer, caller, o.vm, *b, handle, o.rights);
    }
    if (absl::Status s = Persist(delta, nullptr, &handles); !s.ok()) {
      return Annotate(s, absl::StrCat(op_name, " of ", BufferName(buffer)));
    }
  }

  // Commit.
  handles_ = handles;
  if (op != Op::kShare) RevokeAccess(caller, b->pages, b->owner_rights);  // lend, donate
  b->mapped_at = op == Op::kShare ? b->mapped_at : std::nullopt;
  b->state = t.next;
  ledger_.OpenTxn(*b, handle, kind, receivers);
  for (const Offer& o : to) {
    Notify(o.vm, Event{EventKind::kOffered, EventReason::kRequest, handle, kind, caller, BufferId(),
                       b->heap, o.rights, b->size_bytes()});
  }
  return handle;
}

// ---- RETRIEVE / RELINQUISH -------------------------------------------------

absl::StatusOr<Broker::ReceiverStep> Broker::CheckReceiverStep(VmId caller, Handle handle, Op op) {
  if (absl::Status s = CheckCaller(caller); !s.ok()) return s;
  Transaction* txn = ledger_.FindTxn(handle);
  Receiver* r = txn != nullptr ? txn->FindReceiver(caller) : nullptr;
  if (r == nullptr) return absl::NotFoundError(NotAddressed(caller, handle));
  Buffer* b = ledger_.FindBuffer(txn->buffer);
  RMEM_CHECK(b != nullptr);
  const BufferOutcome& t = BufferTransition(b->state, op);
  if (!t.allowed) return Reject(t.code, absl::StrCat(Describe(*b), t.reason));
  const ReceiverOutcome& rt = ReceiverTransition(r->state, op);
  if (!rt.allowed) {
    return Reject(rt.code, absl::StrCat(HandleName(handle), ": ", VmName(caller), rt.reason));
  }
  return ReceiverStep{txn, r, b, &t, &rt};
}

absl::StatusOr<Retrieval> Broker::Retrieve(VmId caller, Handle handle) {
  // Check.
  absl::StatusOr<ReceiverStep> step = CheckReceiverStep(caller, handle, Op::kRetrieve);
  if (!step.ok()) return step.status();
  auto [txn, r, b, t, rt] = *step;
  const bool donation = txn->kind == TxnKind::kDonate;
  if (donation) {
    if (absl::Status s = quotas_.CheckCharge(caller, b->heap, b->size_bytes()); !s.ok()) {
      return s;
    }
  }

  // Prepare.
  absl::StatusOr<std::optional<GuestAddr>> mapped = GrantAccess(caller, b->pages, r->rights);
  if (!mapped.ok()) {
    return Annotate(mapped.status(), absl::StrCat("retrieving ", HandleName(handle)));
  }
  {
    StateDelta delta;
    if (donation) {
      Buffer next = *b;
      next.txn.reset();
      next.owner = caller;
      next.owner_rights = r->rights;
      next.mapped_at = *mapped;
      next.state = t->next;
      delta.put_buffers.push_back(Stored(next));
      delta.drop_txns.push_back(handle);
    } else {
      Transaction next = *txn;
      Receiver* nr = next.FindReceiver(caller);
      nr->state = rt->next;
      nr->mapped_at = *mapped;
      delta.put_txns.push_back(std::move(next));
    }
    Audit(delta, "retrieve", AuditAction::kGrant, caller, caller, *b, handle, r->rights);
    if (absl::Status s = Persist(delta); !s.ok()) {
      RevokeAccess(caller, b->pages, r->rights);
      return Annotate(s, absl::StrCat("retrieving ", HandleName(handle)));
    }
  }

  // Commit.
  Retrieval out{txn->kind, b->owner, b->size_bytes(), r->rights, *mapped, std::nullopt};
  const Event to_owner{donation ? EventKind::kDonated : EventKind::kRetrieved,
                       EventReason::kRequest,
                       handle,
                       txn->kind,
                       caller,
                       b->id,
                       b->heap,
                       r->rights,
                       b->size_bytes()};
  const VmId donor = b->owner;
  if (donation) {
    const Rights rights = r->rights;
    ledger_.CloseTxn(*b);
    quotas_.Release(donor, b->heap, b->size_bytes());
    quotas_.Charge(caller, b->heap, b->size_bytes());
    ledger_.SetOwner(b->id, caller);
    b->owner_rights = rights;
    b->mapped_at = *mapped;
    b->state = t->next;
    out.buffer = b->id;
  } else {
    r->state = rt->next;
    r->mapped_at = *mapped;
  }
  Notify(donor, to_owner);
  return out;
}

absl::Status Broker::Relinquish(VmId caller, Handle handle) {
  absl::StatusOr<ReceiverStep> step = CheckReceiverStep(caller, handle, Op::kRelinquish);
  if (!step.ok()) return step.status();
  auto [txn, r, b, t, rt] = *step;
  {
    StateDelta delta;
    Transaction next = *txn;
    Receiver* nr = next.FindReceiver(caller);
    nr->state = rt->next;
    nr->mapped_at.reset();
    delta.put_txns.push_back(std::move(next));
    Audit(delta, "relinquish", AuditAction::kRevoke, caller, caller, *b, handle, r->rights);
    if (absl::Status s = Persist(delta); !s.ok()) {
      return Annotate(s, absl::StrCat("relinquishing ", HandleName(handle)));
    }
  }

  RevokeAccess(caller, b->pages, r->rights);
  r->state = rt->next;
  r->mapped_at.reset();
  Notify(b->owner, Event{EventKind::kRelinquished, EventReason::kRequest, handle, txn->kind, caller,
                         b->id, b->heap, r->rights, b->size_bytes()});
  return absl::OkStatus();
}

// ---- RECLAIM / FREE --------------------------------------------------------

absl::Status Broker::Reclaim(VmId caller, BufferId buffer, ReclaimMode mode) {
  // Check.
  if (absl::Status s = CheckCaller(caller); !s.ok()) return s;
  Buffer* b = ledger_.FindOwned(caller, buffer);
  if (b == nullptr) return absl::NotFoundError(NotYours(caller, buffer));
  const Op op = mode == ReclaimMode::kRevoke ? Op::kReclaimRevoke : Op::kReclaim;
  const BufferOutcome& t = BufferTransition(b->state, op);
  if (!t.allowed) return Reject(t.code, absl::StrCat(Describe(*b), t.reason));
  if (op == Op::kReclaimRevoke && !policy_.heap(b->heap).owner_may_revoke) {
    return absl::PermissionDeniedError(
        absl::StrCat("heap '", policy_.heap(b->heap).name, "' does not let owners revoke; ",
                     BufferName(buffer), " must be relinquished first"));
  }
  Transaction* txn = ledger_.FindTxn(*b->txn);
  RMEM_CHECK(txn != nullptr);
  for (const Receiver& r : txn->receivers) {
    const ReceiverOutcome& rt = ReceiverTransition(r.state, op);
    if (!rt.allowed) {
      return Reject(rt.code, absl::StrCat(BufferName(buffer), ": ", VmName(r.vm), rt.reason));
    }
  }

  // Prepare: the owner's access comes back first, so that a failure leaves
  // the receivers untouched.
  std::optional<GuestAddr> mapped = b->mapped_at;
  if (!b->owner_has_access()) {
    absl::StatusOr<std::optional<GuestAddr>> m = GrantAccess(caller, b->pages, b->owner_rights);
    if (!m.ok()) return Annotate(m.status(), absl::StrCat("reclaiming ", BufferName(buffer)));
    mapped = *m;
  }
  {
    StateDelta delta;
    Buffer next = *b;
    next.txn.reset();
    next.state = t.next;
    next.mapped_at = mapped;
    delta.put_buffers.push_back(Stored(next));
    delta.drop_txns.push_back(txn->handle);
    const char* op_name = mode == ReclaimMode::kRevoke ? "reclaim-revoke" : "reclaim";
    for (const Receiver& r : txn->receivers) {
      if (r.state == ReceiverState::kRetrieved) {
        Audit(delta, op_name, AuditAction::kRevoke, caller, r.vm, *b, txn->handle, r.rights);
      }
    }
    if (!b->owner_has_access()) {
      Audit(delta, op_name, AuditAction::kGrant, caller, caller, *b, txn->handle, b->owner_rights);
    }
    if (absl::Status s = Persist(delta); !s.ok()) {
      if (!b->owner_has_access()) RevokeAccess(caller, b->pages, b->owner_rights);
      return Annotate(s, absl::StrCat("reclaiming ", BufferName(buffer)));
    }
  }

  // Commit.
  const Handle handle = txn->handle;
  const TxnKind kind = txn->kind;
  std::vector<Receiver> receivers(txn->receivers.begin(), txn->receivers.end());
  for (const Receiver& r : receivers) {
    if (r.state == ReceiverState::kRetrieved) RevokeAccess(r.vm, b->pages, r.rights);
  }
  ledger_.CloseTxn(*b);
  b->state = t.next;
  b->mapped_at = mapped;
  for (const Receiver& r : receivers) {
    Notify(r.vm, Event{EventKind::kRevoked, EventReason::kRequest, handle, kind, caller, BufferId(),
                       b->heap, r.rights, b->size_bytes()});
  }
  return absl::OkStatus();
}

std::optional<GuestAddr> Broker::OwnerMappedAt(VmId caller, BufferId buffer) {
  const Buffer* b = ledger_.FindOwned(caller, buffer);
  if (b == nullptr || !b->owner_has_access()) return std::nullopt;
  return b->mapped_at;
}

absl::Status Broker::Free(VmId caller, BufferId buffer) {
  if (absl::Status s = CheckCaller(caller); !s.ok()) return s;
  Buffer* b = ledger_.FindOwned(caller, buffer);
  if (b == nullptr) return absl::NotFoundError(NotYours(caller, buffer));
  const BufferOutcome& t = BufferTransition(b->state, Op::kFree);
  if (!t.allowed) return Reject(t.code, absl::StrCat(Describe(*b), t.reason));
  StateDelta delta;
  delta.drop_buffers.push_back(b->id);
  if (b->owner_has_access()) {
    Audit(delta, "free", AuditAction::kRevoke, caller, caller, *b, Handle(), b->owner_rights);
  }
  if (absl::Status s = Persist(delta); !s.ok()) {
    return Annotate(s, absl::StrCat("freeing ", BufferName(buffer)));
  }
  Destroy(*b);
  return absl::OkStatus();
}

// ---- VM teardown -----------------------------------------------------------

absl::Status Broker::TeardownVm(VmId vm) {
  if (policy_.FindVm(vm) == nullptr) return absl::OkStatus();
  // Recorded first, so that a restart never gives the VM back what it lost
  // here. It cannot be refused: the VM is gone either way.
  StateDelta delta;
  for (Handle h : ledger_.OfferedTo(vm)) {
    const Transaction* txn = ledger_.FindTxn(h);
    Transaction next = *txn;
    const Receiver* r = txn->FindReceiver(vm);
    if (r->state == ReceiverState::kRetrieved) {
      Audit(delta, "teardown", AuditAction::kRevoke, vm, vm, *ledger_.FindBuffer(txn->buffer), h,
            r->rights);
    }
    next.receivers.erase(next.receivers.begin() + (r - txn->receivers.data()));
    delta.put_txns.push_back(std::move(next));
  }
  for (BufferId id : ledger_.OwnedBy(vm)) {
    const Buffer* b = ledger_.FindBuffer(id);
    delta.drop_buffers.push_back(id);
    if (b->txn) {
      for (const Receiver& r : ledger_.FindTxn(*b->txn)->receivers) {
        if (r.state == ReceiverState::kRetrieved) {
          Audit(delta, "teardown", AuditAction::kRevoke, vm, r.vm, *b, *b->txn, r.rights);
        }
      }
    }
    if (b->owner_has_access()) {
      Audit(delta, "teardown", AuditAction::kRevoke, vm, vm, *b, Handle(), b->owner_rights);
    }
  }
  absl::Status recorded = Persist(delta);
  if (!recorded.ok()) state_behind_ = true;
  // What it received: unmap, drop the receiver, tell the owner.
  for (Handle h : ledger_.OfferedTo(vm)) {
    Transaction* txn = ledger_.FindTxn(h);
    RMEM_CHECK(txn != nullptr);
    Receiver* r = txn->FindReceiver(vm);
    RMEM_CHECK(r != nullptr);
    Buffer* b = ledger_.FindBuffer(txn->buffer);
    RMEM_CHECK(b != nullptr);
    if (r->state == ReceiverState::kRetrieved) RevokeAccess(vm, b->pages, r->rights);
    const Event e{EventKind::kRelinquished,
                  EventReason::kPeerGone,
                  h,
                  txn->kind,
                  vm,
                  b->id,
                  b->heap,
                  r->rights,
                  b->size_bytes()};
    ledger_.RemoveReceiver(*txn, vm);
    Notify(b->owner, e);
  }
  // What it owned: revoke from every receiver, tell them, scrub, free.
  for (BufferId id : ledger_.OwnedBy(vm)) {
    Buffer* b = ledger_.FindBuffer(id);
    RMEM_CHECK(b != nullptr);
    if (b->txn) {
      Transaction* txn = ledger_.FindTxn(*b->txn);
      RMEM_CHECK(txn != nullptr);
      std::vector<Receiver> receivers(txn->receivers.begin(), txn->receivers.end());
      const Handle h = txn->handle;
      const TxnKind kind = txn->kind;
      for (const Receiver& r : receivers) {
        if (r.state == ReceiverState::kRetrieved) RevokeAccess(r.vm, b->pages, r.rights);
      }
      // The state stays as it was: Destroy() reads it to know whether the
      // owner still has access (shared) or not (lent, donating).
      ledger_.CloseTxn(*b);
      for (const Receiver& r : receivers) {
        Notify(r.vm, Event{EventKind::kRevoked, EventReason::kPeerGone, h, kind, vm, BufferId(),
                           b->heap, r.rights, b->size_bytes()});
      }
    }
    Destroy(*b);
  }
  events_.at(vm).Clear();
  if (!recorded.ok()) {
    return Annotate(recorded, absl::StrCat("recording the teardown of ", VmName(vm)));
  }
  return absl::OkStatus();
}

std::vector<VmId> Broker::VmsWithState() const {
  absl::btree_set<VmId> vms;
  for (const auto& [id, b] : ledger_.buffers()) vms.insert(b.owner);
  for (const auto& [h, t] : ledger_.txns()) {
    for (const Receiver& r : t.receivers) vms.insert(r.vm);
  }
  return {vms.begin(), vms.end()};
}

// ---- Restart -----------------------------------------------------------------

absl::Status Broker::RestoreLedger(const StoredState& state) {
  auto refuse = [](const std::string& what) {
    return absl::FailedPreconditionError(
        absl::StrCat("the recorded state does not fit this configuration: ", what,
                     " (restore the configuration it was recorded with, or start with "
                     "--reset-state)"));
  };
  buffer_ids_ = IdSequence(state.buffer_ids.key, state.buffer_ids.next_counter);
  handles_ = IdSequence(state.handle_ids.key, state.handle_ids.next_counter);
  persisted_buffer_counter_ = state.buffer_ids.next_counter;
  persisted_handle_counter_ = state.handle_ids.next_counter;

  absl::flat_hash_map<BufferId, Handle> recorded_txn;  // as each buffer names it
  for (const StoredBuffer& sb : state.buffers) {
    Buffer b = sb.buffer;
    const std::string name = BufferName(b.id);
    if (b.id.value() == 0 || ledger_.FindBuffer(b.id) != nullptr) {
      return refuse(absl::StrCat(name, " is recorded twice or has id 0"));
    }
    if (policy_.FindVm(b.owner) == nullptr) {
      return refuse(absl::StrCat(name, " is owned by ", VmName(b.owner),
                                 ", which is not a configured VM"));
    }
    const std::optional<HeapId> heap = policy_.FindHeap(sb.heap);
    if (!heap) return refuse(absl::StrCat(name, " is from heap '", sb.heap, "', which is gone"));
    std::optional<uint32_t> carveout;
    for (size_t c : policy_.heap_carveouts(*heap)) {
      if (carveouts_[c].name == sb.carveout) carveout = static_cast<uint32_t>(c);
    }
    if (!carveout) {
      return refuse(absl::StrCat(name, " is in carve-out '", sb.carveout,
                                 "', which heap '", sb.heap, "' no longer has"));
    }
    if (!pools_[*carveout].AllocateAt(b.pages)) {
      return refuse(absl::StrCat(name, " at ", b.pages.ToString(),
                                 " lies outside carve-out '", sb.carveout,
                                 "' or overlaps another buffer"));
    }
    const HeapAccess* access = policy_.FindAccess(*heap, b.owner);
    if (access == nullptr || !access->max_rights.Includes(b.owner_rights)) {
      return refuse(absl::StrCat(name, ": ", VmName(b.owner), " holds ",
                                 b.owner_rights.ToString(), ", beyond what heap '", sb.heap,
                                 "' allows it"));
    }
    const bool has_txn = b.state != BufferState::kOwned;
    if (b.txn.has_value() != has_txn ||
        (b.mapped_at.has_value() != (b.owner_has_access() &&
                                     b.owner_rights.cpu_access() != Access::kNone))) {
      return refuse(absl::StrCat(name, " is recorded in an impossible state (",
                                 BufferStateName(b.state), ")"));
    }
    b.heap = *heap;
    b.carveout = *carveout;
    if (b.txn) recorded_txn.emplace(b.id, *b.txn);
    b.txn.reset();  // set again by its transaction below
    quotas_.ChargeRestored(b.owner, b.heap, b.size_bytes());
    ledger_.AddBuffer(b);
  }

  for (const Transaction& t : state.txns) {
    const std::string name = HandleName(t.handle);
    Buffer* b = ledger_.FindBuffer(t.buffer);
    auto recorded = recorded_txn.find(t.buffer);
    if (b == nullptr || b->txn.has_value() || recorded == recorded_txn.end() ||
        recorded->second != t.handle) {
      return refuse(absl::StrCat(name, " is not the open transaction of ", BufferName(t.buffer)));
    }
    const BufferState want = t.kind == TxnKind::kShare  ? BufferState::kShared
                             : t.kind == TxnKind::kLend ? BufferState::kLent
                                                        : BufferState::kDonating;
    if (b->state != want || t.receivers.size() > options_.max_receivers ||
        (t.kind == TxnKind::kDonate && t.receivers.size() > 1)) {
      return refuse(absl::StrCat(name, " (", TxnKindName(t.kind), ") does not match ",
                                 Describe(*b)));
    }
    absl::flat_hash_set<VmId> seen;
    for (const Receiver& r : t.receivers) {
      const bool retrieved = r.state == ReceiverState::kRetrieved;
      if (policy_.FindVm(r.vm) == nullptr || r.vm == b->owner || !seen.insert(r.vm).second ||
          r.state == ReceiverState::kRemoved || (t.kind == TxnKind::kDonate && retrieved) ||
          r.mapped_at.has_value() != (retrieved && r.rights.cpu_access() != Access::kNone)) {
        return refuse(absl::StrCat(name, " names ", VmName(r.vm), " in an impossible way"));
      }
      if (absl::Status s = policy_.CheckMayReceive(b->heap, r.vm, r.rights); !s.ok()) {
        return refuse(absl::StrCat(name, ": ", s.message()));
      }
    }
    ledger_.OpenTxn(*b, t.handle, t.kind, t.receivers);
  }
  for (const auto& [id, b] : ledger_.buffers()) {
    if (b.state != BufferState::kOwned && !b.txn) {
      return refuse(absl::StrCat(BufferName(id), " has lost its transaction"));
    }
  }
  return absl::OkStatus();
}

absl::Status Broker::RestoreAccess() {
  // Buffers in id order, so that a restart programs the backends the same
  // way every time.
  for (const Buffer* owned : BuffersById()) {
    const Buffer& b = *owned;
    if (b.owner_has_access()) {
      absl::StatusOr<std::optional<GuestAddr>> m =
          GrantAccess(b.owner, b.pages, b.owner_rights, b.mapped_at);
      if (!m.ok()) return Annotate(m.status(), absl::StrCat("restoring ", BufferName(b.id)));
    }
  }
  for (const Transaction* txn : TxnsByHandle()) {
    const Transaction& t = *txn;
    const Buffer& b = *ledger_.FindBuffer(t.buffer);
    for (const Receiver& r : t.receivers) {
      if (r.state != ReceiverState::kRetrieved) continue;
      absl::StatusOr<std::optional<GuestAddr>> m = GrantAccess(r.vm, b.pages, r.rights, r.mapped_at);
      if (!m.ok()) {
        return Annotate(m.status(), absl::StrCat("restoring ", HandleName(t.handle), " for ",
                                                 VmName(r.vm)));
      }
    }
  }
  return absl::OkStatus();
}

// ---- Observation -----------------------------------------------------------

std::vector<Event> Broker::DrainEvents(VmId vm, size_t max) {
  auto it = events_.find(vm);
  if (it == events_.end()) return {};
  return it->second.Drain(max);
}

const EventQueue* Broker::events(VmId vm) const {
  auto it = events_.find(vm);
  return it == events_.end() ? nullptr : &it->second;
}

std::vector<PoolStats> Broker::pool_stats() const {
  std::vector<PoolStats> out;
  for (size_t i = 0; i < carveouts_.size(); ++i) {
    out.push_back(PoolStats{carveouts_[i].name, pools_[i].range(), pools_[i].stats()});
  }
  return out;
}

std::string Broker::DebugDump() const {
  std::string out;
  absl::StrAppend(&out, "ids ", buffer_ids_.next_counter(), " ", handles_.next_counter(), "\n");
  for (size_t i = 0; i < pools_.size(); ++i) {
    absl::StrAppend(&out, "pool ", carveouts_[i].name, " ", pools_[i].DebugString(), "\n");
  }
  for (const Buffer* b : BuffersById()) {
    absl::StrAppend(&out, "buffer ", Hex(b->id.value()), " owner ", b->owner.value(), " heap ",
                    b->heap.value(), " ", b->pages.ToString(), " ", b->owner_rights.ToString(), " ",
                    BufferStateName(b->state), " txn ", b->txn ? Hex(b->txn->value()) : "-", " at ",
                    b->mapped_at ? b->mapped_at->ToString() : "-", "\n");
  }
  for (const Transaction* t : TxnsByHandle()) {
    absl::StrAppend(&out, "txn ", Hex(t->handle.value()), " ", TxnKindName(t->kind), " ",
                    Hex(t->buffer.value()));
    for (const Receiver& r : t->receivers) {
      absl::StrAppend(&out, " [", r.vm.value(), " ", r.rights.ToString(), " ",
                      ReceiverStateName(r.state), " ", r.mapped_at ? r.mapped_at->ToString() : "-",
                      "]");
    }
    absl::StrAppend(&out, "\n");
  }
  for (const VmConfig& vm : policy_.config().vms) {
    absl::StrAppend(&out, "vm ", vm.id.value(), " bytes ", quotas_.vm_bytes(vm.id));
    for (size_t h = 0; h < policy_.heap_count(); ++h) {
      absl::StrAppend(&out, " ", quotas_.vm_heap_bytes(vm.id, HeapId(static_cast<uint32_t>(h))));
    }
    const EventQueue& q = events_.at(vm.id);
    absl::StrAppend(&out, " events ", q.size(), " dropped ", q.dropped());
    for (const Event& e : q.events()) {
      absl::StrAppend(&out, " (", EventKindName(e.kind), " ", Hex(e.handle.value()), " ",
                      e.peer.value(), ")");
    }
    absl::StrAppend(&out, "\n");
  }
  for (size_t h = 0; h < policy_.heap_count(); ++h) {
    absl::StrAppend(&out, "heap ", h, " bytes ",
                    quotas_.heap_bytes(HeapId(static_cast<uint32_t>(h))), "\n");
  }
  return out;
}

}  // namespace rmem

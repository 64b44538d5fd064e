// The reference model; see reference_model.h. Written to be obviously right
// rather than fast: maps, sets and loops over pages.
#include "tests/broker/oracle/reference_model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace rmem::testing {
namespace {

using C = absl::StatusCode;
constexpr uint64_t kPage = 4096;

}  // namespace

ReferenceModel::ReferenceModel(const TestPlatform& platform) : platform_(platform) {}

const VmConfig* ReferenceModel::Vm(VmId vm) const {
  for (const VmConfig& v : platform_.policy.vms) {
    if (v.id == vm) return &v;
  }
  return nullptr;
}

std::optional<size_t> ReferenceModel::Heap(const std::string& name) const {
  for (size_t i = 0; i < platform_.policy.heaps.size(); ++i) {
    if (platform_.policy.heaps[i].name == name) return i;
  }
  return std::nullopt;
}

const HeapAccess* ReferenceModel::HeapRule(size_t heap, VmId vm) const {
  for (const HeapAccess& a : platform_.policy.heaps[heap].access) {
    if (a.vm == vm) return &a;
  }
  return nullptr;
}

std::vector<InitiatorId> ReferenceModel::InitiatorsOf(VmId vm) const {
  std::vector<InitiatorId> out;
  for (const InitiatorConfig& i : platform_.policy.initiators) {
    if (i.owner == vm && vm != kHostVm) out.push_back(i.id);
  }
  return out;
}

Access ReferenceModel::InitiatorMax(InitiatorId ini) const {
  for (const InitiatorConfig& i : platform_.policy.initiators) {
    if (i.id == ini) return i.max_access;
  }
  return Access::kNone;
}

bool ReferenceModel::BelongsTo(Party party, VmId vm) const {
  if (party == Party::Cpu(vm)) return true;
  for (InitiatorId i : InitiatorsOf(vm)) {
    if (party == Party::Device(i)) return true;
  }
  return false;
}

std::vector<Party> ReferenceModel::AllParties() const {
  std::vector<Party> out;
  for (const VmConfig& v : platform_.policy.vms) out.push_back(Party::Cpu(v.id));
  for (const InitiatorConfig& i : platform_.policy.initiators) out.push_back(Party::Device(i.id));
  return out;
}

void ReferenceModel::QuotaCodes(VmId vm, size_t heap, uint64_t bytes, Codes& codes) const {
  auto over = [bytes](uint64_t used, uint64_t limit) {
    return used > limit || bytes > limit - used;
  };
  auto get = [](const auto& m, const auto& k) {
    auto it = m.find(k);
    return it == m.end() ? uint64_t{0} : it->second;
  };
  const HeapAccess* rule = HeapRule(heap, vm);
  if (over(get(vm_bytes_, vm), Vm(vm)->quota_bytes) ||
      over(get(vm_heap_bytes_, std::make_pair(vm, heap)), rule ? rule->quota_bytes : 0) ||
      over(get(heap_bytes_, heap), platform_.policy.heaps[heap].quota_bytes)) {
    codes.insert(C::kResourceExhausted);
  }
}

bool ReferenceModel::FitExists(size_t heap, uint64_t pages, uint64_t align_bytes) const {
  const uint64_t align = align_bytes / kPage;
  for (const std::string& name : platform_.policy.heaps[heap].carveouts) {
    for (const Carveout& c : platform_.carveouts) {
      if (c.name != name || c.max_align < align_bytes) continue;
      const uint64_t first = c.base.value() / kPage, end = first + c.size / kPage;
      for (uint64_t s = (first + align - 1) / align * align; s + pages <= end; s += align) {
        bool free = true;
        for (uint64_t p = s; p < s + pages && free; ++p) free = BufferAt(Pfn(p)) == nullptr;
        if (free) return true;
      }
    }
  }
  return false;
}

const ReferenceModel::MBuffer* ReferenceModel::BufferAt(Pfn pfn) const {
  auto it = by_first_pfn_.upper_bound(pfn.value());
  if (it == by_first_pfn_.begin()) return nullptr;
  --it;
  const MBuffer& b = buffers_.at(it->second);
  return b.pages.Contains(pfn) ? &b : nullptr;
}

Access ReferenceModel::AccessOf(Party party, Pfn pfn) const {
  const MBuffer* b = BufferAt(pfn);
  if (b == nullptr) return Access::kNone;
  auto rights_to_access = [&](VmId vm, Rights r) {
    if (party.kind == Party::Kind::kVmCpu) {
      return party.id == vm.value() && r.cpu_map() ? r.access() : Access::kNone;
    }
    for (InitiatorId i : InitiatorsOf(vm)) {
      // Firmware caps each initiator (rmem,max-access).
      if (party.id == i.value()) return r.access() & InitiatorMax(i);
    }
    return Access::kNone;
  };
  Access a = Access::kNone;
  const bool owner_holds = !b->txn || *b->txn == TxnKind::kShare;
  if (owner_holds) a = a | rights_to_access(b->owner, b->owner_rights);
  for (const auto& [vm, r] : b->receivers) {
    if (r.retrieved) a = a | rights_to_access(vm, r.rights);
  }
  return a;
}

void ReferenceModel::AddLineage(MBuffer& b, VmId vm, Rights rights) {
  if (!rights.write()) return;
  if (rights.cpu_map()) b.lineage.insert(Party::Cpu(vm));
  for (InitiatorId i : InitiatorsOf(vm)) {
    if (Covers(InitiatorMax(i), Access::kWrite)) b.lineage.insert(Party::Device(i));
  }
}

void ReferenceModel::Emit(VmId to, EventKind kind, EventReason reason, Handle h, VmId peer) {
  events_.push_back(ExpectedEvent{to, kind, reason, h, peer});
}

std::vector<ExpectedEvent> ReferenceModel::TakeEvents() {
  std::vector<ExpectedEvent> out;
  out.swap(events_);
  return out;
}

uint64_t ReferenceModel::allocated_pages(size_t carveout) const {
  const Carveout& c = platform_.carveouts[carveout];
  const std::optional<PageRange> range = PageRange::FromBytes(c.base, c.size);
  uint64_t n = 0;
  for (const auto& [id, b] : buffers_) {
    if (range->Contains(b.pages)) n += b.pages.count().value();
  }
  return n;
}

std::vector<BufferId> ReferenceModel::OwnedBy(VmId vm) const {
  std::vector<BufferId> out;
  for (const auto& [id, b] : buffers_) {
    if (b.owner == vm) out.push_back(id);
  }
  return out;
}

std::vector<Handle> ReferenceModel::OfferedTo(VmId vm) const {
  std::vector<Handle> out;
  for (const auto& [h, id] : txns_) {
    if (buffers_.at(id).receivers.contains(vm)) out.push_back(h);
  }
  return out;
}

// ---- ALLOC -----------------------------------------------------------------

Codes ReferenceModel::ExpectAlloc(VmId caller, const std::string& heap_name, uint64_t size,
                                  uint64_t align) const {
  Codes codes;
  if (Vm(caller) == nullptr) codes.insert(C::kNotFound);
  const std::optional<size_t> heap = Heap(heap_name);
  if (!heap) codes.insert(C::kNotFound);
  const HeapAccess* rule = heap ? HeapRule(*heap, caller) : nullptr;
  if (heap && (rule == nullptr || !rule->may_allocate)) codes.insert(C::kPermissionDenied);
  const bool size_ok = size != 0 && size <= UINT64_MAX - (kPage - 1);
  if (!size_ok) codes.insert(C::kInvalidArgument);
  const bool align_pow2 = align == 0 || (align & (align - 1)) == 0;
  if (!align_pow2) codes.insert(C::kInvalidArgument);
  const uint64_t align_bytes = std::max(align, kPage);
  if (heap) {
    uint64_t max_align = 0;
    for (const std::string& name : platform_.policy.heaps[*heap].carveouts) {
      for (const Carveout& c : platform_.carveouts) {
        if (c.name == name) max_align = std::max(max_align, c.max_align);
      }
    }
    if (align_pow2 && align_bytes > max_align) codes.insert(C::kInvalidArgument);
  }
  if (!codes.empty()) return codes;
  const uint64_t pages = (size + kPage - 1) / kPage;
  QuotaCodes(caller, *heap, pages * kPage, codes);
  if (!FitExists(*heap, pages, align_bytes)) codes.insert(C::kResourceExhausted);
  if (codes.empty()) codes.insert(C::kOk);
  return codes;
}

std::string ReferenceModel::ApplyAlloc(VmId caller, const std::string& heap_name, uint64_t size,
                                       uint64_t align, const Allocation& a) {
  const size_t heap = *Heap(heap_name);
  const uint64_t pages = (size + kPage - 1) / kPage;
  const uint64_t align_pages = std::max(align, kPage) / kPage;
  if (a.id.value() == 0 || !seen_ids_.insert(a.id.value()).second) {
    return absl::StrCat("ALLOC returned a zero or reused buffer id ", Hex(a.id.value()));
  }
  if (a.pages.count().value() != pages || a.pages.first().value() % align_pages != 0) {
    return absl::StrCat("ALLOC of ", pages, " pages at alignment ", align_pages, " returned ",
                        a.pages.ToString());
  }
  bool inside = false;
  for (const std::string& name : platform_.policy.heaps[heap].carveouts) {
    for (const Carveout& c : platform_.carveouts) {
      if (c.name == name && c.max_align >= align_pages * kPage &&
          PageRange::FromBytes(c.base, c.size)->Contains(a.pages)) {
        inside = true;
      }
    }
  }
  if (!inside) return "ALLOC returned pages outside the heap's eligible carve-outs";
  for (uint64_t p = a.pages.first().value(); p < a.pages.end().value(); ++p) {
    if (BufferAt(Pfn(p)) != nullptr) return "ALLOC returned pages of a live buffer";
  }
  const Rights rights = HeapRule(heap, caller)->max_rights;
  if (!(a.rights == rights)) return "ALLOC gave the owner rights other than its heap ceiling";
  all_ids_.push_back(a.id);
  MBuffer b{a.id, caller, heap, a.pages, rights, std::nullopt, Handle(), {}, {}};
  AddLineage(b, caller, rights);
  by_first_pfn_[a.pages.first().value()] = a.id;
  buffers_.emplace(a.id, std::move(b));
  vm_bytes_[caller] += pages * kPage;
  vm_heap_bytes_[{caller, heap}] += pages * kPage;
  heap_bytes_[heap] += pages * kPage;
  return "";
}

// ---- SHARE / LEND / DONATE -------------------------------------------------

Codes ReferenceModel::ExpectOffer(VmId caller, BufferId id, TxnKind kind,
                                  const std::vector<Offer>& to) const {
  Codes codes;
  if (Vm(caller) == nullptr) codes.insert(C::kNotFound);
  auto it = buffers_.find(id);
  if (it == buffers_.end() || it->second.owner != caller) {
    codes.insert(C::kNotFound);
    return codes;  // nothing else can be judged without the buffer
  }
  const MBuffer& b = it->second;
  if (b.txn) codes.insert(C::kFailedPrecondition);
  if (to.empty() || to.size() > platform_.max_receivers) codes.insert(C::kInvalidArgument);
  std::set<VmId> seen;
  for (const Offer& o : to) {
    if (o.vm == caller || !seen.insert(o.vm).second) codes.insert(C::kInvalidArgument);
    if (Vm(o.vm) == nullptr) {
      codes.insert(C::kNotFound);
      continue;
    }
    const HeapAccess* rule = HeapRule(b.heap, o.vm);
    if (kind == TxnKind::kDonate) {
      if (rule == nullptr) codes.insert(C::kPermissionDenied);
      continue;
    }
    if (o.rights.empty()) codes.insert(C::kInvalidArgument);
    if (!b.owner_rights.Includes(o.rights)) codes.insert(C::kPermissionDenied);
    if (rule == nullptr || !rule->max_rights.Includes(o.rights)) codes.insert(C::kPermissionDenied);
    if (o.rights.cpu_map() && !platform_.policy.heaps[b.heap].cpu_map_allowed) {
      codes.insert(C::kPermissionDenied);
    }
  }
  if (codes.empty()) codes.insert(C::kOk);
  return codes;
}

std::string ReferenceModel::ApplyOffer(VmId caller, BufferId id, TxnKind kind,
                                       const std::vector<Offer>& to, Handle h) {
  if (h.value() == 0 || !seen_handles_.insert(h.value()).second) {
    return absl::StrCat("a zero or reused handle ", Hex(h.value()));
  }
  all_handles_.push_back(h);
  MBuffer& b = buffers_.at(id);
  b.txn = kind;
  b.handle = h;
  for (const Offer& o : to) {
    const Rights rights = kind == TxnKind::kDonate ? HeapRule(b.heap, o.vm)->max_rights : o.rights;
    b.receivers[o.vm] = MReceiver{rights, false};
    // Named with write: authorised to write this buffer's content (even a
    // retrieval that fails half-way may have let it write for a moment).
    AddLineage(b, o.vm, rights);
    Emit(o.vm, EventKind::kOffered, EventReason::kRequest, h, caller);
  }
  txns_[h] = id;
  return "";
}

// ---- RETRIEVE / RELINQUISH -------------------------------------------------

const ReferenceModel::MBuffer* ReferenceModel::OfferedTo(VmId vm, Handle h) const {
  auto t = txns_.find(h);
  if (t == txns_.end()) return nullptr;
  const MBuffer& b = buffers_.at(t->second);
  return b.receivers.contains(vm) ? &b : nullptr;
}

Codes ReferenceModel::ExpectRetrieve(VmId caller, Handle h) const {
  Codes codes;
  if (Vm(caller) == nullptr) codes.insert(C::kNotFound);
  const MBuffer* offered = OfferedTo(caller, h);
  if (offered == nullptr) {
    codes.insert(C::kNotFound);
    return codes;
  }
  const MBuffer& b = *offered;
  if (b.receivers.at(caller).retrieved) codes.insert(C::kFailedPrecondition);
  if (*b.txn == TxnKind::kDonate) QuotaCodes(caller, b.heap, b.pages.size_bytes(), codes);
  if (codes.empty()) codes.insert(C::kOk);
  return codes;
}

std::string ReferenceModel::ApplyRetrieve(VmId caller, Handle h, const Retrieval& r) {
  MBuffer& b = buffers_.at(txns_.at(h));
  MReceiver& rec = b.receivers.at(caller);
  if (!(r.rights == rec.rights) || r.size_bytes != b.pages.size_bytes() || r.owner != b.owner) {
    return "RETRIEVE reported rights, size or sender other than offered";
  }
  if (*b.txn == TxnKind::kDonate) {
    if (r.buffer != b.id) return "RETRIEVE of a donation did not return the buffer id";
    const VmId donor = b.owner;
    const uint64_t bytes = b.pages.size_bytes();
    vm_bytes_[donor] -= bytes;
    vm_heap_bytes_[{donor, b.heap}] -= bytes;
    vm_bytes_[caller] += bytes;
    vm_heap_bytes_[{caller, b.heap}] += bytes;
    b.owner = caller;
    b.owner_rights = rec.rights;
    b.txn.reset();
    b.receivers.clear();
    txns_.erase(h);
    AddLineage(b, caller, b.owner_rights);
    Emit(donor, EventKind::kDonated, EventReason::kRequest, h, caller);
    return "";
  }
  if (r.buffer.has_value()) return "RETRIEVE of a share or lend revealed the buffer id";
  rec.retrieved = true;
  AddLineage(b, caller, rec.rights);
  Emit(b.owner, EventKind::kRetrieved, EventReason::kRequest, h, caller);
  return "";
}

Codes ReferenceModel::ExpectRelinquish(VmId caller, Handle h) const {
  Codes codes;
  if (Vm(caller) == nullptr) codes.insert(C::kNotFound);
  const MBuffer* offered = OfferedTo(caller, h);
  if (offered == nullptr) {
    codes.insert(C::kNotFound);
    return codes;
  }
  const MBuffer& b = *offered;
  if (*b.txn == TxnKind::kDonate || !b.receivers.at(caller).retrieved) {
    codes.insert(C::kFailedPrecondition);
  }
  if (codes.empty()) codes.insert(C::kOk);
  return codes;
}

void ReferenceModel::ApplyRelinquish(VmId caller, Handle h) {
  MBuffer& b = buffers_.at(txns_.at(h));
  b.receivers.at(caller).retrieved = false;
  Emit(b.owner, EventKind::kRelinquished, EventReason::kRequest, h, caller);
}

// ---- RECLAIM / FREE / TEARDOWN ---------------------------------------------

Codes ReferenceModel::ExpectReclaim(VmId caller, BufferId id, ReclaimMode mode) const {
  Codes codes;
  if (Vm(caller) == nullptr) codes.insert(C::kNotFound);
  auto it = buffers_.find(id);
  if (it == buffers_.end() || it->second.owner != caller) {
    codes.insert(C::kNotFound);
    return codes;
  }
  const MBuffer& b = it->second;
  if (!b.txn) codes.insert(C::kFailedPrecondition);
  if (mode == ReclaimMode::kRevoke && !platform_.policy.heaps[b.heap].owner_may_revoke) {
    codes.insert(C::kPermissionDenied);
  }
  if (mode == ReclaimMode::kWaitForBorrowers) {
    for (const auto& [vm, r] : b.receivers) {
      if (r.retrieved) codes.insert(C::kFailedPrecondition);
    }
  }
  if (codes.empty()) codes.insert(C::kOk);
  return codes;
}

void ReferenceModel::CloseTxn(MBuffer& b, EventReason reason) {
  for (const auto& [vm, r] : b.receivers) {
    Emit(vm, EventKind::kRevoked, reason, b.handle, b.owner);
  }
  txns_.erase(b.handle);
  b.receivers.clear();
  b.txn.reset();
}

void ReferenceModel::ApplyReclaim(VmId, BufferId id) {
  MBuffer& b = buffers_.at(id);
  CloseTxn(b, EventReason::kRequest);
  AddLineage(b, b.owner, b.owner_rights);
}

Codes ReferenceModel::ExpectFree(VmId caller, BufferId id) const {
  Codes codes;
  if (Vm(caller) == nullptr) codes.insert(C::kNotFound);
  auto it = buffers_.find(id);
  if (it == buffers_.end() || it->second.owner != caller) {
    codes.insert(C::kNotFound);
    return codes;
  }
  if (it->second.txn) codes.insert(C::kFailedPrecondition);
  if (codes.empty()) codes.insert(C::kOk);
  return codes;
}

void ReferenceModel::ApplyFree(VmId, BufferId id) {
  MBuffer& b = buffers_.at(id);
  const uint64_t bytes = b.pages.size_bytes();
  vm_bytes_[b.owner] -= bytes;
  vm_heap_bytes_[{b.owner, b.heap}] -= bytes;
  heap_bytes_[b.heap] -= bytes;
  by_first_pfn_.erase(b.pages.first().value());
  buffers_.erase(id);
}

void ReferenceModel::ApplyTeardown(VmId vm) {
  if (Vm(vm) == nullptr) return;
  for (auto& [id, b] : buffers_) {
    auto r = b.receivers.find(vm);
    if (r == b.receivers.end()) continue;
    Emit(b.owner, EventKind::kRelinquished, EventReason::kPeerGone, b.handle, vm);
    b.receivers.erase(r);
  }
  for (BufferId id : OwnedBy(vm)) {
    MBuffer& b = buffers_.at(id);
    if (b.txn) CloseTxn(b, EventReason::kPeerGone);
    ApplyFree(vm, id);
  }
  // A dead VM's queue is discarded.
  std::erase_if(events_, [vm](const ExpectedEvent& e) { return e.to == vm; });
}

}  // namespace rmem::testing

// Ledger bookkeeping; see ledger.h.
#include "broker/ownership/ledger.h"

#include "broker/check.h"

namespace rmem {

Receiver* Transaction::FindReceiver(VmId vm) {
  for (Receiver& r : receivers) {
    if (r.vm == vm) return &r;
  }
  return nullptr;
}
const Receiver* Transaction::FindReceiver(VmId vm) const {
  return const_cast<Transaction*>(this)->FindReceiver(vm);
}

Buffer* Ledger::FindBuffer(BufferId id) {
  auto it = buffers_.find(id);
  return it == buffers_.end() ? nullptr : &it->second;
}
const Buffer* Ledger::FindBuffer(BufferId id) const {
  return const_cast<Ledger*>(this)->FindBuffer(id);
}
Buffer* Ledger::FindOwned(VmId vm, BufferId id) {
  Buffer* b = FindBuffer(id);
  return b != nullptr && b->owner == vm ? b : nullptr;
}
Transaction* Ledger::FindTxn(Handle h) {
  auto it = txns_.find(h);
  return it == txns_.end() ? nullptr : &it->second;
}
const Transaction* Ledger::FindTxn(Handle h) const { return const_cast<Ledger*>(this)->FindTxn(h); }

void Ledger::AddBuffer(const Buffer& b) {
  RMEM_CHECK(!b.txn.has_value());
  RMEM_CHECK(buffers_.emplace(b.id, b).second);
  owned_[b.owner].insert(b.id);
}

void Ledger::RemoveBuffer(BufferId id) {
  auto it = buffers_.find(id);
  RMEM_CHECK(it != buffers_.end());
  RMEM_CHECK(!it->second.txn.has_value());
  auto owned = owned_.find(it->second.owner);
  RMEM_CHECK(owned != owned_.end() && owned->second.erase(id) == 1);
  if (owned->second.empty()) owned_.erase(owned);
  buffers_.erase(it);
}

void Ledger::SetOwner(BufferId id, VmId new_owner) {
  Buffer* b = FindBuffer(id);
  RMEM_CHECK(b != nullptr);
  auto owned = owned_.find(b->owner);
  RMEM_CHECK(owned != owned_.end() && owned->second.erase(id) == 1);
  if (owned->second.empty()) owned_.erase(owned);
  b->owner = new_owner;
  owned_[new_owner].insert(id);
}

Transaction& Ledger::OpenTxn(Buffer& b, Handle h, TxnKind kind,
                             absl::Span<const Receiver> receivers) {
  RMEM_CHECK(!b.txn.has_value());
  Transaction t{h, kind, b.id, {receivers.begin(), receivers.end()}};
  for (const Receiver& r : receivers) offered_[r.vm].insert(h);
  b.txn = h;
  auto [it, inserted] = txns_.emplace(h, std::move(t));
  RMEM_CHECK(inserted);
  return it->second;
}

void Ledger::CloseTxn(Buffer& b) {
  RMEM_CHECK(b.txn.has_value());
  auto it = txns_.find(*b.txn);
  RMEM_CHECK(it != txns_.end());
  for (const Receiver& r : it->second.receivers) {
    auto offered = offered_.find(r.vm);
    RMEM_CHECK(offered != offered_.end() && offered->second.erase(it->first) == 1);
    if (offered->second.empty()) offered_.erase(offered);
  }
  txns_.erase(it);
  b.txn.reset();
}

void Ledger::RemoveReceiver(Transaction& t, VmId vm) {
  auto& rs = t.receivers;
  for (auto it = rs.begin(); it != rs.end(); ++it) {
    if (it->vm != vm) continue;
    rs.erase(it);
    auto offered = offered_.find(vm);
    RMEM_CHECK(offered != offered_.end() && offered->second.erase(t.handle) == 1);
    if (offered->second.empty()) offered_.erase(offered);
    return;
  }
  RMEM_CHECK(false);
}

std::vector<BufferId> Ledger::OwnedBy(VmId vm) const {
  auto it = owned_.find(vm);
  if (it == owned_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

std::vector<Handle> Ledger::OfferedTo(VmId vm) const {
  auto it = offered_.find(vm);
  if (it == offered_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

}  // namespace rmem

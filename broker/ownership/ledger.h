// The ledger: every live buffer, every open transaction, and the per-VM
// indexes that make VM teardown proportional to what the VM holds. It is
// plain bookkeeping: it does not decide (see checks in broker.cc and the
// tables in states.h) and drives no backend.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"
#include "broker/ownership/states.h"
#include "broker/policy/policy.h"
#include "broker/rights.h"
#include "broker/types.h"

namespace rmem {

struct Receiver {
  VmId vm;
  Rights rights;
  ReceiverState state = ReceiverState::kOffered;
  std::optional<GuestAddr> mapped_at;  // while retrieved with cpu-map
};

struct Transaction {
  Handle handle;
  TxnKind kind = TxnKind::kShare;
  BufferId buffer;
  absl::InlinedVector<Receiver, 2> receivers;

  Receiver* FindReceiver(VmId vm);
  const Receiver* FindReceiver(VmId vm) const;
};

struct Buffer {
  BufferId id;
  VmId owner;
  HeapId heap;
  uint32_t carveout = 0;  // index into the broker's carve-out list
  PageRange pages;
  Rights owner_rights;
  BufferState state = BufferState::kOwned;
  std::optional<Handle> txn;           // the open transaction, if any
  std::optional<GuestAddr> mapped_at;  // owner's mapping, while it has access

  uint64_t size_bytes() const { return pages.size_bytes(); }
  // Whether the owner can currently reach the pages.
  bool owner_has_access() const {
    return state == BufferState::kOwned || state == BufferState::kShared;
  }
};

class Ledger {
 public:
  Buffer* FindBuffer(BufferId id);
  const Buffer* FindBuffer(BufferId id) const;
  // The buffer if `vm` owns it.
  Buffer* FindOwned(VmId vm, BufferId id);
  Transaction* FindTxn(Handle h);
  const Transaction* FindTxn(Handle h) const;

  void AddBuffer(const Buffer& b);
  void RemoveBuffer(BufferId id);  // CHECKs it has no transaction
  void SetOwner(BufferId id, VmId new_owner);

  Transaction& OpenTxn(Buffer& b, Handle h, TxnKind kind, absl::Span<const Receiver> receivers);
  void CloseTxn(Buffer& b);  // removes the transaction and its receiver index
  void RemoveReceiver(Transaction& t, VmId vm);

  // Copies, so callers may mutate the ledger while walking them.
  std::vector<BufferId> OwnedBy(VmId vm) const;
  std::vector<Handle> OfferedTo(VmId vm) const;

  size_t buffer_count() const { return buffers_.size(); }
  size_t txn_count() const { return txns_.size(); }
  const absl::flat_hash_map<BufferId, Buffer>& buffers() const { return buffers_; }
  const absl::flat_hash_map<Handle, Transaction>& txns() const { return txns_; }

 private:
  absl::flat_hash_map<BufferId, Buffer> buffers_;
  absl::flat_hash_map<Handle, Transaction> txns_;
  absl::flat_hash_map<VmId, absl::flat_hash_set<BufferId>> owned_;
  absl::flat_hash_map<VmId, absl::flat_hash_set<Handle>> offered_;
};

}  // namespace rmem

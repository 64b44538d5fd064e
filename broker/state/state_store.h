// StateStore: where the broker records its state so that a restarted rmemd
// continues exactly where the last one stopped (who owns which pages, every
// open offer and grant, the id sequences), plus an audit log of every grant,
// revoke and offer.
//
// The broker hands the store one StateDelta per request, as the last step
// that may fail, before anything of the request is visible: a request the
// store refused changed nothing (the guest gets the store's status), and a
// request the guest saw succeed is in the store. What is derived is not
// stored: pools (free = carve-out minus buffers), quotas (the owners'
// buffers), firewall and stage-2 state (the grants of the buffers and
// receivers, reprogrammed at restore).
//
// Implementations: SqliteStateStore (sqlite_state_store.h, production) and
// FakeStateStore (fake_state_store.h: keeps the state in memory, fails on
// demand). A broker without a store keeps its state in memory only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/ids.h"
#include "broker/ownership/ledger.h"
#include "broker/types.h"

namespace rmem {

// A buffer as stored: heap and carve-out by name, so that a configuration
// that lists them in another order restores the same buffers. buffer.heap
// and buffer.carveout are not stored (the broker resolves the names).
struct StoredBuffer {
  Buffer buffer;
  std::string heap;
  std::string carveout;
  bool operator==(const StoredBuffer& o) const;
};

// Where an id sequence continues (ids.h): the key and the next counter.
struct StoredIds {
  IdKey key;
  uint64_t next_counter = 1;
  bool operator==(const StoredIds& o) const {
    return key.k0 == o.key.k0 && key.k1 == o.key.k1 && next_counter == o.next_counter;
  }
};

// What an audit entry records: `vm` gained or lost `rights` on `pages`
// (grant, revoke), or was offered them (offer), by `op` of `actor`.
enum class AuditAction : uint8_t { kGrant, kRevoke, kOffer };
const char* AuditActionName(AuditAction a);  // "grant", "revoke", "offer"

struct AuditEntry {
  uint64_t seq = 0;      // set by the store: increasing, never reused
  int64_t time_ns = 0;   // set by the store: CLOCK_REALTIME at commit
  std::string op;        // "alloc", "share", "retrieve", "teardown", ...
  AuditAction action = AuditAction::kGrant;
  VmId actor;            // the VM whose request (or teardown) it was
  VmId vm;               // the VM whose access changed
  BufferId buffer;       // 0 where the VM may not know the buffer id
  Handle handle;         // 0 when no transaction was involved
  PageRange pages;
  Rights rights;
};

// One request's changes. Puts replace the whole row (a transaction with its
// receivers); drops of a buffer drop its transaction too.
struct StateDelta {
  std::vector<StoredBuffer> put_buffers;
  std::vector<BufferId> drop_buffers;
  std::vector<Transaction> put_txns;
  std::vector<Handle> drop_txns;
  std::optional<StoredIds> buffer_ids;  // when the sequence moved
  std::optional<StoredIds> handle_ids;
  std::vector<AuditEntry> audit;

  bool empty() const {
    return put_buffers.empty() && drop_buffers.empty() && put_txns.empty() &&
           drop_txns.empty() && !buffer_ids && !handle_ids && audit.empty();
  }
};

// Everything a restart needs, in a canonical order (buffers by id, txns by
// handle).
struct StoredState {
  StoredIds buffer_ids;
  StoredIds handle_ids;
  std::vector<StoredBuffer> buffers;
  std::vector<Transaction> txns;
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // The state last committed; nullopt when the store holds none yet (new).
  // DataLoss when what it holds cannot be read back.
  virtual absl::StatusOr<std::optional<StoredState>> Load() = 0;

  // Applies `delta` atomically: all of it or (on error) none of it. When
  // `replace_first` is given, the stored state is first replaced by it, in
  // the same atomic step (the broker resynchronises after a commit that
  // failed where it could not refuse the request: a VM teardown).
  // Errors: Unavailable (the file cannot be written: read-only, disk full,
  // I/O error; the message names the file), Internal.
  virtual absl::Status Commit(const StateDelta& delta,
                              const StoredState* replace_first = nullptr) = 0;

  // Audit entries with seq > after_seq, oldest first, at most `max`.
  virtual absl::StatusOr<std::vector<AuditEntry>> ReadAudit(uint64_t after_seq, size_t max) = 0;
};

}  // namespace rmem

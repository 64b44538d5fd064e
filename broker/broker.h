// The broker's front door: every request from every VM comes through here.
// It owns the carve-out pools, the ledger of buffers and transactions, the
// quotas and the event queues, and drives the stage-2, firewall and scrubber
// backends so that the isolation invariant of DESIGN.md holds after every
// request and at every instant in between.
//
// Each request runs in three steps (STYLE.md rule 6):
//   check   - pure: the state tables (ownership/states.h), policy, quotas
//             and argument validation decide; a rejection changes nothing;
//   prepare - everything that can fail: pages from the pool, firewall
//             grants, stage-2 maps, and last the state store's record of
//             the request (state/state_store.h); on failure a scope guard
//             undoes what was prepared (revoke, scrub, return pages);
//   commit  - cannot fail: ledger updates, revocations, scrubbing, events.
//
// With a state store, a request the guest saw succeed is recorded, and one
// that failed is not: a broker created over the same store later (rmemd
// restarted) continues from the same state. Requests that only take access
// away (RELINQUISH, FREE, a teardown) are recorded before the access goes,
// so a restart never resurrects access a guest gave up; the pages of a
// freed buffer are scrubbed after, and at start every page no recorded
// buffer holds is scrubbed. Events are not recorded: those queued when
// rmemd stops are lost.
//
// Ordering guarantees (no page is reachable by anyone not granted, even for
// an instant): access is revoked before pages are scrubbed, and scrubbed
// before they return to the pool; pages are clean in the pool, so a new
// owner only ever sees zeros. Pages are scrubbed when the broker starts.
//
// Objects a VM cannot see (someone else's buffer, a handle not addressed to
// it, an unknown id) are all reported as NotFound with the same wording, so
// ids give no existence oracle.
//
// Not thread-safe: rmemd serves every guest from one event loop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "broker/backend/firewall.h"
#include "broker/backend/scrubber.h"
#include "broker/backend/stage2.h"
#include "broker/carveout/carveout.h"
#include "broker/carveout/page_allocator.h"
#include "broker/events.h"
#include "broker/ids.h"
#include "broker/ownership/ledger.h"
#include "broker/policy/policy.h"
#include "broker/policy/quota.h"
#include "broker/state/state_store.h"

namespace rmem {

struct BrokerOptions {
  std::optional<IdKey> buffer_id_key;  // random when unset
  std::optional<IdKey> handle_key;     // random when unset
  size_t event_queue_capacity = 4096;  // per VM
  size_t max_receivers = 8;            // per transaction
  PageAllocator::Options allocator;
};

// The backends the broker drives; not owned, must outlive the broker.
struct Backends {
  Stage2* stage2 = nullptr;
  Firewall* firewall = nullptr;
  Scrubber* scrubber = nullptr;
  // Where the state is recorded; nullptr: in memory only.
  StateStore* state = nullptr;
};

// One receiver of a share or lend, with the rights offered to it.
struct Offer {
  VmId vm;
  Rights rights;
};

struct Allocation {
  BufferId id;
  PageRange pages;                     // host physical; never shown to guests
  Rights rights;                       // the owner's rights
  std::optional<GuestAddr> mapped_at;  // where the owner sees it (cpu-map)
};

struct Retrieval {
  TxnKind kind = TxnKind::kShare;
  VmId owner;  // the sender (for a donation, the previous owner)
  uint64_t size_bytes = 0;
  Rights rights;
  std::optional<GuestAddr> mapped_at;
  std::optional<BufferId> buffer;  // donations: the buffer is now the caller's
};

struct PoolStats {
  std::string carveout;
  PageRange pages;
  PageAllocator::Stats stats;
};

enum class ReclaimMode { kWaitForBorrowers, kRevoke };

class Broker {
 public:
  // A broker over `carveouts`. With a state store that holds a state, it
  // continues from that state: buffers, offers and grants as recorded, the
  // id sequences where they stopped, stage-2 mappings at the addresses the
  // guests knew (Stage2::MapAt) and the firewall reprogrammed; every other
  // carve-out page is scrubbed.
  // InvalidArgument for bad carve-outs or policy, or missing backends.
  // FailedPrecondition: the recorded state does not fit the carve-outs or
  // the policy (names what). The store's and the backends' errors pass
  // through (restoring a grant the firewall cannot make any more).
  static absl::StatusOr<std::unique_ptr<Broker>> Create(std::vector<Carveout> carveouts,
                                                        PolicyConfig policy, Backends backends,
                                                        BrokerOptions options = {});

  // A new buffer of `size` bytes (rounded up to pages) from `heap`, aligned
  // to `align` bytes (0 = 4 KiB; smaller values are raised to 4 KiB), owned
  // by and mapped into `caller` with the heap's owner rights.
  // NotFound: unknown caller or heap. PermissionDenied: caller may not
  // allocate there. InvalidArgument: size 0 or overflowing, alignment not a
  // power of two or above the heap's maximum. ResourceExhausted: a quota, or
  // no free run in the heap's carve-outs. Backend errors pass through.
  absl::StatusOr<Allocation> Alloc(VmId caller, absl::string_view heap, uint64_t size,
                                   uint64_t align);

  // Opens a share (owner keeps access) or lend (owner loses access until
  // RECLAIM) of an owned buffer to the named receivers; returns the handle.
  // NotFound: caller does not own the buffer, or a receiver is unknown.
  // FailedPrecondition: the buffer already has an open transaction.
  // InvalidArgument: no receivers, too many, duplicates, the caller itself,
  // or empty rights. PermissionDenied: rights beyond the owner's own, beyond
  // the receiver's ceiling on the heap, or cpu-map on a device-only heap.
  absl::StatusOr<Handle> Share(VmId caller, BufferId buffer, absl::Span<const Offer> to);
  absl::StatusOr<Handle> Lend(VmId caller, BufferId buffer, absl::Span<const Offer> to);
  // Offers ownership to one VM; the donor loses access at once. The
  // receiver takes it by RETRIEVE; the donor can take it back by RECLAIM
  // until then. Codes as for Share.
  absl::StatusOr<Handle> Donate(VmId caller, BufferId buffer, VmId to);

  // Maps an offered buffer into the caller with the offered rights (for a
  // donation, makes the caller the owner).
  // NotFound: the handle is not addressed to the caller (or does not exist).
  // FailedPrecondition: already retrieved. ResourceExhausted: a donation
  // would exceed the caller's quota. Backend errors pass through.
  absl::StatusOr<Retrieval> Retrieve(VmId caller, Handle handle);
  // Unmaps a retrieved buffer from the caller; it may retrieve again until
  // the owner reclaims. NotFound as for Retrieve. FailedPrecondition: not
  // retrieved, or a donation.
  absl::Status Relinquish(VmId caller, Handle handle);
  // Closes the buffer's transaction and restores the owner's access.
  // NotFound: not the caller's buffer. FailedPrecondition: no transaction,
  // or a receiver still holds it (kWaitForBorrowers). PermissionDenied:
  // kRevoke on a heap whose policy does not let owners revoke. Backend
  // errors (restoring the owner's mapping) pass through.
  absl::Status Reclaim(VmId caller, BufferId buffer,
                       ReclaimMode mode = ReclaimMode::kWaitForBorrowers);
  // Where the caller sees its own buffer in its guest (cpu-map), nullopt if
  // it does not now (no cpu-map, lent or donated away) or it is not the
  // caller's buffer.
  std::optional<GuestAddr> OwnerMappedAt(VmId caller, BufferId buffer);
  // Scrubs the buffer and returns it to its pool.
  // NotFound: not the caller's. FailedPrecondition: a transaction is open.
  absl::Status Free(VmId caller, BufferId buffer);

  // The VM is gone: its retrieved buffers are unmapped and its offers
  // dropped (owners get RELINQUISHED), the buffers it owned are revoked
  // from every receiver (they get REVOKED), scrubbed and freed. Idempotent;
  // the VM may come back later with nothing. It always happens; the error
  // says the state store could not record it (then the store is rewritten
  // whole by the next request it accepts; see state_behind()).
  absl::Status TeardownVm(VmId vm);

  // Every VM that owns a buffer or is named in an offer (after a restart:
  // the VMs whose VMMs should come back), in id order.
  std::vector<VmId> VmsWithState() const;

  // Up to `max` queued events of a VM, oldest first.
  std::vector<Event> DrainEvents(VmId vm, size_t max);

  // Observation (status output, tests).
  const Policy& policy() const { return policy_; }
  const BrokerOptions& options() const { return options_; }
  const Ledger& ledger() const { return ledger_; }
  const QuotaLedger& quotas() const { return quotas_; }
  const std::vector<Carveout>& carveouts() const { return carveouts_; }
  std::vector<PoolStats> pool_stats() const;
  const EventQueue* events(VmId vm) const;
  // Every piece of state, in a canonical order: two dumps are equal iff the
  // broker's state is. Tests use it to prove a rejected request changed
  // nothing.
  std::string DebugDump() const;
  // The state as the store records it.
  StoredState Snapshot() const;
  // A teardown could not be recorded and no request has been recorded since.
  bool state_behind() const { return state_behind_; }
  // When behind, rewrites the store whole now (rmemd retries this on a
  // timer). The store's error otherwise.
  absl::Status CatchUpState();

 private:
  Broker(std::vector<Carveout> carveouts, Policy policy, Backends backends, BrokerOptions options);

  // A receiver's request on a handle (RETRIEVE, RELINQUISH), checked: the
  // caller is named in the handle's transaction and both state tables allow
  // `op`.
  struct ReceiverStep {
    Transaction* txn;
    Receiver* receiver;
    Buffer* buffer;
    const BufferOutcome* buffer_next;
    const ReceiverOutcome* receiver_next;
  };
  absl::StatusOr<ReceiverStep> CheckReceiverStep(VmId caller, Handle handle, Op op);
  absl::StatusOr<Handle> OpenTransaction(VmId caller, BufferId buffer, Op op, TxnKind kind,
                                         absl::Span<const Offer> to);
  // Gives `vm` `rights` on `pages`: stage-2 when cpu-map is held, and the
  // firewall for each initiator it owns. All or nothing.
  // With `restore_at` (a restart), the CPU mapping is re-established there.
  absl::StatusOr<std::optional<GuestAddr>> GrantAccess(
      VmId vm, PageRange pages, Rights rights, std::optional<GuestAddr> restore_at = std::nullopt);
  void RevokeAccess(VmId vm, PageRange pages, Rights rights);
  // Revoke, scrub, return to the pool, release quota, forget.
  void Destroy(Buffer& b);
  void Notify(VmId vm, const Event& e);
  // Records the request's changes (and the id sequences, if they moved) in
  // the state store; OK without one.
  // `buffer_ids` / `handles`: the sequences as they will be once the
  // request commits (default: as they are).
  absl::Status Persist(StateDelta& delta, const IdSequence* buffer_ids = nullptr,
                       const IdSequence* handles = nullptr);
  StoredBuffer Stored(const Buffer& b) const;
  // The ledger in a canonical order (state dumps, the store, restore).
  std::vector<const Buffer*> BuffersById() const;
  std::vector<const Transaction*> TxnsByHandle() const;
  static void Audit(StateDelta& delta, const char* op, AuditAction action, VmId actor, VmId vm,
                    const Buffer& b, Handle handle, Rights rights);
  // Restart: the ledger, pools and quotas from `state` (checked against the
  // carve-outs and policy), then, once free pages are scrubbed, the access
  // it records.
  absl::Status RestoreLedger(const StoredState& state);
  absl::Status RestoreAccess();
  absl::Status CheckCaller(VmId caller) const;
  std::string Describe(const Buffer& b) const;

  std::vector<Carveout> carveouts_;
  std::vector<PageAllocator> pools_;  // one per carve-out, same order
  Policy policy_;
  Backends backends_;
  BrokerOptions options_;
  QuotaLedger quotas_;
  Ledger ledger_;
  IdSequence buffer_ids_;
  IdSequence handles_;
  absl::flat_hash_map<VmId, EventQueue> events_;
  uint64_t persisted_buffer_counter_ = 0;  // what the store holds (0: nothing)
  uint64_t persisted_handle_counter_ = 0;
  bool state_behind_ = false;
};

}  // namespace rmem

// Events the broker queues for each VM: receivers learn of offers and
// revocations, owners of retrievals, relinquishments and completed
// donations. The device layer drains them into the guest's event queue.
// Each VM's queue is bounded; when a guest does not drain it, further events
// are counted as dropped (the guest can still query state) so a stalled
// guest cannot grow broker memory.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "broker/ownership/states.h"
#include "broker/policy/policy.h"
#include "broker/rights.h"
#include "broker/types.h"

namespace rmem {

enum class EventKind : uint8_t {
  kOffered,       // to a receiver: a share, lend or donation names it
  kRetrieved,     // to the owner: a receiver retrieved
  kRelinquished,  // to the owner: a receiver relinquished (or died)
  kRevoked,       // to a receiver: the offer was withdrawn or revoked
  kDonated,       // to the donor: the receiver took ownership
};

enum class EventReason : uint8_t {
  kRequest,   // the peer asked for it
  kPeerGone,  // the peer VM was torn down
};

struct Event {
  EventKind kind = EventKind::kOffered;
  EventReason reason = EventReason::kRequest;
  Handle handle;
  TxnKind txn = TxnKind::kShare;
  VmId peer;        // the other side: owner for receivers, receiver for owners
  BufferId buffer;  // owner-side events only (receivers never see buffer ids)
  HeapId heap;
  Rights rights;  // offered rights
  uint64_t size_bytes = 0;
  bool operator==(const Event&) const = default;
};

const char* EventKindName(EventKind k);

class EventQueue {
 public:
  explicit EventQueue(size_t capacity) : capacity_(capacity) {}
  void Push(const Event& e);
  // Up to `max` events, oldest first.
  std::vector<Event> Drain(size_t max);
  void Clear() { events_.clear(); }
  size_t size() const { return events_.size(); }
  uint64_t dropped() const { return dropped_; }
  const std::deque<Event>& events() const { return events_; }

 private:
  size_t capacity_;
  std::deque<Event> events_;
  uint64_t dropped_ = 0;
};

}  // namespace rmem

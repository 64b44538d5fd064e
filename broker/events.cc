// Bounded per-VM event queues.
#include "broker/events.h"

#include <algorithm>

namespace rmem {

const char* EventKindName(EventKind k) {
  switch (k) {
    case EventKind::kOffered:
      return "offered";
    case EventKind::kRetrieved:
      return "retrieved";
    case EventKind::kRelinquished:
      return "relinquished";
    case EventKind::kRevoked:
      return "revoked";
    case EventKind::kDonated:
      return "donated";
  }
  return "invalid";
}

void EventQueue::Push(const Event& e) {
  if (events_.size() >= capacity_) {
    ++dropped_;
    return;
  }
  events_.push_back(e);
}

std::vector<Event> EventQueue::Drain(size_t max) {
  const size_t n = std::min(max, events_.size());
  std::vector<Event> out(events_.begin(), events_.begin() + static_cast<ptrdiff_t>(n));
  events_.erase(events_.begin(), events_.begin() + static_cast<ptrdiff_t>(n));
  return out;
}

}  // namespace rmem

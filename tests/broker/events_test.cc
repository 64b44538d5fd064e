// Event queues: order, draining, and the bound a stalled guest hits.
#include "broker/events.h"

#include <gtest/gtest.h>

namespace rmem {
namespace {

Event Offered(uint64_t h) {
  Event e;
  e.kind = EventKind::kOffered;
  e.handle = Handle(h);
  return e;
}

TEST(EventQueue, DrainsOldestFirstUpToMax) {
  EventQueue q(10);
  for (uint64_t i = 1; i <= 5; ++i) q.Push(Offered(i));
  std::vector<Event> first = q.Drain(2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].handle, Handle(1));
  EXPECT_EQ(first[1].handle, Handle(2));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.Drain(100).size(), 3u);
  EXPECT_TRUE(q.Drain(100).empty());
}

TEST(EventQueue, StalledGuestHitsTheBoundAndDropsAreCounted) {
  EventQueue q(3);
  for (uint64_t i = 1; i <= 10; ++i) q.Push(Offered(i));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.dropped(), 7u);
  EXPECT_EQ(q.Drain(10)[0].handle, Handle(1));  // the oldest are kept
}

TEST(EventKindName, NamesEveryKind) {
  for (EventKind k : {EventKind::kOffered, EventKind::kRetrieved, EventKind::kRelinquished,
                      EventKind::kRevoked, EventKind::kDonated}) {
    EXPECT_STRNE(EventKindName(k), "invalid");
  }
}

}  // namespace
}  // namespace rmem

// The state tables of ownership/states.h, exhaustively: for every
// (buffer state, operation) and every (receiver state, operation) pair, a
// real broker is driven into that state, the operation is applied, and the
// outcome (status code, message reason, next state) must be the table's.
#include "broker/ownership/states.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <tuple>

#include "tests/broker/broker_fixture.h"

namespace rmem::testing {
namespace {

using ::testing::EndsWith;

constexpr BufferState kLiveStates[] = {BufferState::kOwned, BufferState::kShared,
                                       BufferState::kLent, BufferState::kDonating};
constexpr Op kAllOps[] = {Op::kShare,      Op::kLend,        Op::kDonate,        Op::kRetrieve,
                          Op::kRelinquish, Op::kReclaim,     Op::kReclaimRevoke, Op::kFree,
                          Op::kOwnerGone,  Op::kReceiverGone};

// Owner decrypt, receiver display, on 'general' (owners may revoke there).
class StateMachine : public BrokerTest {
 protected:
  struct Setup {
    BufferId buffer;
    Handle handle;  // the open transaction's, or a stale one when owned
  };

  Setup Enter(BufferState s, bool receiver_retrieved) {
    Setup out;
    out.buffer = MustAlloc(kDecrypt, "general").id;
    const Offer o{kDisplay, Rights::Of(kR | kC)};
    switch (s) {
      case BufferState::kOwned:
        out.handle = *broker_->Share(kDecrypt, out.buffer, {&o, 1});
        RMEM_CHECK_OK(broker_->Reclaim(kDecrypt, out.buffer));
        break;
      case BufferState::kShared:
        out.handle = *broker_->Share(kDecrypt, out.buffer, {&o, 1});
        break;
      case BufferState::kLent:
        out.handle = *broker_->Lend(kDecrypt, out.buffer, {&o, 1});
        break;
      case BufferState::kDonating:
        out.handle = *broker_->Donate(kDecrypt, out.buffer, kDisplay);
        break;
      case BufferState::kGone:
        RMEM_CHECK(false);
    }
    if (receiver_retrieved) RMEM_CHECK_OK(broker_->Retrieve(kDisplay, out.handle));
    return out;
  }

  absl::Status Apply(Op op, const Setup& s) {
    const Offer o{kCamera, Rights::Of(kR)};
    switch (op) {
      case Op::kShare:
        return broker_->Share(kDecrypt, s.buffer, {&o, 1}).status();
      case Op::kLend:
        return broker_->Lend(kDecrypt, s.buffer, {&o, 1}).status();
      case Op::kDonate:
        return broker_->Donate(kDecrypt, s.buffer, kCamera).status();
      case Op::kRetrieve:
        return broker_->Retrieve(kDisplay, s.handle).status();
      case Op::kRelinquish:
        return broker_->Relinquish(kDisplay, s.handle);
      case Op::kReclaim:
        return broker_->Reclaim(kDecrypt, s.buffer);
      case Op::kReclaimRevoke:
        return broker_->Reclaim(kDecrypt, s.buffer, ReclaimMode::kRevoke);
      case Op::kFree:
        return broker_->Free(kDecrypt, s.buffer);
      case Op::kOwnerGone:
        return broker_->TeardownVm(kDecrypt);
      case Op::kReceiverGone:
        return broker_->TeardownVm(kDisplay);
    }
    return absl::InternalError("unreachable");
  }

  BufferState StateOf(BufferId b) const {
    const Buffer* buf = broker_->ledger().FindBuffer(b);
    return buf == nullptr ? BufferState::kGone : buf->state;
  }
  ReceiverState ReceiverStateOf(BufferId b, VmId vm) const {
    const Buffer* buf = broker_->ledger().FindBuffer(b);
    if (buf == nullptr || !buf->txn) return ReceiverState::kRemoved;
    const Receiver* r = broker_->ledger().FindTxn(*buf->txn)->FindReceiver(vm);
    return r == nullptr ? ReceiverState::kRemoved : r->state;
  }
};

class BufferTable : public StateMachine,
                    public ::testing::WithParamInterface<std::tuple<BufferState, Op>> {};

TEST_P(BufferTable, BrokerFollowsTheTable) {
  const auto [state, op] = GetParam();
  const BufferOutcome& want = BufferTransition(state, op);
  // Relinquish needs a retrieved receiver to reach the buffer table.
  const bool retrieved =
      op == Op::kRelinquish && (state == BufferState::kShared || state == BufferState::kLent);
  const Setup s = Enter(state, retrieved);
  const std::string before = broker_->DebugDump();
  const absl::Status got = Apply(op, s);
  ASSERT_EQ(got.code(), want.code) << got;
  if (!want.allowed) {
    // Without an open transaction the handle resolves to nothing, and is
    // reported like any handle not offered to the caller.
    if (want.code == absl::StatusCode::kNotFound) {
      EXPECT_THAT(std::string(got.message()), ::testing::HasSubstr("is not offered to"));
    } else {
      EXPECT_THAT(std::string(got.message()), EndsWith(want.reason));
    }
    EXPECT_EQ(broker_->DebugDump(), before);
    return;
  }
  EXPECT_EQ(StateOf(s.buffer), want.next)
      << BufferStateName(StateOf(s.buffer)) << " vs " << BufferStateName(want.next);
  if (state == BufferState::kDonating && op == Op::kRetrieve) {
    EXPECT_EQ(broker_->ledger().FindBuffer(s.buffer)->owner, kDisplay);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryStateAndOp, BufferTable,
                         ::testing::Combine(::testing::ValuesIn(kLiveStates),
                                            ::testing::ValuesIn(kAllOps)),
                         [](const auto& param_info) {
                           std::string n =
                               std::string(BufferStateName(std::get<0>(param_info.param))) + "_" +
                               OpName(std::get<1>(param_info.param));
                           for (char& c : n) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

constexpr ReceiverState kReceiverStates[] = {ReceiverState::kOffered, ReceiverState::kRetrieved};
constexpr Op kReceiverOps[] = {Op::kRetrieve,      Op::kRelinquish, Op::kReclaim,
                               Op::kReclaimRevoke, Op::kOwnerGone,  Op::kReceiverGone};

class ReceiverTable : public StateMachine,
                      public ::testing::WithParamInterface<std::tuple<ReceiverState, Op>> {};

TEST_P(ReceiverTable, BrokerFollowsTheTable) {
  const auto [state, op] = GetParam();
  const ReceiverOutcome& want = ReceiverTransition(state, op);
  const Setup s = Enter(BufferState::kShared, state == ReceiverState::kRetrieved);
  const std::string before = broker_->DebugDump();
  const absl::Status got = Apply(op, s);
  ASSERT_EQ(got.code(), want.code) << got;
  if (!want.allowed) {
    EXPECT_THAT(std::string(got.message()), EndsWith(want.reason));
    EXPECT_EQ(broker_->DebugDump(), before);
    return;
  }
  EXPECT_EQ(ReceiverStateOf(s.buffer, kDisplay), want.next);
}

INSTANTIATE_TEST_SUITE_P(EveryStateAndOp, ReceiverTable,
                         ::testing::Combine(::testing::ValuesIn(kReceiverStates),
                                            ::testing::ValuesIn(kReceiverOps)),
                         [](const auto& param_info) {
                           std::string n =
                               std::string(ReceiverStateName(std::get<0>(param_info.param))) + "_" +
                               OpName(std::get<1>(param_info.param));
                           for (char& c : n) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

TEST(ReceiverTableShape, OpsThatDoNotReachReceiversAreMarkedSo) {
  for (ReceiverState s : kReceiverStates) {
    for (Op op : {Op::kShare, Op::kLend, Op::kDonate, Op::kFree}) {
      EXPECT_EQ(ReceiverTransition(s, op).code, absl::StatusCode::kInternal) << OpName(op);
    }
  }
}

TEST(StateNames, AreDistinctAndDefined) {
  for (BufferState s : kLiveStates) EXPECT_STRNE(BufferStateName(s), "invalid");
  for (Op op : kAllOps) EXPECT_STRNE(OpName(op), "invalid");
}

}  // namespace
}  // namespace rmem::testing

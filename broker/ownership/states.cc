// Names of states, operations and transaction kinds, as they appear in
// messages and status output.
#include "broker/ownership/states.h"

namespace rmem {

const char* BufferStateName(BufferState s) {
  switch (s) {
    case BufferState::kOwned:
      return "owned";
    case BufferState::kShared:
      return "shared";
    case BufferState::kLent:
      return "lent";
    case BufferState::kDonating:
      return "donating";
    case BufferState::kGone:
      return "gone";
  }
  return "invalid";
}

const char* ReceiverStateName(ReceiverState s) {
  switch (s) {
    case ReceiverState::kOffered:
      return "offered";
    case ReceiverState::kRetrieved:
      return "retrieved";
    case ReceiverState::kRemoved:
      return "removed";
  }
  return "invalid";
}

const char* OpName(Op op) {
  switch (op) {
    case Op::kShare:
      return "SHARE";
    case Op::kLend:
      return "LEND";
    case Op::kDonate:
      return "DONATE";
    case Op::kRetrieve:
      return "RETRIEVE";
    case Op::kRelinquish:
      return "RELINQUISH";
    case Op::kReclaim:
      return "RECLAIM";
    case Op::kReclaimRevoke:
      return "RECLAIM+REVOKE";
    case Op::kFree:
      return "FREE";
    case Op::kOwnerGone:
      return "OWNER-GONE";
    case Op::kReceiverGone:
      return "RECEIVER-GONE";
  }
  return "invalid";
}

const char* TxnKindName(TxnKind k) {
  switch (k) {
    case TxnKind::kShare:
      return "share";
    case TxnKind::kLend:
      return "lend";
    case TxnKind::kDonate:
      return "donation";
  }
  return "invalid";
}

}  // namespace rmem

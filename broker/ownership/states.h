// The ownership state machine, as data (STYLE.md rule 5). Semantics follow
// Arm FF-A memory management: a buffer has one owner and at most one open
// transaction (a share, lend or donation) naming one or more receivers. The
// transaction's handle is the capability receivers use; RECLAIM closes it.
//
// Buffer states (who can reach the buffer's pages):
//
//   state     owner access  transaction  receivers may hold it
//   OWNED     yes           none         -
//   SHARED    yes           share        yes (read/write as offered)
//   LENT      no            lend         yes (read/write as offered)
//   DONATING  no            donation     no (retrieval moves ownership)
//   (gone)    -             -            -   after FREE or owner teardown
//
// clang-format off
// Buffer transitions ("x" = rejected with the code shown, state unchanged):
//
//   state \ op  SHARE    LEND     DONATE    RETRIEVE  RELINQUISH RECLAIM  FREE     OWNER-GONE RECEIVER-GONE
//   OWNED       SHARED   LENT     DONATING  x NotFnd  x NotFnd   x FPre   (gone)   (gone)     OWNED
//   SHARED      x FPre   x FPre   x FPre    SHARED*   SHARED*    OWNED*   x FPre   (gone)     SHARED
//   LENT        x FPre   x FPre   x FPre    LENT*     LENT*      OWNED*   x FPre   (gone)     LENT
//   DONATING    x FPre   x FPre   x FPre    OWNED**   x FPre     OWNED*   x FPre   (gone)     DONATING
//
//   *  the receiver table below decides too.
//   NotFnd: with no open transaction a handle resolves to nothing; it is
//   reported like any handle not offered to the caller.
//   ** ownership moves to the receiver; the donor already lost access.
//
// Receiver states, per receiver named in a transaction:
//
//   state \ op  RETRIEVE   RELINQUISH  RECLAIM     RECLAIM+REVOKE  OWNER/RECEIVER-GONE
//   OFFERED     RETRIEVED  x FPre      (withdrawn) (withdrawn)     (removed)
//   RETRIEVED   x FPre     OFFERED     x FPre      (revoked)       (removed, unmapped)
//
// A relinquished receiver may retrieve again until the owner reclaims.
// RECLAIM+REVOKE is RECLAIM where heap policy lets owners revoke.
// clang-format on
#pragma once

#include <array>
#include <cstdint>

#include "absl/status/status.h"

namespace rmem {

enum class BufferState : uint8_t { kOwned, kShared, kLent, kDonating, kGone };
inline constexpr int kBufferStateCount = 5;

enum class ReceiverState : uint8_t { kOffered, kRetrieved, kRemoved };
inline constexpr int kReceiverStateCount = 3;

enum class Op : uint8_t {
  kShare,
  kLend,
  kDonate,
  kRetrieve,
  kRelinquish,
  kReclaim,
  kReclaimRevoke,
  kFree,
  kOwnerGone,
  kReceiverGone,
};
inline constexpr int kOpCount = 10;

// The kind of an open transaction.
enum class TxnKind : uint8_t { kShare, kLend, kDonate };

// An entry of a transition table: allowed (with the next state) or rejected
// with a status code and the reason, appended to the object's description.
template <typename State>
struct Outcome {
  bool allowed;
  State next;
  absl::StatusCode code;
  const char* reason;
};

using BufferOutcome = Outcome<BufferState>;
using ReceiverOutcome = Outcome<ReceiverState>;

namespace transitions {
using S = BufferState;
using R = ReceiverState;
using C = absl::StatusCode;
constexpr BufferOutcome Go(S next) { return {true, next, C::kOk, ""}; }
constexpr BufferOutcome No(C code, const char* reason) { return {false, S::kGone, code, reason}; }
constexpr ReceiverOutcome RGo(R next) { return {true, next, C::kOk, ""}; }
constexpr ReceiverOutcome RNo(C code, const char* reason) {
  return {false, R::kRemoved, code, reason};
}
// Reasons are appended to a description of the object: "buffer 0x1f is
// lent to vm 2" + "; reclaim it first".
constexpr const char* kReclaimFirst = "; reclaim it first";
constexpr const char* kNoTxn = "; it has no open transaction";
constexpr const char* kNothingToReclaim = "; there is nothing to reclaim";
constexpr const char* kDonationNotRelinquished =
    "; a donation is retrieved or reclaimed, not relinquished";

// Rows: BufferState (kGone has no row: a gone buffer is not found). Columns: Op.
inline constexpr std::array<std::array<BufferOutcome, kOpCount>, kBufferStateCount - 1>
    kBufferTable = {{
        // kOwned
        {{Go(S::kShared), Go(S::kLent), Go(S::kDonating), No(C::kNotFound, kNoTxn),
          No(C::kNotFound, kNoTxn), No(C::kFailedPrecondition, kNothingToReclaim),
          No(C::kFailedPrecondition, kNothingToReclaim), Go(S::kGone), Go(S::kGone),
          Go(S::kOwned)}},
        // kShared
        {{No(C::kFailedPrecondition, kReclaimFirst), No(C::kFailedPrecondition, kReclaimFirst),
          No(C::kFailedPrecondition, kReclaimFirst), Go(S::kShared), Go(S::kShared), Go(S::kOwned),
          Go(S::kOwned), No(C::kFailedPrecondition, kReclaimFirst), Go(S::kGone), Go(S::kShared)}},
        // kLent
        {{No(C::kFailedPrecondition, kReclaimFirst), No(C::kFailedPrecondition, kReclaimFirst),
          No(C::kFailedPrecondition, kReclaimFirst), Go(S::kLent), Go(S::kLent), Go(S::kOwned),
          Go(S::kOwned), No(C::kFailedPrecondition, kReclaimFirst), Go(S::kGone), Go(S::kLent)}},
        // kDonating
        {{No(C::kFailedPrecondition, kReclaimFirst), No(C::kFailedPrecondition, kReclaimFirst),
          No(C::kFailedPrecondition, kReclaimFirst), Go(S::kOwned),
          No(C::kFailedPrecondition, kDonationNotRelinquished), Go(S::kOwned), Go(S::kOwned),
          No(C::kFailedPrecondition, kReclaimFirst), Go(S::kGone), Go(S::kDonating)}},
    }};

// Rows: ReceiverState (kRemoved has no row). Columns: Op; only RETRIEVE,
// RELINQUISH, RECLAIM, RECLAIM+REVOKE and the two teardowns reach receivers.
inline constexpr std::array<std::array<ReceiverOutcome, kOpCount>, kReceiverStateCount - 1>
    kReceiverTable = {{
        // kOffered
        {{RNo(C::kInternal, "n/a"), RNo(C::kInternal, "n/a"), RNo(C::kInternal, "n/a"),
          RGo(R::kRetrieved), RNo(C::kFailedPrecondition, " has not retrieved it"),
          RGo(R::kRemoved), RGo(R::kRemoved), RNo(C::kInternal, "n/a"), RGo(R::kRemoved),
          RGo(R::kRemoved)}},
        // kRetrieved
        {{RNo(C::kInternal, "n/a"), RNo(C::kInternal, "n/a"), RNo(C::kInternal, "n/a"),
          RNo(C::kFailedPrecondition, " has already retrieved it"), RGo(R::kOffered),
          RNo(C::kFailedPrecondition, " still holds it; wait for it to relinquish"),
          RGo(R::kRemoved), RNo(C::kInternal, "n/a"), RGo(R::kRemoved), RGo(R::kRemoved)}},
    }};
}  // namespace transitions

constexpr const BufferOutcome& BufferTransition(BufferState s, Op op) {
  return transitions::kBufferTable[static_cast<int>(s)][static_cast<int>(op)];
}
constexpr const ReceiverOutcome& ReceiverTransition(ReceiverState s, Op op) {
  return transitions::kReceiverTable[static_cast<int>(s)][static_cast<int>(op)];
}

const char* BufferStateName(BufferState s);      // "owned", "shared", ...
const char* ReceiverStateName(ReceiverState s);  // "offered", "retrieved", ...
const char* OpName(Op op);                       // "SHARE", "RECLAIM+REVOKE", ...
const char* TxnKindName(TxnKind k);              // "share", "lend", "donation"

}  // namespace rmem

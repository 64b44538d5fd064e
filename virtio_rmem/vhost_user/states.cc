#include "virtio_rmem/vhost_user/states.h"

#include "absl/strings/str_cat.h"
#include "vhost_user/message.h"

namespace rmem::virtio_rmem {
namespace {

constexpr RingState kSD{false, false};  // stopped, disabled
constexpr RingState kSE{false, true};   // stopped, enabled
constexpr RingState kRD{true, false};   // started ("running"), disabled
constexpr RingState kRE{true, true};    // started, enabled

struct Cell {
  bool refused;
  RingState next;
};
constexpr Cell R{true, {}};  // refused: the ring is started
constexpr Cell To(RingState s) { return {false, s}; }

constexpr int Index(RingState s) { return (s.started ? 2 : 0) + (s.enabled ? 1 : 0); }

// clang-format off
// [state][op], op order as RingOp: SET_NUM, SET_BASE, SET_ADDR, SET_KICK,
// GET_BASE, ENABLE, DISABLE, reset. The table in states.h, cell for cell.
constexpr Cell kRingTable[kRingStates][kRingOps] = {
    /* stopped, disabled */ {To(kSD), To(kSD), To(kSD), To(kRD), To(kSD), To(kSE), To(kSD), To(kSD)},
    /* stopped, enabled  */ {To(kSE), To(kSE), To(kSE), To(kRE), To(kSE), To(kSE), To(kSD), To(kSD)},
    /* started, disabled */ {R, R, To(kRD), To(kRD), To(kSD), To(kRE), To(kRD), To(kSD)},
    /* started, enabled  */ {R, R, To(kRE), To(kRE), To(kSE), To(kRE), To(kRD), To(kSD)},
};
// clang-format on

// clang-format off
const char* OpName(RingOp op) {
  switch (op) {
    case RingOp::kSetNum: return "SET_VRING_NUM";
    case RingOp::kSetBase: return "SET_VRING_BASE";
    case RingOp::kSetAddr: return "SET_VRING_ADDR";
    case RingOp::kSetKick: return "SET_VRING_KICK";
    case RingOp::kGetBase: return "GET_VRING_BASE";
    case RingOp::kEnable: return "SET_VRING_ENABLE 1";
    case RingOp::kDisable: return "SET_VRING_ENABLE 0";
    case RingOp::kReset: return "a reset";
  }
  return "?";
}
// clang-format on

}  // namespace

const RequestRule* FindRequestRule(uint32_t request) {
  for (const RequestRule& rule : kRequestRules) {
    if (static_cast<uint32_t>(rule.request) == request) return &rule;
  }
  return nullptr;
}

absl::Status CheckRequestAllowed(const RequestRule& rule, ConnectionState state,
                                 uint64_t protocol_features) {
  const std::string name = vhost_user::NamedRequest(vhost_user::RequestSpace::kFrontend,
                                                    static_cast<uint32_t>(rule.request));
  if (state == ConnectionState::kAwaitingOwner && !rule.before_owner) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " before SET_OWNER: only negotiation is served until then"));
  }
  if (rule.protocol_feature >= 0 && ((protocol_features >> rule.protocol_feature) & 1) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " needs protocol feature bit ", rule.protocol_feature,
                     ", which SET_PROTOCOL_FEATURES did not negotiate"));
  }
  return absl::OkStatus();
}

absl::Status RingTransition(int ring, RingState state, RingOp op, RingState& next) {
  const Cell& cell = kRingTable[Index(state)][static_cast<int>(op)];
  if (cell.refused) {
    return absl::FailedPreconditionError(absl::StrCat(
        OpName(op), " on ring ", ring, " while it is started (GET_VRING_BASE stops it)"));
  }
  next = cell.next;
  return absl::OkStatus();
}

}  // namespace rmem::virtio_rmem

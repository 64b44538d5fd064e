// The back-end's state machines as data: which front-end requests a
// connection serves in which state, and how each ring moves between
// stopped/started and disabled/enabled (QEMU docs/interop/vhost-user.rst,
// "Ring states"). The request handlers look transitions up here;
// tests/virtio_rmem/states_test.cc walks every cell.
//
// Connection: a front-end connects in AWAITING_OWNER; SET_OWNER moves it to
// OWNED for good (a repeated SET_OWNER is accepted: multi-queue front-ends
// send one per queue pair). Before SET_OWNER only negotiation is served:
//
//   request                 AWAITING_OWNER  OWNED   needs protocol feature
//   GET_FEATURES            yes             yes     -
//   SET_FEATURES            no              yes     -
//   SET_OWNER               yes (-> OWNED)  yes     -
//   RESET_OWNER             no              yes     -
//   SET_MEM_TABLE           no              yes     -
//   SET_VRING_*, GET_VRING_BASE  no         yes     -
//   GET/SET_PROTOCOL_FEATURES  yes          yes     -
//   GET_QUEUE_NUM           yes             yes     MQ
//   SET_BACKEND_REQ_FD      yes             yes     BACKEND_REQ
//   GET_CONFIG              yes             yes     CONFIG
//   SET_CONFIG              no              yes     CONFIG
//   RESET_DEVICE            no              yes     RESET_DEVICE
//   GET_SHMEM_CONFIG        yes             yes     SHMEM
//   anything else           Unimplemented (not offered)
//
// Rings (started = a kick fd was set; enabled = SET_VRING_ENABLE 1, or
// always when VHOST_USER_F_PROTOCOL_FEATURES was not acked). Chains are
// processed only on a started, enabled ring whose size, addresses and
// memory table are known; kicks on any other ring are counted and dropped.
//
//   state \ op         SET_NUM/BASE  SET_ADDR  SET_KICK    GET_BASE  ENABLE/DISABLE  reset
//   stopped, disabled  same          same      started     same      enabled/same    same
//   stopped, enabled   same          same      started     same      same/disabled   s,d
//   started, disabled  refused       same      same        stopped   enabled/same    s,d
//   started, enabled   refused       same      same        stopped   same/disabled   s,d
//
// ("refused": FailedPrecondition, stop the ring with GET_VRING_BASE first;
// "reset": RESET_OWNER and RESET_DEVICE; "s,d": stopped, disabled.)
#pragma once

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "vhost_user/protocol.h"

namespace rmem::virtio_rmem {

enum class ConnectionState : uint8_t { kAwaitingOwner, kOwned };
inline constexpr int kConnectionStates = 2;

// The payload a request carries (request.h decodes each kind).
enum class PayloadKind : uint8_t {
  kNone,
  kU64,
  kVringState,
  kVringAddr,
  kMemTable,
  kVringFile,  // u64 index | NOFD, with one fd unless NOFD
  kConfig,
};
// The fds a request carries.
enum class FdRule : uint8_t {
  kNone,
  kOne,
  kOneUnlessNoFd,
  kOnePerRegion,
};

struct RequestRule {
  vhost_user::FrontendRequest request;
  PayloadKind payload;
  FdRule fds;
  bool before_owner;     // served in kAwaitingOwner
  int protocol_feature;  // must be negotiated first; -1: none
  bool has_reply;        // answered with a reply body of its own
};

using vhost_user::FrontendRequest;
inline constexpr RequestRule kRequestRules[] = {
    {FrontendRequest::kGetFeatures, PayloadKind::kNone, FdRule::kNone, true, -1, true},
    {FrontendRequest::kSetFeatures, PayloadKind::kU64, FdRule::kNone, false, -1, false},
    {FrontendRequest::kSetOwner, PayloadKind::kNone, FdRule::kNone, true, -1, false},
    {FrontendRequest::kResetOwner, PayloadKind::kNone, FdRule::kNone, false, -1, false},
    {FrontendRequest::kSetMemTable, PayloadKind::kMemTable, FdRule::kOnePerRegion, false, -1,
     false},
    {FrontendRequest::kSetVringNum, PayloadKind::kVringState, FdRule::kNone, false, -1, false},
    {FrontendRequest::kSetVringAddr, PayloadKind::kVringAddr, FdRule::kNone, false, -1, false},
    {FrontendRequest::kSetVringBase, PayloadKind::kVringState, FdRule::kNone, false, -1, false},
    {FrontendRequest::kGetVringBase, PayloadKind::kVringState, FdRule::kNone, false, -1, true},
    {FrontendRequest::kSetVringKick, PayloadKind::kVringFile, FdRule::kOneUnlessNoFd, false, -1,
     false},
    {FrontendRequest::kSetVringCall, PayloadKind::kVringFile, FdRule::kOneUnlessNoFd, false, -1,
     false},
    {FrontendRequest::kSetVringErr, PayloadKind::kVringFile, FdRule::kOneUnlessNoFd, false, -1,
     false},
    {FrontendRequest::kGetProtocolFeatures, PayloadKind::kNone, FdRule::kNone, true, -1, true},
    {FrontendRequest::kSetProtocolFeatures, PayloadKind::kU64, FdRule::kNone, true, -1, false},
    {FrontendRequest::kGetQueueNum, PayloadKind::kNone, FdRule::kNone, true,
     vhost_user::kProtocolMq, true},
    {FrontendRequest::kSetVringEnable, PayloadKind::kVringState, FdRule::kNone, false, -1, false},
    {FrontendRequest::kSetBackendReqFd, PayloadKind::kNone, FdRule::kOne, true,
     vhost_user::kProtocolBackendReq, false},
    {FrontendRequest::kGetConfig, PayloadKind::kConfig, FdRule::kNone, true,
     vhost_user::kProtocolConfig, true},
    {FrontendRequest::kSetConfig, PayloadKind::kConfig, FdRule::kNone, false,
     vhost_user::kProtocolConfig, false},
    {FrontendRequest::kResetDevice, PayloadKind::kNone, FdRule::kNone, false,
     vhost_user::kProtocolResetDevice, false},
    {FrontendRequest::kGetShmemConfig, PayloadKind::kNone, FdRule::kNone, true,
     vhost_user::kProtocolShmem, true},
};

// The rule for a request code; nullptr for one we do not serve.
const RequestRule* FindRequestRule(uint32_t request);

// OK if `rule`'s request may be served in `state` with `protocol_features`
// negotiated; FailedPrecondition saying what is missing otherwise.
absl::Status CheckRequestAllowed(const RequestRule& rule, ConnectionState state,
                                 uint64_t protocol_features);

struct RingState {
  bool started = false;
  bool enabled = false;
  constexpr bool operator==(const RingState&) const = default;
};
inline constexpr int kRingStates = 4;  // started x enabled

enum class RingOp : uint8_t {
  kSetNum,
  kSetBase,
  kSetAddr,
  kSetKick,
  kGetBase,
  kEnable,
  kDisable,
  kReset,
};
inline constexpr int kRingOps = 8;

// The ring's next state, or FailedPrecondition naming the ring and why.
absl::Status RingTransition(int ring, RingState state, RingOp op, RingState& next);

}  // namespace rmem::virtio_rmem

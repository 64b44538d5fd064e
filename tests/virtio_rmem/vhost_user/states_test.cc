// The back-end's state tables, cell by cell: every (connection state,
// request code) pair and every (ring state, ring operation) pair against
// the tables in states.h's header comment, restated here independently.
#include "virtio_rmem/vhost_user/states.h"

#include <map>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rmem::virtio_rmem {
namespace {

using vhost_user::FrontendRequest;

uint32_t Code(FrontendRequest r) { return static_cast<uint32_t>(r); }
constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }

// The comment's table: request -> (served before SET_OWNER, protocol feature).
const std::map<uint32_t, std::pair<bool, int>>& Expected() {
  static const auto* table = new std::map<uint32_t, std::pair<bool, int>>{
      {Code(FrontendRequest::kGetFeatures), {true, -1}},
      {Code(FrontendRequest::kSetFeatures), {false, -1}},
      {Code(FrontendRequest::kSetOwner), {true, -1}},
      {Code(FrontendRequest::kResetOwner), {false, -1}},
      {Code(FrontendRequest::kSetMemTable), {false, -1}},
      {Code(FrontendRequest::kSetVringNum), {false, -1}},
      {Code(FrontendRequest::kSetVringAddr), {false, -1}},
      {Code(FrontendRequest::kSetVringBase), {false, -1}},
      {Code(FrontendRequest::kGetVringBase), {false, -1}},
      {Code(FrontendRequest::kSetVringKick), {false, -1}},
      {Code(FrontendRequest::kSetVringCall), {false, -1}},
      {Code(FrontendRequest::kSetVringErr), {false, -1}},
      {Code(FrontendRequest::kSetVringEnable), {false, -1}},
      {Code(FrontendRequest::kGetProtocolFeatures), {true, -1}},
      {Code(FrontendRequest::kSetProtocolFeatures), {true, -1}},
      {Code(FrontendRequest::kGetQueueNum), {true, vhost_user::kProtocolMq}},
      {Code(FrontendRequest::kSetBackendReqFd), {true, vhost_user::kProtocolBackendReq}},
      {Code(FrontendRequest::kGetConfig), {true, vhost_user::kProtocolConfig}},
      {Code(FrontendRequest::kSetConfig), {false, vhost_user::kProtocolConfig}},
      {Code(FrontendRequest::kResetDevice), {false, vhost_user::kProtocolResetDevice}},
      {Code(FrontendRequest::kGetShmemConfig), {true, vhost_user::kProtocolShmem}},
  };
  return *table;
}

TEST(StatesTest, RequestTable_EveryStateAndCode_MatchesTheComment) {
  const ConnectionState states[kConnectionStates] = {ConnectionState::kAwaitingOwner,
                                                     ConnectionState::kOwned};
  // Codes 0..64 cover every request the spec defines and some it does not.
  for (uint32_t code = 0; code <= 64; ++code) {
    const RequestRule* rule = FindRequestRule(code);
    auto it = Expected().find(code);
    if (it == Expected().end()) {
      EXPECT_EQ(rule, nullptr) << "request " << code << " must not be served";
      continue;
    }
    ASSERT_NE(rule, nullptr) << "request " << code << " must be served";
    const auto [before_owner, feature] = it->second;
    for (ConnectionState state : states) {
      for (bool negotiated : {false, true}) {
        const uint64_t features = negotiated && feature >= 0 ? Bit(feature) : 0;
        const bool want =
            (state == ConnectionState::kOwned || before_owner) && (feature < 0 || negotiated);
        const absl::Status s = CheckRequestAllowed(*rule, state, features);
        EXPECT_EQ(s.ok(), want) << "request " << code << " state " << static_cast<int>(state)
                                << " negotiated " << negotiated << ": " << s;
        if (!s.ok()) {
          EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
        }
      }
    }
  }
}

TEST(StatesTest, RequestTable_RepliesExactlyForGetRequests) {
  const std::set<uint32_t> with_reply = {
      Code(FrontendRequest::kGetFeatures), Code(FrontendRequest::kGetProtocolFeatures),
      Code(FrontendRequest::kGetQueueNum), Code(FrontendRequest::kGetVringBase),
      Code(FrontendRequest::kGetConfig),   Code(FrontendRequest::kGetShmemConfig)};
  for (const RequestRule& rule : kRequestRules) {
    EXPECT_EQ(rule.has_reply, with_reply.count(static_cast<uint32_t>(rule.request)) == 1)
        << static_cast<uint32_t>(rule.request);
  }
}

// The ring table of states.h, restated: s = started, e = enabled.
struct RingCase {
  RingState from;
  RingOp op;
  bool refused;
  RingState to;
};

TEST(StatesTest, RingTable_EveryStateAndOperation_MatchesTheComment) {
  const RingState SD{false, false}, SE{false, true}, RD{true, false}, RE{true, true};
  const RingCase cases[] = {
      {SD, RingOp::kSetNum, false, SD},  {SD, RingOp::kSetBase, false, SD},
      {SD, RingOp::kSetAddr, false, SD}, {SD, RingOp::kSetKick, false, RD},
      {SD, RingOp::kGetBase, false, SD}, {SD, RingOp::kEnable, false, SE},
      {SD, RingOp::kDisable, false, SD}, {SD, RingOp::kReset, false, SD},

      {SE, RingOp::kSetNum, false, SE},  {SE, RingOp::kSetBase, false, SE},
      {SE, RingOp::kSetAddr, false, SE}, {SE, RingOp::kSetKick, false, RE},
      {SE, RingOp::kGetBase, false, SE}, {SE, RingOp::kEnable, false, SE},
      {SE, RingOp::kDisable, false, SD}, {SE, RingOp::kReset, false, SD},

      {RD, RingOp::kSetNum, true, {}},   {RD, RingOp::kSetBase, true, {}},
      {RD, RingOp::kSetAddr, false, RD}, {RD, RingOp::kSetKick, false, RD},
      {RD, RingOp::kGetBase, false, SD}, {RD, RingOp::kEnable, false, RE},
      {RD, RingOp::kDisable, false, RD}, {RD, RingOp::kReset, false, SD},

      {RE, RingOp::kSetNum, true, {}},   {RE, RingOp::kSetBase, true, {}},
      {RE, RingOp::kSetAddr, false, RE}, {RE, RingOp::kSetKick, false, RE},
      {RE, RingOp::kGetBase, false, SE}, {RE, RingOp::kEnable, false, RE},
      {RE, RingOp::kDisable, false, RD}, {RE, RingOp::kReset, false, SD},
  };
  static_assert(std::size(cases) == kRingStates * kRingOps);
  for (const RingCase& c : cases) {
    RingState next{true, true};
    const absl::Status s = RingTransition(7, c.from, c.op, next);
    const std::string where =
        absl::StrCat("from started=", c.from.started, " enabled=", c.from.enabled, " op ",
                     static_cast<int>(c.op));
    if (c.refused) {
      EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << where;
      EXPECT_THAT(s.message(), ::testing::HasSubstr("ring 7")) << where;
    } else {
      ASSERT_TRUE(s.ok()) << where << ": " << s;
      EXPECT_EQ(next, c.to) << where;
    }
  }
}

}  // namespace
}  // namespace rmem::virtio_rmem

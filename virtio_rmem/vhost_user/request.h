// The front-end request decoder: one pure function that turns a received
// message into a typed request, or says exactly what is wrong with it. It
// checks, in order: that we serve the request at all; the connection state
// and negotiated protocol features (states.h); the payload size; the fd
// count; then every field (reserved bits, ring indexes, sizes, overflow,
// overlaps). Nothing a front-end sends reaches a handler without passing it.
// Fuzzed by tests/fuzz/vhost_user_message_fuzzer.cc.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "base/fd.h"
#include "broker/types.h"
#include "vhost_user/message.h"
#include "vhost_user/protocol.h"
#include "virtio_rmem/vhost_user/states.h"

namespace rmem::virtio_rmem {

// An address in the front-end (VMM) process: what ring addresses are in
// SET_VRING_ADDR (VIRTIO_F_ACCESS_PLATFORM is never offered, so never IOVAs).
using FrontendVa = Address<struct FrontendVaTag>;

struct MemRegionSpec {
  GuestAddr guest;
  uint64_t size = 0;
  FrontendVa user;
  uint64_t mmap_offset = 0;
};

struct VringAddrSpec {
  uint32_t index = 0;
  FrontendVa desc;
  FrontendVa used;
  FrontendVa avail;
};

struct VringFileSpec {
  uint32_t index = 0;
  bool has_fd = false;  // the fd is FrontendMessage::fds[0]
};

struct ConfigSpec {
  uint32_t offset = 0;
  uint32_t size = 0;
  uint32_t flags = 0;
  std::vector<uint8_t> bytes;  // SET_CONFIG only: `size` bytes
};

// A decoded request: `code` says which payload field holds its body
// (states.h: kRequestRules' PayloadKind); the others stay empty.
struct FrontendMessage {
  vhost_user::FrontendRequest code;
  bool need_reply = false;
  uint64_t u64 = 0;                    // kU64
  vhost_user::VringState state;        // kVringState
  VringAddrSpec addr;                  // kVringAddr
  std::vector<MemRegionSpec> regions;  // kMemTable
  VringFileSpec file;                  // kVringFile
  ConfigSpec config;                   // kConfig
  std::vector<Fd> fds;
};

// What the decoder needs to know about the connection.
struct FrontendDecodeContext {
  ConnectionState state = ConnectionState::kAwaitingOwner;
  uint64_t protocol_features = 0;  // negotiated
  uint64_t offered_features = 0;   // GET_FEATURES
  uint64_t offered_protocol_features = 0;
  int num_queues = 0;
};

// Decodes `message` (taking its fds). Errors, each naming the request:
//   Unimplemented       a request we do not serve (not offered);
//   FailedPrecondition  not in this state / its protocol feature not
//                       negotiated (states.h);
//   InvalidArgument     wrong payload size, wrong number of fds, reserved or
//                       unknown bits, a ring index beyond the device's
//                       queues, features that were not offered, a ring size
//                       that is not a power of two up to kMaxQueueSize, a
//                       base above 0xffff, memory regions that are empty,
//                       overflow or overlap, a config range past 256 bytes.
// Fds of a rejected message are closed.
absl::StatusOr<FrontendMessage> DecodeFrontendRequest(vhost_user::Message message, const FrontendDecodeContext& context);

}  // namespace rmem::virtio_rmem

// The front-end request decoder and the incremental message reader, one
// named test per rule: every malformed request is rejected with a code and
// a message naming the request and the field, and its fds are closed.
#include "virtio_rmem/vhost_user/request.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "virtio_rmem/vhost_user/limits.h"
#include "virtio_rmem/vhost_user/message_reader.h"

namespace rmem::virtio_rmem {
namespace {

using ::testing::HasSubstr;
using vhost_user::FrontendRequest;
using vhost_user::Message;

constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }

FrontendDecodeContext Owned(uint64_t protocol_features = ~uint64_t{0}) {
  FrontendDecodeContext c;
  c.state = ConnectionState::kOwned;
  c.protocol_features = protocol_features;
  c.offered_features = Bit(32) | Bit(30) | Bit(0);
  c.offered_protocol_features = Bit(0) | Bit(3) | Bit(5) | Bit(9);
  c.num_queues = 2;
  return c;
}

template <typename T>
Message Msg(FrontendRequest r, const T& payload, int nfds = 0, uint32_t flags = 0) {
  Message m;
  m.header = {static_cast<uint32_t>(r), vhost_user::kVersion | flags, sizeof(T)};
  const std::span<const uint8_t> b = vhost_user::Bytes(payload);
  m.payload.assign(b.begin(), b.end());
  for (int i = 0; i < nfds; ++i) m.fds.emplace_back(eventfd(0, EFD_CLOEXEC));
  return m;
}
Message Empty(FrontendRequest r, int nfds = 0) {
  Message m;
  m.header = {static_cast<uint32_t>(r), vhost_user::kVersion, 0};
  for (int i = 0; i < nfds; ++i) m.fds.emplace_back(eventfd(0, EFD_CLOEXEC));
  return m;
}

void ExpectRejected(absl::StatusOr<FrontendMessage> r, absl::StatusCode code, absl::string_view text) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), code) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr(text));
}

TEST(RequestDecoderTest, GetFeatures_Decoded) {
  absl::StatusOr<FrontendMessage> r = DecodeFrontendRequest(Empty(FrontendRequest::kGetFeatures), {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->code, FrontendRequest::kGetFeatures);
}

TEST(RequestDecoderTest, UnknownRequest_Unimplemented) {
  ExpectRejected(DecodeFrontendRequest(Empty(FrontendRequest::kSetLogBase), Owned()),
                 absl::StatusCode::kUnimplemented, "SET_LOG_BASE (6)");
  Message m = Empty(FrontendRequest::kGetFeatures);
  m.header.request = 999;
  ExpectRejected(DecodeFrontendRequest(std::move(m), Owned()), absl::StatusCode::kUnimplemented, "(999)");
}

TEST(RequestDecoderTest, MemTableBeforeOwner_FailedPrecondition) {
  ExpectRejected(DecodeFrontendRequest(Empty(FrontendRequest::kSetMemTable), {}),
                 absl::StatusCode::kFailedPrecondition, "before SET_OWNER");
}

TEST(RequestDecoderTest, GatedRequestWithoutItsProtocolFeature_FailedPrecondition) {
  ExpectRejected(DecodeFrontendRequest(Empty(FrontendRequest::kGetShmemConfig), Owned(0)),
                 absl::StatusCode::kFailedPrecondition, "protocol feature bit 22");
}

TEST(RequestDecoderTest, WrongPayloadSize_InvalidArgument) {
  Message m = Msg(FrontendRequest::kSetVringNum, uint32_t{8});
  ExpectRejected(DecodeFrontendRequest(std::move(m), Owned()), absl::StatusCode::kInvalidArgument,
                 "payload of 4 bytes (want 8)");
  ExpectRejected(DecodeFrontendRequest(Msg(FrontendRequest::kSetOwner, uint64_t{0}), Owned()),
                 absl::StatusCode::kInvalidArgument, "payload of 8 bytes (want 0)");
}

TEST(RequestDecoderTest, UnexpectedFds_InvalidArgumentAndClosed) {
  Message m = Empty(FrontendRequest::kSetOwner, 2);
  const int fd = m.fds[0].get();
  ExpectRejected(DecodeFrontendRequest(std::move(m), Owned()), absl::StatusCode::kInvalidArgument,
                 "2 fds (want 0)");
  EXPECT_EQ(fcntl(fd, F_GETFD), -1) << "the rejected message's fd leaked";
}

TEST(RequestDecoderTest, SetFeatures_BitsNotOffered_InvalidArgument) {
  ExpectRejected(DecodeFrontendRequest(Msg(FrontendRequest::kSetFeatures, Bit(32) | Bit(28)), Owned()),
                 absl::StatusCode::kInvalidArgument, "did not offer (0x10000000)");
}

TEST(RequestDecoderTest, SetProtocolFeatures_BitsNotOffered_InvalidArgument) {
  ExpectRejected(DecodeFrontendRequest(Msg(FrontendRequest::kSetProtocolFeatures, Bit(14)), Owned()),
                 absl::StatusCode::kInvalidArgument, "did not offer");
}

TEST(RequestDecoderTest, RingIndexBeyondQueues_InvalidArgument) {
  ExpectRejected(
      DecodeFrontendRequest(Msg(FrontendRequest::kSetVringNum, vhost_user::VringState{2, 8}), Owned()),
      absl::StatusCode::kInvalidArgument, "ring 2 does not exist");
  ExpectRejected(DecodeFrontendRequest(Msg(FrontendRequest::kSetVringCall, uint64_t{5}, 1), Owned()),
                 absl::StatusCode::kInvalidArgument, "ring 5 does not exist");
}

TEST(RequestDecoderTest, VringNum_NotPowerOfTwoOrTooLarge_InvalidArgument) {
  for (uint32_t n : {0u, 3u, 2u * kMaxQueueSize, 0x80000000u}) {
    ExpectRejected(
        DecodeFrontendRequest(Msg(FrontendRequest::kSetVringNum, vhost_user::VringState{0, n}), Owned()),
        absl::StatusCode::kInvalidArgument, "not a power of two");
  }
}

TEST(RequestDecoderTest, VringBase_Above16Bits_InvalidArgument) {
  ExpectRejected(
      DecodeFrontendRequest(Msg(FrontendRequest::kSetVringBase, vhost_user::VringState{0, 0x10000}),
                    Owned()),
      absl::StatusCode::kInvalidArgument, "not a 16-bit index");
}

TEST(RequestDecoderTest, VringEnable_NeitherZeroNorOne_InvalidArgument) {
  ExpectRejected(
      DecodeFrontendRequest(Msg(FrontendRequest::kSetVringEnable, vhost_user::VringState{1, 2}), Owned()),
      absl::StatusCode::kInvalidArgument, "neither 0 nor 1");
}

TEST(RequestDecoderTest, VringAddr_LogFlagOrUnknownFlags_InvalidArgument) {
  vhost_user::VringAddr a{};
  a.flags = vhost_user::kVringAddrFLog;
  ExpectRejected(DecodeFrontendRequest(Msg(FrontendRequest::kSetVringAddr, a), Owned()),
                 absl::StatusCode::kInvalidArgument, "logging");
  a.flags = 0x10;
  ExpectRejected(DecodeFrontendRequest(Msg(FrontendRequest::kSetVringAddr, a), Owned()),
                 absl::StatusCode::kInvalidArgument, "unknown flag bits");
}

TEST(RequestDecoderTest, VringFile_ReservedBits_InvalidArgument) {
  ExpectRejected(DecodeFrontendRequest(Msg(FrontendRequest::kSetVringKick, uint64_t{1} << 9, 1), Owned()),
                 absl::StatusCode::kInvalidArgument, "reserved bits");
}

TEST(RequestDecoderTest, VringFile_FdCountMustMatchNoFdBit) {
  ExpectRejected(DecodeFrontendRequest(Msg(FrontendRequest::kSetVringCall, uint64_t{0}, 0), Owned()),
                 absl::StatusCode::kInvalidArgument, "0 fds (want 1)");
  ExpectRejected(
      DecodeFrontendRequest(Msg(FrontendRequest::kSetVringCall, vhost_user::kVringNoFd, 1), Owned()),
      absl::StatusCode::kInvalidArgument, "1 fds (want 0)");
  absl::StatusOr<FrontendMessage> ok =
      DecodeFrontendRequest(Msg(FrontendRequest::kSetVringCall, vhost_user::kVringNoFd | 1, 0), Owned());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->file.index, 1u);
  EXPECT_FALSE(ok->file.has_fd);
}

Message MemTable(std::vector<vhost_user::MemoryRegion> regions, int nfds) {
  vhost_user::MemoryTable t;
  t.nregions = static_cast<uint32_t>(regions.size());
  for (size_t i = 0; i < regions.size() && i < 8; ++i) t.regions[i] = regions[i];
  Message m = Msg(FrontendRequest::kSetMemTable, t, nfds);
  m.payload.resize(8 + 32 * std::min<size_t>(regions.size(), 8));
  m.header.size = static_cast<uint32_t>(m.payload.size());
  return m;
}

TEST(RequestDecoderTest, MemTable_Valid_Decoded) {
  absl::StatusOr<FrontendMessage> r = DecodeFrontendRequest(MemTable({{0x40000000, 0x100000, 0x7f0000000000, 0},
                                                      {0x80000000, 0x1000, 0x7f1000000000, 0x1000}},
                                                     2),
                                            Owned());
  ASSERT_TRUE(r.ok()) << r.status();
  const std::vector<MemRegionSpec>& regions = r->regions;
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[1].mmap_offset, 0x1000u);
  EXPECT_EQ(r->fds.size(), 2u);
}

TEST(RequestDecoderTest, MemTable_NoRegionsOrTooMany_InvalidArgument) {
  ExpectRejected(DecodeFrontendRequest(MemTable({}, 0), Owned()), absl::StatusCode::kInvalidArgument,
                 "0 memory regions");
  Message m = MemTable({{1, 1, 1, 0}}, 1);
  std::memcpy(m.payload.data(), "\x09\0\0\0", 4);  // nregions 9, payload for one
  ExpectRejected(DecodeFrontendRequest(std::move(m), Owned()), absl::StatusCode::kInvalidArgument,
                 "payload of 40 bytes (want 264)");
}

TEST(RequestDecoderTest, MemTable_FdsNotOnePerRegion_InvalidArgument) {
  ExpectRejected(DecodeFrontendRequest(MemTable({{0x1000, 0x1000, 0x1000, 0}}, 2), Owned()),
                 absl::StatusCode::kInvalidArgument, "2 fds (want 1)");
}

TEST(RequestDecoderTest, MemTable_EmptyRegion_InvalidArgument) {
  ExpectRejected(DecodeFrontendRequest(MemTable({{0x1000, 0, 0x1000, 0}}, 1), Owned()),
                 absl::StatusCode::kInvalidArgument, "empty");
}

TEST(RequestDecoderTest, MemTable_RegionOverflows_InvalidArgument) {
  ExpectRejected(DecodeFrontendRequest(MemTable({{UINT64_MAX - 0xfff, 0x2000, 0x1000, 0}}, 1), Owned()),
                 absl::StatusCode::kInvalidArgument, "passes 2^64");
  ExpectRejected(DecodeFrontendRequest(MemTable({{0x1000, 0x2000, UINT64_MAX, 0}}, 1), Owned()),
                 absl::StatusCode::kInvalidArgument, "passes 2^64");
  ExpectRejected(DecodeFrontendRequest(MemTable({{0x1000, 0x2000, 0x1000, UINT64_MAX - 1}}, 1), Owned()),
                 absl::StatusCode::kInvalidArgument, "passes 2^64");
}

TEST(RequestDecoderTest, MemTable_OverlappingRegions_InvalidArgument) {
  ExpectRejected(
      DecodeFrontendRequest(MemTable({{0x1000, 0x2000, 0x10000, 0}, {0x2fff, 0x1000, 0x20000, 0}}, 2),
                    Owned()),
      absl::StatusCode::kInvalidArgument, "overlaps region 0 in guest memory");
  ExpectRejected(
      DecodeFrontendRequest(MemTable({{0x1000, 0x2000, 0x10000, 0}, {0x9000, 0x1000, 0x11000, 0}}, 2),
                    Owned()),
      absl::StatusCode::kInvalidArgument, "in the front-end's memory");
}

Message Config(FrontendRequest r, uint32_t offset, uint32_t size, uint32_t flags,
               size_t body_bytes) {
  Message m;
  m.header = {static_cast<uint32_t>(r), vhost_user::kVersion,
              static_cast<uint32_t>(12 + body_bytes)};
  const vhost_user::ConfigHeader h{offset, size, flags};
  m.payload.resize(12 + body_bytes);
  std::memcpy(m.payload.data(), &h, 12);
  return m;
}

TEST(RequestDecoderTest, Config_RangePast256_InvalidArgument) {
  ExpectRejected(DecodeFrontendRequest(Config(FrontendRequest::kGetConfig, 250, 8, 0, 8), Owned()),
                 absl::StatusCode::kInvalidArgument, "passes 256 bytes");
  ExpectRejected(DecodeFrontendRequest(Config(FrontendRequest::kGetConfig, UINT32_MAX, 8, 0, 8), Owned()),
                 absl::StatusCode::kInvalidArgument, "passes 256 bytes");
}

TEST(RequestDecoderTest, Config_SizeDisagreesWithPayload_InvalidArgument) {
  ExpectRejected(DecodeFrontendRequest(Config(FrontendRequest::kSetConfig, 0, 8, 0, 4), Owned()),
                 absl::StatusCode::kInvalidArgument, "payload of 16 bytes (want 20)");
}

TEST(RequestDecoderTest, Config_UnknownFlags_InvalidArgument) {
  ExpectRejected(DecodeFrontendRequest(Config(FrontendRequest::kSetConfig, 0, 4, 2, 4), Owned()),
                 absl::StatusCode::kInvalidArgument, "config flags 2");
}

// --- the incremental reader -------------------------------------------------

TEST(MessageReaderTest, ByteByByte_Reassembled) {
  MessageReader reader(vhost_user::RequestSpace::kFrontend, "test peer");
  const vhost_user::MsgHeader h{2, vhost_user::kVersion, 8};
  const uint64_t v = 0x1234;
  uint8_t bytes[20];
  std::memcpy(bytes, &h, 12);
  std::memcpy(bytes + 12, &v, 8);
  for (int i = 0; i < 20; ++i) {
    std::span<uint8_t> into = reader.NextBuffer();
    ASSERT_FALSE(into.empty());
    into[0] = bytes[i];
    absl::StatusOr<std::optional<Message>> m = reader.Advance(1, {});
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->has_value(), i == 19) << i;
    if (i == 19) {
      EXPECT_EQ((*m)->header.request, 2u);
      EXPECT_EQ((*m)->payload.size(), 8u);
    }
  }
  EXPECT_FALSE(reader.in_progress());
}

TEST(MessageReaderTest, NeverReadsPastTheMessage_NextMessagesFdsStayWithIt) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Fd ours(sv[0]), theirs(sv[1]);
  const vhost_user::MsgHeader a{3, vhost_user::kVersion, 0};
  const vhost_user::MsgHeader b{13, vhost_user::kVersion, 8};
  const uint64_t index = 0;
  Fd efd(eventfd(0, EFD_CLOEXEC));
  const int fds[1] = {efd.get()};
  ASSERT_TRUE(vhost_user::SendMessage(theirs.get(), a, {}, {}, vhost_user::SendMode::kBlocking, "t",
                                      vhost_user::RequestSpace::kFrontend)
                  .ok());
  ASSERT_TRUE(vhost_user::SendMessage(theirs.get(), b, vhost_user::Bytes(index), fds,
                                      vhost_user::SendMode::kBlocking, "t",
                                      vhost_user::RequestSpace::kFrontend)
                  .ok());
  MessageReader reader(vhost_user::RequestSpace::kFrontend, "test peer");
  absl::StatusOr<std::optional<Message>> first = reader.ReadFrom(ours.get());
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_EQ((*first)->header.request, 3u);
  EXPECT_TRUE((*first)->fds.empty());
  absl::StatusOr<std::optional<Message>> second = reader.ReadFrom(ours.get());
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((*second)->fds.size(), 1u);
  absl::StatusOr<std::optional<Message>> none = reader.ReadFrom(ours.get());
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(MessageReaderTest, BadHeader_InvalidArgumentNamingTheField) {
  MessageReader reader(vhost_user::RequestSpace::kFrontend, "test peer");
  const vhost_user::MsgHeader h{1, vhost_user::kVersion, vhost_user::kMaxPayloadSize + 1};
  std::memcpy(reader.NextBuffer().data(), &h, 12);
  absl::StatusOr<std::optional<Message>> m = reader.Advance(12, {});
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("header field size"));
}

TEST(MessageReaderTest, PeerClosesMidMessage_UnavailableSayingSo) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Fd ours(sv[0]), theirs(sv[1]);
  ASSERT_EQ(write(theirs.get(), "\x01\0\0\0\x01", 5), 5);
  theirs.Reset();
  MessageReader reader(vhost_user::RequestSpace::kFrontend, "test peer");
  absl::StatusOr<std::optional<Message>> m = reader.ReadFrom(ours.get());
  ASSERT_EQ(m.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(m.status().message(), HasSubstr("in the middle of a message"));
}

}  // namespace
}  // namespace rmem::virtio_rmem

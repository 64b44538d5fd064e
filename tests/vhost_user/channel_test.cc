// The vhost-user message channel over a socketpair: fds travel with their
// message, malformed headers are rejected naming the field and closing any
// fds that came along, and a peer that hangs up is Unavailable.
#include "vhost_user/channel.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/open_fds.h"

namespace rmem::vhost_user {
namespace {

using ::testing::HasSubstr;
using rmem::testing::OpenFdCount;

struct Pair {
  Channel a;
  Fd b;  // the raw peer, for hand-made bytes
};

Pair MakePair() {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {Channel(Fd(sv[0]), "test peer", RequestSpace::kFrontend), Fd(sv[1])};
}

// The fd number the kernel hands out next (lowest free).
int NextFdNumber() {
  const int fd = dup(0);
  close(fd);
  return fd;
}

void SendRaw(int sock, const void* bytes, size_t len, std::span<const int> fds = {}) {
  ASSERT_EQ(SendChunk(sock, {static_cast<const uint8_t*>(bytes), len}, fds, 0),
            static_cast<ssize_t>(len));
}

TEST(VhostUserChannelTest, SendReceive_PayloadAndFdsTravel) {
  Pair p = MakePair();
  Channel b(std::move(p.b), "other", RequestSpace::kFrontend);
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  Fd rd(pipe_fds[0]), wr(pipe_fds[1]);
  const uint64_t value = 0x1122334455667788;
  const int fds[] = {rd.get(), wr.get()};
  ASSERT_TRUE(p.a.Send({12, kVersion | kFlagNeedReply, 8},
                       {reinterpret_cast<const uint8_t*>(&value), 8}, fds).ok());
  absl::StatusOr<Message> m = b.Receive("a test message");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.request, 12u);
  EXPECT_EQ(m->header.flags, kVersion | kFlagNeedReply);
  ASSERT_EQ(m->payload.size(), 8u);
  uint64_t got;
  std::memcpy(&got, m->payload.data(), 8);
  EXPECT_EQ(got, value);
  ASSERT_EQ(m->fds.size(), 2u);
  // The received write end feeds the original read end.
  ASSERT_EQ(write(m->fds[1].get(), "x", 1), 1);
  char c = 0;
  ASSERT_EQ(read(rd.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
}

TEST(VhostUserChannelTest, Receive_MessageInPieces_Reassembled) {
  Pair p = MakePair();
  const int raw = p.b.get();
  std::thread writer([raw] {
    const MsgHeader h{1, kVersion | kFlagReply, 8};
    const uint64_t v = 42;
    uint8_t bytes[20];
    std::memcpy(bytes, &h, 12);
    std::memcpy(bytes + 12, &v, 8);
    for (int i = 0; i < 20; i += 5) {
      ASSERT_EQ(write(raw, bytes + i, 5), 5);
      usleep(5000);
    }
  });
  absl::StatusOr<Message> m = p.a.Receive("a split reply");
  writer.join();
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->payload.size(), 8u);
  EXPECT_EQ(m->payload[0], 42);
}

TEST(VhostUserChannelTest, Receive_BadVersion_RejectedAndFdClosed) {
  Pair p = MakePair();
  Fd extra(dup(1));
  const int next = NextFdNumber();
  const MsgHeader h{1, 0x2 | kFlagReply, 0};
  const int fds[] = {extra.get()};
  SendRaw(p.b.get(), &h, sizeof(h), fds);
  absl::StatusOr<Message> m = p.a.Receive("the reply to GET_FEATURES");
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("version"));
  EXPECT_THAT(m.status().message(), HasSubstr("GET_FEATURES"));
  EXPECT_EQ(fcntl(next, F_GETFD), -1) << "received fd " << next << " leaked";
}

TEST(VhostUserChannelTest, Receive_UnknownFlagBits_RejectedNamingFlags) {
  Pair p = MakePair();
  const MsgHeader h{1, kVersion | 0x100, 0};
  SendRaw(p.b.get(), &h, sizeof(h));
  absl::StatusOr<Message> m = p.a.Receive("a reply");
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("flags"));
}

TEST(VhostUserChannelTest, Receive_OversizePayload_RejectedNamingSizeAndFdClosed) {
  Pair p = MakePair();
  Fd extra(dup(1));
  const int next = NextFdNumber();
  const MsgHeader h{5, kVersion, kMaxPayloadSize + 1};
  const int fds[] = {extra.get()};
  SendRaw(p.b.get(), &h, sizeof(h), fds);
  absl::StatusOr<Message> m = p.a.Receive("a request");
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("size"));
  EXPECT_THAT(m.status().message(), HasSubstr("SET_MEM_TABLE"));
  EXPECT_EQ(fcntl(next, F_GETFD), -1) << "received fd " << next << " leaked";
}

TEST(VhostUserChannelTest, Receive_TooManyFds_RejectedAndNoneLeaked) {
  Pair p = MakePair();
  std::vector<Fd> mine;
  std::vector<int> raw;
  for (int i = 0; i < kMaxFds + 1; ++i) {
    mine.emplace_back(dup(1));
    raw.push_back(mine.back().get());
  }
  const int before = OpenFdCount();
  const MsgHeader h{12, kVersion, 0};
  SendRaw(p.b.get(), &h, sizeof(h), raw);
  absl::StatusOr<Message> m = p.a.Receive("a request");
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("fds"));
  EXPECT_EQ(OpenFdCount(), before);
}

TEST(VhostUserChannelTest, Receive_PeerClosed_Unavailable) {
  Pair p = MakePair();
  p.b.Reset();
  absl::StatusOr<Message> m = p.a.Receive("the reply to GET_FEATURES");
  ASSERT_EQ(m.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(m.status().message(), HasSubstr("test peer disconnected"));
  EXPECT_THAT(m.status().message(), HasSubstr("GET_FEATURES"));
}

TEST(VhostUserChannelTest, Receive_PeerClosedMidPayload_UnavailableAndFdClosed) {
  Pair p = MakePair();
  Fd extra(dup(1));
  const int next = NextFdNumber();
  const MsgHeader h{1, kVersion | kFlagReply, 8};
  const int fds[] = {extra.get()};
  SendRaw(p.b.get(), &h, sizeof(h), fds);
  ASSERT_EQ(write(p.b.get(), "abcd", 4), 4);
  p.b.Reset();
  absl::StatusOr<Message> m = p.a.Receive("the reply to GET_FEATURES");
  ASSERT_EQ(m.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(m.status().message(), HasSubstr("in the middle of"));
  EXPECT_EQ(fcntl(next, F_GETFD), -1);
}

TEST(VhostUserChannelTest, Send_PeerClosed_Unavailable) {
  Pair p = MakePair();
  p.b.Reset();
  absl::Status s = p.a.Send({3, kVersion, 0}, {});
  ASSERT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("SET_OWNER"));
}

TEST(VhostUserChannelTest, Send_TooManyFds_InvalidArgument) {
  Pair p = MakePair();
  const int fds[kMaxFds + 1] = {};
  EXPECT_EQ(p.a.Send({12, kVersion, 0}, {}, fds).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rmem::vhost_user

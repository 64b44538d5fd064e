// The back-end against a hostile front-end: a raw socket peer that sends
// whatever it likes (garbage headers, wrong sizes, too many fds, half a
// message, requests out of order) and a hostile driver in guest memory
// (rings outside memory, descriptor loops, chains longer than the queue,
// overflowing lengths, wrapping and jumping indexes, kicks before rings are
// set). Every case ends in a clear refusal or a broken connection with a
// reason; the loop goes on serving the other guest, and nothing crashes.
// Also, step by step, which request makes a ring runnable and tells the
// device (OnRingStarted), before that request's reply.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "base/eventfd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/open_fds.h"
#include "tests/virtio_rmem/fake_driver.h"
#include "tests/virtio_rmem/vhost_user/test_device.h"
#include "vhost_user/channel.h"
#include "virtio_rmem/vhost_user/limits.h"

namespace rmem::virtio_rmem {
namespace {

using rmem::testing::FakeDriver;
using rmem::testing::OpenFdCount;
using testing::BackendThread;
using testing::EchoSumDevice;
using ::testing::HasSubstr;
using testing::kGuard;
using vhost_user::FrontendRequest;
using vhost_user::Message;

constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }
constexpr uint64_t kAllProtocol = Bit(0) | Bit(3) | Bit(5) | Bit(9) | Bit(10) | Bit(13) | Bit(22);
constexpr uint64_t kAck = Bit(vhost_user::kProtocolReplyAck);
constexpr GuestAddr kRamBase(0x40000000);
constexpr uint64_t kRamSize = 1 << 20;
constexpr uint16_t kQueueSize = 8;
constexpr GuestAddr kDesc(0x40000000), kAvail(0x40001000), kUsed(0x40002000), kData(0x40010000);

// Guest RAM as a front-end shares it: a memfd, sealed unless told not to.
class GuestRam {
 public:
  explicit GuestRam(bool sealed = true, uint64_t file_size = kRamSize) {
    fd_ = Fd(memfd_create("hostile-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    EXPECT_EQ(ftruncate(fd_.get(), static_cast<off_t>(file_size)), 0);
    if (sealed) {
      EXPECT_EQ(fcntl(fd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    }
    host_ = static_cast<uint8_t*>(
        mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0));
  }
  ~GuestRam() { munmap(host_, kRamSize); }
  int fd() const { return fd_.get(); }
  uint8_t* host() const { return host_; }
  uint64_t user(GuestAddr a) const {
    return reinterpret_cast<uint64_t>(host_) + (a.value() - kRamBase.value());
  }
  vhost_user::MemoryRegion Region() const {
    return {kRamBase.value(), kRamSize, reinterpret_cast<uint64_t>(host_), 0};
  }

 private:
  Fd fd_;
  uint8_t* host_;
};

// A front-end made by hand: raw bytes and messages, replies read back.
class RawPeer {
 public:
  explicit RawPeer(const std::string& path) {
    Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << path;
    channel_.emplace(std::move(fd), "rmemd", vhost_user::RequestSpace::kFrontend);
  }
  int fd() const { return channel_->fd(); }

  void SendBytes(const void* bytes, size_t len, std::span<const int> fds = {}) {
    EXPECT_EQ(vhost_user::SendChunk(fd(), {static_cast<const uint8_t*>(bytes), len}, fds, 0),
              static_cast<ssize_t>(len));
  }
  void Send(FrontendRequest r, std::span<const uint8_t> payload, std::span<const int> fds = {},
            uint32_t flags = vhost_user::kFlagNeedReply) {
    const vhost_user::MsgHeader h{static_cast<uint32_t>(r), vhost_user::kVersion | flags,
                                  static_cast<uint32_t>(payload.size())};
    std::string bytes(reinterpret_cast<const char*>(&h), sizeof(h));
    bytes.append(reinterpret_cast<const char*>(payload.data()), payload.size());
    SendBytes(bytes.data(), bytes.size(), fds);
  }
  // The next message; nullopt if the back-end closed the connection.
  std::optional<Message> Receive() {
    pollfd p{fd(), POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(kGuard))) != 1) {
      ADD_FAILURE() << "no reply and no hang-up within the guard time";
      return std::nullopt;
    }
    absl::StatusOr<Message> m = channel_->Receive("a reply");
    if (!m.ok()) return std::nullopt;
    return *std::move(m);
  }
  // A request with need_reply: its u64 answer (~0 if the connection closed).
  uint64_t Ack(FrontendRequest r, std::span<const uint8_t> payload = {},
               std::span<const int> fds = {}) {
    Send(r, payload, fds);
    std::optional<Message> m = Receive();
    if (!m) return ~uint64_t{0};
    EXPECT_EQ(m->header.request, static_cast<uint32_t>(r));
    EXPECT_NE(m->header.flags & vhost_user::kFlagReply, 0u);
    EXPECT_EQ(m->payload.size(), 8u);
    uint64_t v = 0;
    std::memcpy(&v, m->payload.data(), std::min<size_t>(8, m->payload.size()));
    return v;
  }
  uint64_t Get(FrontendRequest r) {
    Send(r, {}, {}, 0);
    std::optional<Message> m = Receive();
    if (!m || m->payload.size() != 8) return ~uint64_t{0};
    uint64_t v;
    std::memcpy(&v, m->payload.data(), 8);
    return v;
  }
  // Whether the back-end hangs up (after any replies still on the way).
  bool Closed() {
    char buf[4096];
    for (;;) {
      pollfd p{fd(), POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(kGuard))) != 1) return false;
      const ssize_t n = recv(fd(), buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    }
  }
  // GET_FEATURES, SET_PROTOCOL_FEATURES, SET_OWNER.
  void Handshake(uint64_t protocol_features) {
    ASSERT_NE(Get(FrontendRequest::kGetFeatures) & Bit(30), 0u);
    Send(FrontendRequest::kSetProtocolFeatures, vhost_user::Bytes(protocol_features), {}, 0);
    if (protocol_features & kAck) {
      ASSERT_EQ(Ack(FrontendRequest::kSetOwner), 0u);
    } else {
      Send(FrontendRequest::kSetOwner, {}, {}, 0);
    }
  }

 private:
  std::optional<vhost_user::Channel> channel_;
};

class HostileTest : public ::testing::Test {
 protected:
  HostileTest() {
    EXPECT_TRUE(backend_.AddGuest("vm1", vm1_).ok());
    EXPECT_TRUE(backend_.AddGuest("vm2", vm2_).ok());
    backend_.Start();
  }
  std::string LastEnd(const std::string& guest = "vm1") {
    EXPECT_TRUE((guest == "vm1" ? vm1_ : vm2_).WaitForDisconnects(1));
    return backend_.Status(guest).last_end;
  }
  // Handshake with every protocol feature, a memory table and ring 0 set up
  // and started on `ram`.
  void StartRing(RawPeer& peer, const GuestRam& ram, uint16_t base = 0) {
    peer.Handshake(kAllProtocol);
    ASSERT_EQ(peer.Ack(FrontendRequest::kSetFeatures, vhost_user::Bytes(Bit(32) | Bit(30))), 0u);
    ASSERT_EQ(SetMemTable(peer, {ram.Region()}, {ram.fd()}), 0u);
    ASSERT_EQ(peer.Ack(FrontendRequest::kSetVringNum,
                       vhost_user::Bytes(vhost_user::VringState{0, kQueueSize})),
              0u);
    vhost_user::VringAddr a{};
    a.desc_user_addr = ram.user(kDesc);
    a.avail_user_addr = ram.user(kAvail);
    a.used_user_addr = ram.user(kUsed);
    ASSERT_EQ(peer.Ack(FrontendRequest::kSetVringAddr, vhost_user::Bytes(a)), 0u);
    ASSERT_EQ(peer.Ack(FrontendRequest::kSetVringBase,
                       vhost_user::Bytes(vhost_user::VringState{0, base})),
              0u);
    const int kick = kick_.get(), call = call_.get(), err = err_.get();
    ASSERT_EQ(peer.Ack(FrontendRequest::kSetVringKick, vhost_user::Bytes(uint64_t{0}), {&kick, 1}),
              0u);
    ASSERT_EQ(peer.Ack(FrontendRequest::kSetVringCall, vhost_user::Bytes(uint64_t{0}), {&call, 1}),
              0u);
    ASSERT_EQ(peer.Ack(FrontendRequest::kSetVringErr, vhost_user::Bytes(uint64_t{0}), {&err, 1}),
              0u);
    ASSERT_EQ(
        peer.Ack(FrontendRequest::kSetVringEnable, vhost_user::Bytes(vhost_user::VringState{0, 1})),
        0u);
  }
  static uint64_t SetMemTable(RawPeer& peer, std::vector<vhost_user::MemoryRegion> regions,
                              std::vector<int> fds) {
    vhost_user::MemoryTable t;
    t.nregions = static_cast<uint32_t>(regions.size());
    for (size_t i = 0; i < regions.size(); ++i) t.regions[i] = regions[i];
    return peer.Ack(FrontendRequest::kSetMemTable,
                    vhost_user::Bytes(t).first(8 + 32 * regions.size()), fds);
  }
  // Hands the back-end a socket for its requests (SET_BACKEND_REQ_FD);
  // returns our end of it.
  Fd GiveBackendSocket(RawPeer& peer) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    Fd ours(sv[0]), theirs(sv[1]);
    const int fd = theirs.get();
    EXPECT_EQ(peer.Ack(FrontendRequest::kSetBackendReqFd, {}, {&fd, 1}), 0u);
    return ours;
  }
  // The device maps a 4 KiB piece (from the loop's thread, as it would).
  absl::Status DeviceMaps() {
    return backend_.RunInLoop([&] {
      return vm1_.host()->MapShmem({.region_id = 0,
                                    .region_offset = 0,
                                    .fd = kick_.get(),
                                    .fd_offset = 0,
                                    .length = 4096,
                                    .writable = true});
    });
  }
  // Sends `header` alone: the connection must break for the reason named.
  void ExpectHeaderBreaks(vhost_user::MsgHeader header, absl::string_view reason) {
    RawPeer peer(backend_.Path("vm1"));
    peer.SendBytes(&header, sizeof(header));
    EXPECT_TRUE(peer.Closed());
    EXPECT_THAT(LastEnd(), HasSubstr(reason));
  }
  // Kicks ring 0 and waits until the back-end processed the kick (another
  // request on the same socket is answered after it).
  void KickAndSync(RawPeer& peer) {
    SignalEventFd(kick_.get());
    const absl::Time deadline = absl::Now() + kGuard;
    while (backend_.Status("vm1").stats.rings[0].kicks == kicks_seen_ && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    ++kicks_seen_;
    (void)peer;
  }

  EchoSumDevice vm1_, vm2_;
  BackendThread backend_;
  Fd kick_ = MakeEventFd(), call_ = MakeEventFd(), err_ = MakeEventFd();
  uint64_t kicks_seen_ = 0;
};

// --- framing ------------------------------------------------------------

TEST_F(HostileTest, GarbageHeader_BadVersion_ConnectionBrokenNamingVersion) {
  ExpectHeaderBreaks({1, 0x2, 0}, "header field version");
}

TEST_F(HostileTest, GarbageHeader_UnknownFlagBits_ConnectionBroken) {
  ExpectHeaderBreaks({1, 0x1 | 0x80, 0}, "header field flags");
}

TEST_F(HostileTest, GarbageHeader_HugeSize_ConnectionBrokenWithoutReadingIt) {
  ExpectHeaderBreaks({5, 0x1, 0xfffffff0}, "header field size");
}

TEST_F(HostileTest, TooManyFds_ConnectionBrokenAndNoFdLeaks) {
  const int before = OpenFdCount();
  {
    RawPeer peer(backend_.Path("vm1"));
    std::vector<Fd> mine;
    std::vector<int> raw;
    for (int i = 0; i < vhost_user::kMaxFds + 1; ++i) {
      mine.emplace_back(eventfd(0, EFD_CLOEXEC));
      raw.push_back(mine.back().get());
    }
    const vhost_user::MsgHeader h{13, vhost_user::kVersion, 8};
    char bytes[20] = {};
    std::memcpy(bytes, &h, 12);
    peer.SendBytes(bytes, sizeof(bytes), raw);
    EXPECT_TRUE(peer.Closed());
    EXPECT_THAT(LastEnd(), HasSubstr("fds"));
  }
  EXPECT_EQ(OpenFdCount(), before) << "fds of the rejected message leaked";
}

TEST_F(HostileTest, HalfAMessage_StallsOnlyItsGuest_OtherGuestServedThenItCompletes) {
  RawPeer slow(backend_.Path("vm1"));
  const vhost_user::MsgHeader h{static_cast<uint32_t>(FrontendRequest::kGetFeatures),
                                vhost_user::kVersion, 0};
  slow.SendBytes(&h, 7);  // 7 of 12 header bytes, then silence
  RawPeer other(backend_.Path("vm2"));
  EXPECT_EQ(other.Get(FrontendRequest::kGetFeatures), Bit(32) | Bit(30) | Bit(0));
  EXPECT_EQ(other.Get(FrontendRequest::kGetProtocolFeatures), kAllProtocol);
  slow.SendBytes(reinterpret_cast<const char*>(&h) + 7, 5);
  std::optional<Message> reply = slow.Receive();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->header.request, static_cast<uint32_t>(FrontendRequest::kGetFeatures));
}

TEST_F(HostileTest, EofMidMessage_BrokenSayingSo) {
  {
    RawPeer peer(backend_.Path("vm1"));
    const vhost_user::MsgHeader h{2, vhost_user::kVersion, 8};
    peer.SendBytes(&h, sizeof(h));
    peer.SendBytes("abc", 3);
  }
  EXPECT_THAT(LastEnd(), HasSubstr("in the middle of a message"));
}

TEST_F(HostileTest, FrontendNotReadingReplies_BrokenNotBlocked) {
  RawPeer greedy(backend_.Path("vm1"));
  // Requests whose replies it never reads, until the back-end gives up.
  const vhost_user::MsgHeader h{static_cast<uint32_t>(FrontendRequest::kGetFeatures),
                                vhost_user::kVersion, 0};
  std::string burst;
  for (int i = 0; i < 4096; ++i) burst.append(reinterpret_cast<const char*>(&h), sizeof(h));
  for (int i = 0; i < 2000; ++i) {
    if (send(greedy.fd(), burst.data(), burst.size(), MSG_NOSIGNAL) < 0) break;
    if (backend_.Status("vm1").connections == 1 && !backend_.Status("vm1").connected) break;
  }
  EXPECT_THAT(LastEnd(), HasSubstr("not reading"));
  RawPeer other(backend_.Path("vm2"));
  EXPECT_EQ(other.Get(FrontendRequest::kGetFeatures), Bit(32) | Bit(30) | Bit(0));
}

// --- requests -------------------------------------------------------------

TEST_F(HostileTest, BadPayloadSize_WithReplyAck_NackedAndConnectionLives) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  const uint32_t half = 8;
  EXPECT_EQ(peer.Ack(FrontendRequest::kSetVringNum, vhost_user::Bytes(half)),
            static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(peer.Get(FrontendRequest::kGetFeatures), Bit(32) | Bit(30) | Bit(0));
  EXPECT_EQ(backend_.Status("vm1").stats.refused, 1u);
}

TEST_F(HostileTest, BadPayloadSize_WithoutReplyAck_Broken) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(0);
  const uint32_t half = 8;
  peer.Send(FrontendRequest::kSetVringNum, vhost_user::Bytes(half), {}, 0);
  EXPECT_TRUE(peer.Closed());
  EXPECT_THAT(LastEnd(), HasSubstr("SET_VRING_NUM (8): payload of 4 bytes (want 8)"));
}

TEST_F(HostileTest, UnknownRequest_NackedWithUnimplementedOrBroken) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  EXPECT_EQ(peer.Ack(FrontendRequest::kGetInflightFd),
            static_cast<uint64_t>(absl::StatusCode::kUnimplemented));
  peer.Send(FrontendRequest::kSetLogBase, vhost_user::Bytes(uint64_t{0}), {}, 0);
  EXPECT_TRUE(peer.Closed());
  EXPECT_THAT(LastEnd(), HasSubstr("SET_LOG_BASE (6): not served"));
}

TEST_F(HostileTest, RequestBeforeOwner_FailedPrecondition) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Send(FrontendRequest::kSetProtocolFeatures, vhost_user::Bytes(kAck), {}, 0);
  EXPECT_EQ(peer.Ack(FrontendRequest::kSetFeatures, vhost_user::Bytes(Bit(32))),
            static_cast<uint64_t>(absl::StatusCode::kFailedPrecondition));
}

TEST_F(HostileTest, FeaturesNotOffered_Nacked) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  EXPECT_EQ(peer.Ack(FrontendRequest::kSetFeatures,
                     vhost_user::Bytes(Bit(32) | Bit(28) /* indirect descriptors */)),
            static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(peer.Ack(FrontendRequest::kSetProtocolFeatures, vhost_user::Bytes(Bit(14))),
            static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
}

TEST_F(HostileTest, GetVringBaseOfMissingRing_CannotReplySoBroken) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  peer.Send(FrontendRequest::kGetVringBase, vhost_user::Bytes(vhost_user::VringState{9, 0}));
  EXPECT_TRUE(peer.Closed());
  EXPECT_THAT(LastEnd(), HasSubstr("ring 9 does not exist"));
}

TEST_F(HostileTest, GetConfigOutOfRange_EmptyReplyAndConnectionLives) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAllProtocol);
  std::vector<uint8_t> req(12 + 16, 0);
  const vhost_user::ConfigHeader h{250, 16, 0};
  std::memcpy(req.data(), &h, 12);
  peer.Send(FrontendRequest::kGetConfig, req, {}, 0);
  std::optional<Message> reply = peer.Receive();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->payload.size(), 0u) << "GET_CONFIG fails with an empty payload";
  EXPECT_EQ(peer.Get(FrontendRequest::kGetQueueNum), 2u);
}

// --- memory table ---------------------------------------------------------

TEST_F(HostileTest, MemTable_UnsealedMemfd_Refused) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  GuestRam ram(/*sealed=*/false);
  EXPECT_EQ(SetMemTable(peer, {ram.Region()}, {ram.fd()}),
            static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
}

TEST_F(HostileTest, MemTable_FileShorterThanRegion_Refused) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  GuestRam ram(/*sealed=*/true, /*file_size=*/kRamSize / 2);
  EXPECT_EQ(SetMemTable(peer, {ram.Region()}, {ram.fd()}),
            static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
}

TEST_F(HostileTest, MemTable_NotAFileAtAll_Refused) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  Fd efd(eventfd(0, EFD_CLOEXEC));
  EXPECT_EQ(SetMemTable(peer, {{kRamBase.value(), kRamSize, 0x7f0000000000, 0}}, {efd.get()}),
            static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
}

TEST_F(HostileTest, MemTable_FdCountMismatch_Refused) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  GuestRam ram;
  EXPECT_EQ(SetMemTable(peer, {ram.Region()}, {ram.fd(), ram.fd()}),
            static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
}

TEST_F(HostileTest, MemTable_Replaced_RingsMustStillFit) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  StartRing(peer, ram);
  // A new table that leaves the rings outside guest memory is refused...
  vhost_user::MemoryRegion moved = ram.Region();
  moved.userspace_addr += 0x100000000;
  EXPECT_EQ(SetMemTable(peer, {moved}, {ram.fd()}),
            static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
  // ... and the old one still serves.
  FakeDriver driver(ram.host(), kRamBase, kRamSize, kQueueSize, kDesc, kAvail, kUsed);
  std::memcpy(ram.host() + 0x10000, "S\x02", 2);
  driver.Post({{kData, 2, false}, {GuestAddr(kData.value() + 64), 8, true}});
  KickAndSync(peer);
  EXPECT_EQ(driver.used_idx(), 1);
}

// --- rings ----------------------------------------------------------------

TEST_F(HostileTest, VringAddrBeforeMemTable_Refused) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  EXPECT_EQ(peer.Ack(FrontendRequest::kSetVringAddr, vhost_user::Bytes(vhost_user::VringAddr{})),
            static_cast<uint64_t>(absl::StatusCode::kFailedPrecondition));
}

TEST_F(HostileTest, VringOutsideMemory_Refused) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  GuestRam ram;
  ASSERT_EQ(SetMemTable(peer, {ram.Region()}, {ram.fd()}), 0u);
  ASSERT_EQ(
      peer.Ack(FrontendRequest::kSetVringNum, vhost_user::Bytes(vhost_user::VringState{0, 256})),
      0u);
  vhost_user::VringAddr a{};
  a.desc_user_addr = ram.user(kDesc);
  a.avail_user_addr = ram.user(kAvail);
  a.used_user_addr = ram.user(GuestAddr(kRamBase.value() + kRamSize - 64));  // runs past the end
  EXPECT_EQ(peer.Ack(FrontendRequest::kSetVringAddr, vhost_user::Bytes(a)),
            static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
  a.used_user_addr = UINT64_MAX - 8;  // wraps
  EXPECT_EQ(peer.Ack(FrontendRequest::kSetVringAddr, vhost_user::Bytes(a)),
            static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
  a.used_user_addr = ram.user(kUsed) + 2;  // misaligned used ring
  EXPECT_EQ(peer.Ack(FrontendRequest::kSetVringAddr, vhost_user::Bytes(a)),
            static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
  // A used ring that just fits 256 entries at the end of memory...
  a.used_user_addr = ram.user(GuestAddr(kRamBase.value() + kRamSize - 2056));
  EXPECT_EQ(peer.Ack(FrontendRequest::kSetVringAddr, vhost_user::Bytes(a)), 0u);
  // ... does not fit 512: the size is refused and the ring keeps 256.
  EXPECT_EQ(
      peer.Ack(FrontendRequest::kSetVringNum, vhost_user::Bytes(vhost_user::VringState{0, 512})),
      static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
}

TEST_F(HostileTest, KickBeforeRingsSet_IgnoredAndCounted) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  const int kick = kick_.get();
  ASSERT_EQ(peer.Ack(FrontendRequest::kSetVringKick, vhost_user::Bytes(uint64_t{0}), {&kick, 1}),
            0u);
  KickAndSync(peer);
  const GuestStatus s = backend_.Status("vm1");
  EXPECT_EQ(s.stats.rings[0].ignored_kicks, 1u);
  EXPECT_TRUE(s.connected);
  EXPECT_EQ(peer.Get(FrontendRequest::kGetFeatures), Bit(32) | Bit(30) | Bit(0));
}

TEST_F(HostileTest, KickFdNotAnEventfd_Refused) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  Fd rd(pipe_fds[0]), wr(pipe_fds[1]);
  const int fd = rd.get();
  EXPECT_EQ(peer.Ack(FrontendRequest::kSetVringKick, vhost_user::Bytes(uint64_t{0}), {&fd, 1}),
            static_cast<uint64_t>(absl::StatusCode::kInvalidArgument));
}

TEST_F(HostileTest, KickPolling_Unimplemented) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  EXPECT_EQ(peer.Ack(FrontendRequest::kSetVringKick, vhost_user::Bytes(vhost_user::kVringNoFd)),
            static_cast<uint64_t>(absl::StatusCode::kUnimplemented));
}

TEST_F(HostileTest, SetVringNumWhileStarted_Refused) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  StartRing(peer, ram);
  EXPECT_EQ(
      peer.Ack(FrontendRequest::kSetVringNum, vhost_user::Bytes(vhost_user::VringState{0, 4})),
      static_cast<uint64_t>(absl::StatusCode::kFailedPrecondition));
}

TEST_F(HostileTest, DescriptorLoop_ReturnedUnusedAndCounted_ConnectionLives) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  StartRing(peer, ram);
  FakeDriver driver(ram.host(), kRamBase, kRamSize, kQueueSize, kDesc, kAvail, kUsed);
  driver.SetDesc(0, kData.value(), 4, FakeDriver::kNext, 1);
  driver.SetDesc(1, kData.value(), 4, FakeDriver::kNext, 0);
  driver.MakeAvailable(0);
  KickAndSync(peer);
  EXPECT_EQ(driver.used_idx(), 1);
  EXPECT_EQ(driver.used(0).id, 0u);
  EXPECT_EQ(driver.used(0).len, 0u);
  const GuestStatus s = backend_.Status("vm1");
  EXPECT_EQ(s.stats.rings[0].malformed_chains, 1u);
  EXPECT_EQ(s.stats.rings[0].chains, 0u);
  EXPECT_EQ(vm1_.chains(), 0) << "the device never sees a malformed chain";
  EXPECT_TRUE(s.connected);
}

TEST_F(HostileTest, ChainLongerThanQueue_ReturnedUnused) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  StartRing(peer, ram);
  FakeDriver driver(ram.host(), kRamBase, kRamSize, kQueueSize, kDesc, kAvail, kUsed);
  for (uint16_t i = 0; i < kQueueSize; ++i) {  // 0 -> 1 -> ... -> 7 -> 3 -> ...
    driver.SetDesc(i, kData.value(), 1, FakeDriver::kNext, i + 1 < kQueueSize ? i + 1 : 3);
  }
  driver.MakeAvailable(0);
  KickAndSync(peer);
  EXPECT_EQ(driver.used_idx(), 1);
  EXPECT_EQ(driver.used(0).len, 0u);
  EXPECT_EQ(backend_.Status("vm1").stats.rings[0].malformed_chains, 1u);
}

TEST_F(HostileTest, OverflowingLengths_ReturnedUnused) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  StartRing(peer, ram);
  FakeDriver driver(ram.host(), kRamBase, kRamSize, kQueueSize, kDesc, kAvail, kUsed);
  driver.SetDesc(0, UINT64_MAX - 15, 32, 0, 0);  // addr + len wraps past 2^64
  driver.MakeAvailable(0);
  driver.SetDesc(1, kData.value(), 0xffffffff, FakeDriver::kNext, 2);  // lengths sum past 2^32
  driver.SetDesc(2, kData.value(), 0xffffffff, FakeDriver::kWrite, 0);
  driver.MakeAvailable(1);
  std::memcpy(ram.host() + 0x10000, "S\x01", 2);
  driver.SetDesc(3, kData.value(), 2, FakeDriver::kNext, 4);  // and a good one after them
  driver.SetDesc(4, kData.value() + 64, 8, FakeDriver::kWrite, 0);
  driver.MakeAvailable(3);
  KickAndSync(peer);
  ASSERT_EQ(driver.used_idx(), 3);
  EXPECT_EQ(driver.used(0).len, 0u);
  EXPECT_EQ(driver.used(1).len, 0u);
  EXPECT_EQ(driver.used(2).id, 3u);
  EXPECT_EQ(driver.used(2).len, 8u);
  EXPECT_EQ(backend_.Status("vm1").stats.rings[0].malformed_chains, 2u);
}

TEST_F(HostileTest, WrappingIndexes_ServedAcross65535) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  StartRing(peer, ram, /*base=*/65533);
  FakeDriver driver(ram.host(), kRamBase, kRamSize, kQueueSize, kDesc, kAvail, kUsed, 65533);
  std::memcpy(ram.host() + 0x10000, "S\x03", 2);
  for (int i = 0; i < 6; ++i) {
    driver.Post({{kData, 2, false}, {GuestAddr(kData.value() + 64 + 8 * i), 8, true}});
  }
  KickAndSync(peer);
  EXPECT_EQ(driver.used_idx(), 3);  // 65533 + 6
  EXPECT_EQ(vm1_.chains(), 6);
  // GET_VRING_BASE reports the wrapped index.
  peer.Send(FrontendRequest::kGetVringBase, vhost_user::Bytes(vhost_user::VringState{0, 0}));
  std::optional<Message> reply = peer.Receive();
  ASSERT_TRUE(reply && reply->payload.size() == 8);
  vhost_user::VringState base;
  std::memcpy(&base, reply->payload.data(), 8);
  EXPECT_EQ(base.num, 3u);
}

TEST_F(HostileTest, AvailIndexJump_RingCorruptConnectionBrokenErrSignalled) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  StartRing(peer, ram);
  FakeDriver driver(ram.host(), kRamBase, kRamSize, kQueueSize, kDesc, kAvail, kUsed);
  driver.SetAvailIdx(kQueueSize + 3);
  SignalEventFd(kick_.get());
  EXPECT_TRUE(peer.Closed());
  EXPECT_THAT(LastEnd(), HasSubstr("ring 0 is corrupt"));
  uint64_t errs = 0;
  EXPECT_EQ(read(err_.get(), &errs, 8), 8) << "the err eventfd was signalled";
  EXPECT_EQ(vm1_.disconnects(), 1);
  RawPeer other(backend_.Path("vm2"));
  EXPECT_EQ(other.Get(FrontendRequest::kGetFeatures), Bit(32) | Bit(30) | Bit(0));
}

TEST_F(HostileTest, HeadIndexOutOfRange_RingCorruptConnectionBroken) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  StartRing(peer, ram);
  FakeDriver driver(ram.host(), kRamBase, kRamSize, kQueueSize, kDesc, kAvail, kUsed);
  driver.MakeAvailable(0xffff);
  SignalEventFd(kick_.get());
  EXPECT_TRUE(peer.Closed());
  EXPECT_THAT(LastEnd(), HasSubstr("names descriptor 65535"));
}

TEST_F(HostileTest, DisabledRing_BuffersWaitUntilEnabled) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  StartRing(peer, ram);
  ASSERT_EQ(
      peer.Ack(FrontendRequest::kSetVringEnable, vhost_user::Bytes(vhost_user::VringState{0, 0})),
      0u);
  FakeDriver driver(ram.host(), kRamBase, kRamSize, kQueueSize, kDesc, kAvail, kUsed);
  std::memcpy(ram.host() + 0x10000, "S\x01", 2);
  driver.Post({{kData, 2, false}, {GuestAddr(kData.value() + 64), 8, true}});
  KickAndSync(peer);
  EXPECT_EQ(driver.used_idx(), 0);
  EXPECT_EQ(backend_.Status("vm1").stats.rings[0].ignored_kicks, 1u);
  ASSERT_EQ(
      peer.Ack(FrontendRequest::kSetVringEnable, vhost_user::Bytes(vhost_user::VringState{0, 1})),
      0u);
  const absl::Time deadline = absl::Now() + kGuard;
  while (driver.used_idx() == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(2));
  EXPECT_EQ(driver.used_idx(), 1) << "enabling serves what waited, without a kick";
}

// --- rings becoming runnable (VirtioDevice::OnRingStarted) -------------------

// The device is told once a ring runs (started, and enabled where rings
// start disabled), before the reply to the request that made it so: each
// call records whether that reply was already waiting for the peer.
class RingStartedTest : public HostileTest {
 protected:
  void Watch(RawPeer& peer) {
    const int fd = peer.fd();
    backend_.RunInLoop([this, fd] {
      vm1_.SetOnRingStarted([this, fd](uint16_t) {
        pollfd p{fd, POLLIN, 0};
        reply_waiting_.push_back(poll(&p, 1, 0) == 1);
      });
    });
  }
  std::vector<bool> ReplyWaitingAtStarts() {
    return backend_.RunInLoop([this] { return reply_waiting_; });
  }
  // Sends `r` with need_reply and reads its ack only once the device has
  // heard of `starts` ring starts in all (so the peer cannot take the reply
  // before the device's hook looks for it).
  uint64_t AckAfterStarts(RawPeer& peer, FrontendRequest r, std::span<const uint8_t> payload,
                          size_t starts, std::span<const int> fds = {},
                          absl::Duration guard = kGuard) {
    peer.Send(r, payload, fds);
    const absl::Time deadline = absl::Now() + guard;
    while (vm1_.ring_starts().size() < starts && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    EXPECT_EQ(vm1_.ring_starts().size(), starts) << vhost_user::NamedRequest(
        vhost_user::RequestSpace::kFrontend, static_cast<uint32_t>(r));
    std::optional<Message> m = peer.Receive();
    if (!m || m->payload.size() != 8) return ~uint64_t{0};
    uint64_t v;
    std::memcpy(&v, m->payload.data(), 8);
    return v;
  }
  // SET_VRING_NUM, SET_VRING_ADDR (unless !with_addr), SET_VRING_BASE of
  // `ring` (0 or 1) in `ram`.
  void SetUpRing(RawPeer& peer, const GuestRam& ram, uint32_t ring, bool with_addr = true) {
    ASSERT_EQ(peer.Ack(FrontendRequest::kSetVringNum,
                       vhost_user::Bytes(vhost_user::VringState{ring, kQueueSize})),
              0u);
    if (with_addr) {
      ASSERT_EQ(peer.Ack(FrontendRequest::kSetVringAddr, RingAddr(ram, ring)), 0u);
    }
    ASSERT_EQ(
        peer.Ack(FrontendRequest::kSetVringBase, vhost_user::Bytes(vhost_user::VringState{ring, 0})),
        0u);
  }
  std::vector<uint8_t> RingAddr(const GuestRam& ram, uint32_t ring) {
    const uint64_t at = 0x4000 * ring;
    vhost_user::VringAddr a{};
    a.index = ring;
    a.desc_user_addr = ram.user(kDesc) + at;
    a.avail_user_addr = ram.user(kAvail) + at;
    a.used_user_addr = ram.user(kUsed) + at;
    const auto bytes = vhost_user::Bytes(a);
    return {bytes.begin(), bytes.end()};
  }
  static std::vector<uint8_t> Enable(uint32_t ring, uint32_t on = 1) {
    const vhost_user::VringState state{ring, on};  // Bytes() views it: it must outlive them
    const auto bytes = vhost_user::Bytes(state);
    return {bytes.begin(), bytes.end()};
  }
  static std::vector<uint8_t> Index(uint64_t ring) {
    const auto bytes = vhost_user::Bytes(ring);
    return {bytes.begin(), bytes.end()};
  }
  uint64_t SetFile(RawPeer& peer, FrontendRequest r, uint64_t ring, const Fd& fd) {
    const int raw = fd.get();
    return peer.Ack(r, Index(ring), {&raw, 1});
  }
  // Handshake with `protocol_features`, features VERSION_1 and
  // PROTOCOL_FEATURES (so rings start disabled), a memory table, and ring 0
  // set up and given its kick fd: started, but not yet runnable.
  void StartDisabledRing(RawPeer& peer, const GuestRam& ram, uint64_t protocol_features) {
    peer.Handshake(protocol_features);
    ASSERT_EQ(peer.Ack(FrontendRequest::kSetFeatures, vhost_user::Bytes(Bit(32) | Bit(30))), 0u);
    ASSERT_EQ(SetMemTable(peer, {ram.Region()}, {ram.fd()}), 0u);
    SetUpRing(peer, ram, 0);
    ASSERT_EQ(SetFile(peer, FrontendRequest::kSetVringKick, 0, kick_), 0u);
  }

  Fd kick1_ = MakeEventFd(), call1_ = MakeEventFd();
  std::vector<bool> reply_waiting_;  // the loop thread's
};

TEST_F(RingStartedTest, WithProtocolFeatures_OncePerRingAtEnableBeforeItsAck) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  Watch(peer);
  ASSERT_NO_FATAL_FAILURE(StartDisabledRing(peer, ram, kAllProtocol));
  ASSERT_EQ(SetFile(peer, FrontendRequest::kSetVringCall, 0, call_), 0u);
  EXPECT_TRUE(vm1_.ring_starts().empty()) << "started but still disabled: not runnable";

  EXPECT_EQ(AckAfterStarts(peer, FrontendRequest::kSetVringEnable, Enable(0), 1), 0u);
  SetUpRing(peer, ram, 1);
  ASSERT_EQ(SetFile(peer, FrontendRequest::kSetVringKick, 1, kick1_), 0u);
  ASSERT_EQ(SetFile(peer, FrontendRequest::kSetVringCall, 1, call1_), 0u);
  EXPECT_THAT(vm1_.ring_starts(), ::testing::ElementsAre(0));
  EXPECT_EQ(AckAfterStarts(peer, FrontendRequest::kSetVringEnable, Enable(1), 2), 0u);
  // Enabling a running ring again, or a new call fd, starts nothing.
  ASSERT_EQ(peer.Ack(FrontendRequest::kSetVringEnable, Enable(0)), 0u);
  ASSERT_EQ(SetFile(peer, FrontendRequest::kSetVringCall, 0, call_), 0u);
  EXPECT_THAT(vm1_.ring_starts(), ::testing::ElementsAre(0, 1));
  EXPECT_THAT(ReplyWaitingAtStarts(), ::testing::ElementsAre(false, false))
      << "the device ran before the reply went out";
}

TEST_F(RingStartedTest, StoppedOrResetThenStartedAgain_ToldAgain) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  Watch(peer);
  StartRing(peer, ram);
  ASSERT_THAT(vm1_.ring_starts(), ::testing::ElementsAre(0));

  // GET_VRING_BASE stops the ring (it stays enabled): the kick that starts
  // it again makes it runnable.
  peer.Send(FrontendRequest::kGetVringBase, Enable(0, 0));
  ASSERT_TRUE(peer.Receive().has_value());
  SetUpRing(peer, ram, 0);
  EXPECT_THAT(vm1_.ring_starts(), ::testing::ElementsAre(0)) << "stopped";
  const int kick = kick_.get();
  EXPECT_EQ(AckAfterStarts(peer, FrontendRequest::kSetVringKick, Index(0), 2, {&kick, 1}), 0u);
  ASSERT_EQ(peer.Ack(FrontendRequest::kSetVringEnable, Enable(0)), 0u);
  EXPECT_THAT(vm1_.ring_starts(), ::testing::ElementsAre(0, 0));

  // A reset stops and disables every ring; the front-end starts afresh.
  ASSERT_EQ(peer.Ack(FrontendRequest::kResetDevice), 0u);
  ASSERT_EQ(peer.Ack(FrontendRequest::kSetFeatures, vhost_user::Bytes(Bit(32) | Bit(30))), 0u);
  SetUpRing(peer, ram, 0);
  ASSERT_EQ(SetFile(peer, FrontendRequest::kSetVringKick, 0, kick_), 0u);
  EXPECT_THAT(vm1_.ring_starts(), ::testing::ElementsAre(0, 0)) << "disabled by the reset";
  EXPECT_EQ(AckAfterStarts(peer, FrontendRequest::kSetVringEnable, Enable(0), 3), 0u);
  EXPECT_THAT(vm1_.ring_starts(), ::testing::ElementsAre(0, 0, 0));
  EXPECT_THAT(ReplyWaitingAtStarts(), ::testing::Each(false));
}

TEST_F(RingStartedTest, WithoutProtocolFeatures_AtTheRequestThatCompletesTheRing) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  Watch(peer);
  peer.Handshake(kAck);
  ASSERT_EQ(peer.Ack(FrontendRequest::kSetFeatures, vhost_user::Bytes(Bit(32))), 0u);
  ASSERT_EQ(SetMemTable(peer, {ram.Region()}, {ram.fd()}), 0u);
  // Rings are enabled from the start: the kick runs ring 0...
  SetUpRing(peer, ram, 0);
  const int kick = kick_.get();
  EXPECT_EQ(AckAfterStarts(peer, FrontendRequest::kSetVringKick, Index(0), 1, {&kick, 1}), 0u);
  // ... while ring 1, kicked before it had addresses, runs at SET_VRING_ADDR.
  SetUpRing(peer, ram, 1, /*with_addr=*/false);
  ASSERT_EQ(SetFile(peer, FrontendRequest::kSetVringKick, 1, kick1_), 0u);
  EXPECT_THAT(vm1_.ring_starts(), ::testing::ElementsAre(0)) << "ring 1 has no addresses yet";
  EXPECT_EQ(AckAfterStarts(peer, FrontendRequest::kSetVringAddr, RingAddr(ram, 1), 2), 0u);
  EXPECT_THAT(vm1_.ring_starts(), ::testing::ElementsAre(0, 1));
  EXPECT_THAT(ReplyWaitingAtStarts(), ::testing::ElementsAre(false, false));
}

TEST_F(RingStartedTest, SetFeaturesWithoutProtocolFeatures_RunsAStartedRing_DeviceTold) {
  RawPeer peer(backend_.Path("vm1"));
  GuestRam ram;
  Watch(peer);
  ASSERT_NO_FATAL_FAILURE(StartDisabledRing(peer, ram, kAck));
  EXPECT_TRUE(vm1_.ring_starts().empty()) << "started but still disabled: not runnable";
  // Features acked again without bit 30: rings are enabled from now on, so
  // this request makes ring 0 runnable.
  EXPECT_EQ(AckAfterStarts(peer, FrontendRequest::kSetFeatures, Index(Bit(32)), 1,
                           /*fds=*/{}, /*guard=*/absl::Seconds(5)),
            0u);
  FakeDriver driver(ram.host(), kRamBase, kRamSize, kQueueSize, kDesc, kAvail, kUsed);
  std::memcpy(ram.host() + 0x10000, "S\x01", 2);
  driver.Post({{kData, 2, false}, {GuestAddr(kData.value() + 64), 8, true}});
  KickAndSync(peer);
  EXPECT_EQ(driver.used_idx(), 1) << "the ring runs";
  EXPECT_THAT(vm1_.ring_starts(), ::testing::ElementsAre(0))
      << "a ring that runs was never announced to the device";
}

// --- back-end requests ------------------------------------------------------

TEST_F(HostileTest, ShmemMapNeverAnswered_TimesOutAndBreaksOnce) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAllProtocol);
  Fd ours = GiveBackendSocket(peer);
  const absl::Status s = DeviceMaps();  // nobody answers on `ours`
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(s.message(), HasSubstr("did not answer SHMEM_MAP (9)"));
  EXPECT_TRUE(peer.Closed());
  EXPECT_THAT(LastEnd(), HasSubstr("did not answer"));
  EXPECT_EQ(vm1_.disconnects(), 1);
}

TEST_F(HostileTest, ShmemMapAnsweredWithGarbage_Broken) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAllProtocol);
  Fd ours = GiveBackendSocket(peer);
  // A wrong reply, there before the request: request 10 instead of 9.
  const vhost_user::MsgHeader h{10, vhost_user::kVersion | vhost_user::kFlagReply, 8};
  char reply[20] = {};
  std::memcpy(reply, &h, 12);
  ASSERT_EQ(write(ours.get(), reply, sizeof(reply)), 20);
  const absl::Status s = DeviceMaps();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(s.message(), HasSubstr("not the u64 reply due"));
  EXPECT_TRUE(peer.Closed());
}

TEST_F(HostileTest, ShmemMapWithoutBackendSocket_FailedPrecondition) {
  RawPeer peer(backend_.Path("vm1"));
  peer.Handshake(kAck);
  const absl::Status s = DeviceMaps();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(backend_.Status("vm1").connected);
}

// --- sockets --------------------------------------------------------------

TEST_F(HostileTest, SecondFrontendWhileConnected_RefusedFirstKeepsServing) {
  RawPeer first(backend_.Path("vm1"));
  EXPECT_EQ(first.Get(FrontendRequest::kGetFeatures), Bit(32) | Bit(30) | Bit(0));
  RawPeer second(backend_.Path("vm1"));
  EXPECT_TRUE(second.Closed());
  EXPECT_EQ(backend_.Status("vm1").refused, 1u);
  EXPECT_EQ(first.Get(FrontendRequest::kGetFeatures), Bit(32) | Bit(30) | Bit(0));
}

TEST_F(HostileTest, FrontendThatHungUp_ReplacedByTheNextOne) {
  {
    RawPeer first(backend_.Path("vm1"));
    EXPECT_EQ(first.Get(FrontendRequest::kGetFeatures), Bit(32) | Bit(30) | Bit(0));
  }
  RawPeer second(backend_.Path("vm1"));
  EXPECT_EQ(second.Get(FrontendRequest::kGetFeatures), Bit(32) | Bit(30) | Bit(0));
  EXPECT_EQ(vm1_.disconnects(), 1);
  EXPECT_EQ(vm1_.connects(), 2);
}

TEST(BackendSocketTest, StaleSocketRemovedOtherFilesAndLiveListenersRespected) {
  BackendThread backend;
  EchoSumDevice a, b, c;
  // A stale socket: bound, nobody listening.
  {
    Fd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, backend.Path("stale").c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  EXPECT_TRUE(backend.AddGuest("stale", a).ok());
  // A regular file is never removed.
  { Fd f(open(backend.Path("file").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)); }
  EXPECT_EQ(backend.AddGuest("file", b).code(), absl::StatusCode::kFailedPrecondition);
  // A live listener (our own "stale" endpoint) is not stolen.
  EXPECT_EQ(backend.server().AddGuest({"thief", backend.Path("stale")}, c).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(backend.AddGuest("stale", c).code(), absl::StatusCode::kInvalidArgument)
      << "duplicate name";
}

class BadDevice : public EchoSumDevice {
 public:
  explicit BadDevice(uint64_t features) : features_(features) {}
  uint64_t device_features() const override { return features_; }

 private:
  uint64_t features_;
};

TEST(BackendSocketTest, DeviceOfferingTransportBits_Refused) {
  BackendThread backend;
  for (int bit : {28, 29, 30, 32, 34}) {
    BadDevice d(Bit(bit));
    EXPECT_EQ(backend.AddGuest("bad" + std::to_string(bit), d).code(),
              absl::StatusCode::kInvalidArgument)
        << "bit " << bit;
  }
}

}  // namespace
}  // namespace rmem::virtio_rmem

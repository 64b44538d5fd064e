// VhostUserFrontend against the scripted test back-end: the exact messages
// of Connect, Start and Stop, acks, config access, back-end SHMEM requests
// reaching the mapper, and disconnects reported as Unavailable.
#include "vmm/vhost_user/frontend.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstring>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/vmm/scripted_backend.h"

namespace rmem::vmm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::Received;
using testing::ScriptedBackend;
using testing::ScriptedBackendConfig;
using vhost_user::FrontendRequest;

constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }
constexpr uint64_t kVersion1 = Bit(32);
constexpr GuestAddr kRamBase(0x40000000);

uint32_t Code(FrontendRequest r) { return static_cast<uint32_t>(r); }

std::vector<uint32_t> Codes(const std::vector<Received>& got) {
  std::vector<uint32_t> out;
  for (const Received& r : got) out.push_back(r.request);
  return out;
}

template <typename T>
T PayloadAs(const Received& r) {
  T v{};  // a short payload leaves the rest zero; callers check sizes that matter
  std::memcpy(&v, r.payload.data(), std::min(sizeof(T), r.payload.size()));
  return v;
}

GuestMemory MakeRam() {
  absl::StatusOr<GuestMemory> ram = GuestMemory::Create(kRamBase, 1 << 20);
  EXPECT_TRUE(ram.ok());
  return std::move(*ram);
}

constexpr uint64_t kAllOurs = Bit(vhost_user::kProtocolMq) | Bit(vhost_user::kProtocolReplyAck) |
                              Bit(vhost_user::kProtocolBackendReq) |
                              Bit(vhost_user::kProtocolConfig) |
                              Bit(vhost_user::kProtocolResetDevice) |
                              Bit(vhost_user::kProtocolShmem);

TEST(VhostUserFrontendTest, Connect_NegotiatesInSpecOrder) {
  ScriptedBackendConfig config;
  config.features = kVersion1 | Bit(vhost_user::kFProtocolFeatures) | Bit(vhost_user::kFLogAll);
  config.protocol_features = kAllOurs | Bit(1) /* LOG_SHMFD: not ours */;
  config.queue_num = 2;
  config.shmem_sizes = {0, 1 << 20};
  ScriptedBackend backend(config);
  GuestMemory ram = MakeRam();
  {
    absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
        VhostUserFrontend::Connect(backend.path(), 26, ram, nullptr, 1);
    ASSERT_TRUE(fe.ok()) << fe.status();
    EXPECT_EQ((*fe)->device_features(), kVersion1);
    EXPECT_EQ((*fe)->protocol_features(), kAllOurs);
    EXPECT_EQ((*fe)->num_queues(), 2);
    ASSERT_EQ((*fe)->shm_regions().size(), 1u);
    EXPECT_EQ((*fe)->shm_regions()[0].id, 1);
    EXPECT_EQ((*fe)->shm_regions()[0].size, 1u << 20);
  }
  const std::vector<Received> got = backend.Finish();
  EXPECT_THAT(Codes(got), ElementsAre(Code(FrontendRequest::kGetFeatures),
                                      Code(FrontendRequest::kGetProtocolFeatures),
                                      Code(FrontendRequest::kSetProtocolFeatures),
                                      Code(FrontendRequest::kGetQueueNum),
                                      Code(FrontendRequest::kSetOwner),
                                      Code(FrontendRequest::kSetBackendReqFd),
                                      Code(FrontendRequest::kGetShmemConfig)));
  EXPECT_EQ(PayloadAs<uint64_t>(got[2]), kAllOurs);
  EXPECT_EQ(got[2].flags & vhost_user::kFlagNeedReply, 0u);  // REPLY_ACK not yet in force
  EXPECT_NE(got[4].flags & vhost_user::kFlagNeedReply, 0u);  // SET_OWNER acked
  EXPECT_EQ(got[5].num_fds, 1u);
}

TEST(VhostUserFrontendTest, StartStop_SendsRingSetupThenStopsRings) {
  ScriptedBackendConfig config;
  config.protocol_features = kAllOurs;
  ScriptedBackend backend(config);
  GuestMemory ram = MakeRam();
  Fd kick(eventfd(0, EFD_CLOEXEC)), call(eventfd(0, EFD_CLOEXEC));
  {
    absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
        VhostUserFrontend::Connect(backend.path(), 2, ram, nullptr, 1);
    ASSERT_TRUE(fe.ok()) << fe.status();
    VirtqueueSetup q;
    q.index = 0;
    q.size = 8;
    q.desc = GuestAddr(0x40001000);
    q.driver = GuestAddr(0x40002000);
    q.device = GuestAddr(0x40003000);
    q.kick_fd = kick.get();
    q.call_fd = call.get();
    ASSERT_TRUE((*fe)->Start(kVersion1, {&q, 1}).ok());
    EXPECT_EQ((*fe)->Start(kVersion1, {&q, 1}).code(), absl::StatusCode::kFailedPrecondition);
    ASSERT_TRUE((*fe)->Stop().ok());
  }
  std::vector<Received> got = backend.Finish();
  // Skip the Connect handshake.
  while (!got.empty() && got.front().request != Code(FrontendRequest::kSetFeatures)) {
    got.erase(got.begin());
  }
  ASSERT_THAT(Codes(got),
              ElementsAre(Code(FrontendRequest::kSetFeatures), Code(FrontendRequest::kSetMemTable),
                          Code(FrontendRequest::kSetVringNum), Code(FrontendRequest::kSetVringAddr),
                          Code(FrontendRequest::kSetVringBase), Code(FrontendRequest::kSetVringKick),
                          Code(FrontendRequest::kSetVringCall),
                          Code(FrontendRequest::kSetVringEnable),
                          Code(FrontendRequest::kGetVringBase),
                          Code(FrontendRequest::kResetDevice)));
  EXPECT_EQ(PayloadAs<uint64_t>(got[0]), kVersion1 | Bit(vhost_user::kFProtocolFeatures));
  // One region: the whole of RAM, with its memfd.
  ASSERT_EQ(got[1].payload.size(), 8u + 32u);
  EXPECT_EQ(got[1].num_fds, 1u);
  const auto table = PayloadAs<vhost_user::MemoryTable>(got[1]);
  EXPECT_EQ(table.nregions, 1u);
  EXPECT_EQ(table.regions[0].guest_phys_addr, kRamBase.value());
  EXPECT_EQ(table.regions[0].memory_size, 1u << 20);
  EXPECT_EQ(table.regions[0].userspace_addr, reinterpret_cast<uint64_t>(ram.host_base()));
  EXPECT_EQ(table.regions[0].mmap_offset, 0u);
  const auto num = PayloadAs<vhost_user::VringState>(got[2]);
  EXPECT_EQ(num.num, 8u);
  const auto addr = PayloadAs<vhost_user::VringAddr>(got[3]);
  const uint64_t host = reinterpret_cast<uint64_t>(ram.host_base());
  EXPECT_EQ(addr.desc_user_addr, host + 0x1000);
  EXPECT_EQ(addr.avail_user_addr, host + 0x2000);
  EXPECT_EQ(addr.used_user_addr, host + 0x3000);
  EXPECT_EQ(PayloadAs<vhost_user::VringState>(got[4]).num, 0u);
  EXPECT_EQ(PayloadAs<uint64_t>(got[5]), 0u);
  EXPECT_EQ(got[5].num_fds, 1u);
  EXPECT_EQ(got[6].num_fds, 1u);
  EXPECT_EQ(PayloadAs<vhost_user::VringState>(got[7]).num, 1u);
  for (size_t i : {0, 1, 2, 3, 4, 5, 6, 7, 9}) {
    EXPECT_NE(got[i].flags & vhost_user::kFlagNeedReply, 0u) << "message " << i;
  }
  EXPECT_EQ(got[8].flags & vhost_user::kFlagNeedReply, 0u);  // GET_VRING_BASE has a reply
}

TEST(VhostUserFrontendTest, NoProtocolFeatures_RingsEnabledWithoutMessageAndConfigIsZeros) {
  ScriptedBackendConfig config;
  config.features = kVersion1;
  ScriptedBackend backend(config);
  GuestMemory ram = MakeRam();
  Fd kick(eventfd(0, EFD_CLOEXEC)), call(eventfd(0, EFD_CLOEXEC));
  {
    absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
        VhostUserFrontend::Connect(backend.path(), 2, ram, nullptr, 3);
    ASSERT_TRUE(fe.ok()) << fe.status();
    EXPECT_EQ((*fe)->num_queues(), 3);
    uint8_t buf[4] = {1, 2, 3, 4};
    EXPECT_EQ((*fe)->ReadConfig(0, buf).code(), absl::StatusCode::kUnimplemented);
    EXPECT_THAT(buf, ElementsAre(0, 0, 0, 0));
    VirtqueueSetup q{2, 4, GuestAddr(0x40001000), GuestAddr(0x40002000), GuestAddr(0x40003000),
                     kick.get(), call.get()};
    ASSERT_TRUE((*fe)->Start(kVersion1, {&q, 1}).ok());
    ASSERT_TRUE((*fe)->Stop().ok());
  }
  const std::vector<Received> got = backend.Finish();
  EXPECT_THAT(Codes(got),
              ElementsAre(Code(FrontendRequest::kGetFeatures), Code(FrontendRequest::kSetOwner),
                          Code(FrontendRequest::kSetFeatures), Code(FrontendRequest::kSetMemTable),
                          Code(FrontendRequest::kSetVringNum), Code(FrontendRequest::kSetVringAddr),
                          Code(FrontendRequest::kSetVringBase), Code(FrontendRequest::kSetVringKick),
                          Code(FrontendRequest::kSetVringCall),
                          Code(FrontendRequest::kGetVringBase)));
  for (const Received& r : got) EXPECT_EQ(r.flags & vhost_user::kFlagNeedReply, 0u);
  EXPECT_EQ(PayloadAs<uint64_t>(got[2]), kVersion1);  // no bit 30: it was not offered
  EXPECT_EQ(PayloadAs<uint64_t>(got[7]), 2u);          // ring 2
}

TEST(VhostUserFrontendTest, Start_BackendNacks_FailedPreconditionNamingRequest) {
  ScriptedBackendConfig config;
  config.protocol_features = Bit(vhost_user::kProtocolReplyAck);
  config.nack_request = Code(FrontendRequest::kSetMemTable);
  ScriptedBackend backend(config);
  GuestMemory ram = MakeRam();
  absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
      VhostUserFrontend::Connect(backend.path(), 2, ram, nullptr, 1);
  ASSERT_TRUE(fe.ok()) << fe.status();
  const absl::Status s = (*fe)->Start(kVersion1, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("refused SET_MEM_TABLE"));
}

TEST(VhostUserFrontendTest, Start_RingOutsideRam_InvalidArgumentAndNothingSent) {
  ScriptedBackend backend(ScriptedBackendConfig{});
  GuestMemory ram = MakeRam();
  {
    absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
        VhostUserFrontend::Connect(backend.path(), 2, ram, nullptr, 1);
    ASSERT_TRUE(fe.ok()) << fe.status();
    VirtqueueSetup q{0, 256, GuestAddr(0x40001000), GuestAddr(0x40002000),
                     GuestAddr(0x400ffff0) /* used ring runs past RAM */, -1, -1};
    const absl::Status s = (*fe)->Start(kVersion1, {&q, 1});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("device area"));
    q.device = GuestAddr(0x40003000);
    EXPECT_EQ((*fe)->Start(Bit(33), {&q, 1}).code(), absl::StatusCode::kInvalidArgument);
    q.index = 1;
    EXPECT_EQ((*fe)->Start(kVersion1, {&q, 1}).code(), absl::StatusCode::kInvalidArgument);
  }
  for (const Received& r : backend.Finish()) {
    EXPECT_NE(r.request, Code(FrontendRequest::kSetFeatures));
  }
}

TEST(VhostUserFrontendTest, Config_ReadAndWriteGoThroughGetSetConfig) {
  ScriptedBackendConfig config;
  config.protocol_features = Bit(vhost_user::kProtocolConfig);
  for (int i = 0; i < 60; ++i) config.config.push_back(static_cast<uint8_t>(i));
  ScriptedBackend backend(config);
  GuestMemory ram = MakeRam();
  {
    absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
        VhostUserFrontend::Connect(backend.path(), 2, ram, nullptr, 1);
    ASSERT_TRUE(fe.ok()) << fe.status();
    uint8_t buf[4];
    ASSERT_TRUE((*fe)->ReadConfig(8, buf).ok());
    EXPECT_THAT(buf, ElementsAre(8, 9, 10, 11));
    const uint8_t w[2] = {0xaa, 0xbb};
    ASSERT_TRUE((*fe)->WriteConfig(20, w).ok());
    uint8_t big[250];
    EXPECT_EQ((*fe)->ReadConfig(10, big).code(), absl::StatusCode::kInvalidArgument);
  }
  const std::vector<Received> got = backend.Finish();
  ASSERT_GE(got.size(), 2u);
  const Received& set = got.back();
  ASSERT_EQ(set.request, Code(FrontendRequest::kSetConfig));
  const auto h = PayloadAs<vhost_user::ConfigHeader>(set);
  EXPECT_EQ(h.offset, 20u);
  EXPECT_EQ(h.size, 2u);
  ASSERT_EQ(set.payload.size(), 14u);
  EXPECT_EQ(set.payload[12], 0xaa);
}

TEST(VhostUserFrontendTest, BackendDisconnectsMidStart_UnavailableAndStaysBroken) {
  ScriptedBackendConfig config;
  config.protocol_features = Bit(vhost_user::kProtocolReplyAck);
  config.disconnect_on = Code(FrontendRequest::kSetVringAddr);
  ScriptedBackend backend(config);
  GuestMemory ram = MakeRam();
  Fd kick(eventfd(0, EFD_CLOEXEC)), call(eventfd(0, EFD_CLOEXEC));
  absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
      VhostUserFrontend::Connect(backend.path(), 2, ram, nullptr, 1);
  ASSERT_TRUE(fe.ok()) << fe.status();
  VirtqueueSetup q{0, 8, GuestAddr(0x40001000), GuestAddr(0x40002000), GuestAddr(0x40003000),
                   kick.get(), call.get()};
  const absl::Status s = (*fe)->Start(kVersion1, {&q, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("vhost-user backend ", backend.path(),
                                                  " disconnected")));
  EXPECT_THAT(s.message(), HasSubstr("SET_VRING_ADDR"));
  EXPECT_EQ((*fe)->Stop().code(), absl::StatusCode::kUnavailable);
  uint8_t buf[1];
  EXPECT_EQ((*fe)->ReadConfig(0, buf).code(), absl::StatusCode::kUnavailable);
}

TEST(VhostUserFrontendTest, Connect_BackendHangsUpAtOnce_Unavailable) {
  ScriptedBackendConfig config;
  config.disconnect_on = Code(FrontendRequest::kGetFeatures);
  ScriptedBackend backend(config);
  GuestMemory ram = MakeRam();
  absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
      VhostUserFrontend::Connect(backend.path(), 2, ram, nullptr, 1);
  EXPECT_EQ(fe.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(fe.status().message(), HasSubstr("GET_FEATURES"));
}

TEST(VhostUserFrontendTest, Connect_NobodyListening_NotFoundAfterRetrying) {
  GuestMemory ram = MakeRam();
  absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
      VhostUserFrontend::Connect("/tmp/rmem-vu-no-such-socket", 2, ram, nullptr, 1);
  EXPECT_EQ(fe.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(fe.status().message(), HasSubstr("rmem-vu-no-such-socket"));
}

// Records SHMEM calls and answers with a chosen verdict.
class RecordingMapper : public ShmemMapper {
 public:
  struct Call {
    bool map;
    uint8_t shmid;
    ino_t inode;
    uint64_t fd_offset, shm_offset, len;
    bool writable;
  };
  absl::Status Map(uint8_t shmid, int fd, uint64_t fd_offset, uint64_t shm_offset, uint64_t len,
                   bool writable) override {
    struct stat st {};
    fstat(fd, &st);
    absl::MutexLock lock(&mu);
    calls.push_back({true, shmid, st.st_ino, fd_offset, shm_offset, len, writable});
    return verdict;
  }
  absl::Status Unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len) override {
    absl::MutexLock lock(&mu);
    calls.push_back({false, shmid, 0, 0, shm_offset, len, false});
    return verdict;
  }
  absl::Mutex mu;
  std::vector<Call> calls;
  absl::Status verdict;
};

uint64_t RoundTrip(vhost_user::Channel& ch, uint32_t request, const vhost_user::ShmemMapMsg& m,
                   int fd) {
  const vhost_user::MsgHeader h{request, vhost_user::kVersion | vhost_user::kFlagNeedReply,
                                sizeof(m)};
  const int fds[] = {fd};
  EXPECT_TRUE(ch.Send(h, {reinterpret_cast<const uint8_t*>(&m), sizeof(m)},
                      fd >= 0 ? std::span<const int>(fds) : std::span<const int>())
                  .ok());
  absl::StatusOr<vhost_user::Message> reply = ch.Receive("the reply");
  EXPECT_TRUE(reply.ok()) << reply.status();
  if (!reply.ok()) return ~uint64_t{0};
  EXPECT_EQ(reply->header.request, request);
  EXPECT_NE(reply->header.flags & vhost_user::kFlagReply, 0u);
  uint64_t v = ~uint64_t{0};
  EXPECT_EQ(reply->payload.size(), 8u);
  std::memcpy(&v, reply->payload.data(), std::min<size_t>(8, reply->payload.size()));
  return v;
}

TEST(VhostUserFrontendTest, BackendShmemRequests_ReachMapperAndReplyCarriesVerdict) {
  ScriptedBackendConfig config;
  config.protocol_features = Bit(vhost_user::kProtocolBackendReq) |
                             Bit(vhost_user::kProtocolReplyAck) |
                             Bit(vhost_user::kProtocolShmem);
  config.shmem_sizes = {1 << 20};
  ScriptedBackend backend(config);
  GuestMemory ram = MakeRam();
  RecordingMapper mapper;
  absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
      VhostUserFrontend::Connect(backend.path(), 26, ram, &mapper, 1);
  ASSERT_TRUE(fe.ok()) << fe.status();
  std::unique_ptr<vhost_user::Channel> ch = backend.TakeBackendChannel();
  ASSERT_NE(ch, nullptr);
  (*fe)->StartServing();

  Fd file(memfd_create("shm-test", MFD_CLOEXEC));
  struct stat st {};
  fstat(file.get(), &st);
  vhost_user::ShmemMapMsg m;
  m.shmid = 0;
  m.fd_offset = 0x2000;
  m.shm_offset = 0x10000;
  m.len = 0x3000;
  m.flags = vhost_user::kShmemMapReadWrite;
  EXPECT_EQ(RoundTrip(*ch, static_cast<uint32_t>(vhost_user::BackendRequest::kShmemMap), m,
                      file.get()),
            0u);
  {
    absl::MutexLock lock(&mapper.mu);
    mapper.verdict = absl::ResourceExhaustedError("full");
  }
  m.flags = 0;
  EXPECT_EQ(RoundTrip(*ch, static_cast<uint32_t>(vhost_user::BackendRequest::kShmemMap), m,
                      file.get()),
            static_cast<uint64_t>(absl::StatusCode::kResourceExhausted));
  // SHMEM_MAP without its fd never reaches the mapper.
  EXPECT_NE(RoundTrip(*ch, static_cast<uint32_t>(vhost_user::BackendRequest::kShmemMap), m, -1),
            0u);
  // An unknown request is refused and the channel keeps going.
  EXPECT_NE(RoundTrip(*ch, 77, m, -1), 0u);
  {
    absl::MutexLock lock(&mapper.mu);
    mapper.verdict = absl::OkStatus();
  }
  EXPECT_EQ(RoundTrip(*ch, static_cast<uint32_t>(vhost_user::BackendRequest::kShmemUnmap), m, -1),
            0u);

  absl::MutexLock lock(&mapper.mu);
  ASSERT_EQ(mapper.calls.size(), 3u);
  const RecordingMapper::Call& a = mapper.calls[0];
  EXPECT_TRUE(a.map);
  EXPECT_EQ(a.shmid, 0);
  EXPECT_EQ(a.inode, st.st_ino);
  EXPECT_EQ(a.fd_offset, 0x2000u);
  EXPECT_EQ(a.shm_offset, 0x10000u);
  EXPECT_EQ(a.len, 0x3000u);
  EXPECT_TRUE(a.writable);
  EXPECT_FALSE(mapper.calls[1].writable);
  EXPECT_FALSE(mapper.calls[2].map);
  EXPECT_EQ(mapper.calls[2].shm_offset, 0x10000u);
  EXPECT_EQ(mapper.calls[2].len, 0x3000u);
}

TEST(VhostUserFrontendTest, Destruction_JoinsBackendThreadWhileBackendStillConnected) {
  ScriptedBackendConfig config;
  config.protocol_features = Bit(vhost_user::kProtocolBackendReq);
  ScriptedBackend backend(config);
  GuestMemory ram = MakeRam();
  absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
      VhostUserFrontend::Connect(backend.path(), 2, ram, nullptr, 1);
  ASSERT_TRUE(fe.ok()) << fe.status();
  std::unique_ptr<vhost_user::Channel> ch = backend.TakeBackendChannel();
  ASSERT_NE(ch, nullptr);
  (*fe)->StartServing();
  fe->reset();  // must not hang although `ch` is still open
}

TEST(VhostUserFrontendTest, BackendRequests_WaitUntilStarted) {
  ScriptedBackendConfig config;
  config.protocol_features = Bit(vhost_user::kProtocolBackendReq) |
                             Bit(vhost_user::kProtocolShmem);
  config.shmem_sizes = {1 << 20};
  ScriptedBackend backend(config);
  GuestMemory ram = MakeRam();
  RecordingMapper mapper;
  absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
      VhostUserFrontend::Connect(backend.path(), 26, ram, &mapper, 1);
  ASSERT_TRUE(fe.ok()) << fe.status();
  std::unique_ptr<vhost_user::Channel> ch = backend.TakeBackendChannel();
  ASSERT_NE(ch, nullptr);
  vhost_user::ShmemMapMsg m;
  m.len = 0x1000;
  std::thread early([&] {
    EXPECT_EQ(RoundTrip(*ch, static_cast<uint32_t>(vhost_user::BackendRequest::kShmemUnmap), m,
                        -1),
              0u);
  });
  absl::SleepFor(absl::Milliseconds(200));
  {
    absl::MutexLock lock(&mapper.mu);
    EXPECT_TRUE(mapper.calls.empty());  // not served before the VMM is ready
  }
  (*fe)->StartServing();
  early.join();
  absl::MutexLock lock(&mapper.mu);
  EXPECT_EQ(mapper.calls.size(), 1u);
}

TEST(VhostUserFrontendTest, BackendHangUp_IsReportedOnTheFailureFd) {
  ScriptedBackendConfig config;
  config.protocol_features = Bit(vhost_user::kProtocolConfig);
  config.config = std::vector<uint8_t>(8, 0);
  config.disconnect_on = Code(FrontendRequest::kGetConfig);
  ScriptedBackend backend(config);
  GuestMemory ram = MakeRam();
  absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
      VhostUserFrontend::Connect(backend.path(), 2, ram, nullptr, 1);
  ASSERT_TRUE(fe.ok()) << fe.status();
  (*fe)->StartServing();
  pollfd failure{(*fe)->failure_fd(), POLLIN, 0};
  EXPECT_EQ(poll(&failure, 1, 100), 0);  // healthy: nothing to say
  uint8_t data[4];
  EXPECT_EQ((*fe)->ReadConfig(0, data).code(), absl::StatusCode::kUnavailable);  // hangs up
  EXPECT_EQ(poll(&failure, 1, 5000), 1);
}

}  // namespace
}  // namespace rmem::vmm

// VhostUserFrontend against the scripted test back-end: the exact messages
// of Connect, Start and Stop, acks, config access, back-end SHMEM requests
// reaching the mapper, disconnects reported as Unavailable, and reconnects
// after a hang-up (the back-end restarted in place at the same path).
#include "vmm/vhost_user/frontend.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <thread>

#include "absl/synchronization/notification.h"
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

// `set_mem_table` has one region, the whole of `ram` (from MakeRam), and its
// memfd.
void ExpectWholeRam(const Received& set_mem_table, const GuestMemory& ram) {
  SCOPED_TRACE("SET_MEM_TABLE");
  EXPECT_EQ(set_mem_table.num_fds, 1u);
  const auto table = PayloadAs<vhost_user::MemoryTable>(set_mem_table);
  EXPECT_EQ(table.nregions, 1u);
  EXPECT_EQ(table.regions[0].guest_phys_addr, kRamBase.value());
  EXPECT_EQ(table.regions[0].memory_size, 1u << 20);
  EXPECT_EQ(table.regions[0].userspace_addr, reinterpret_cast<uint64_t>(ram.host_base()));
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
  ExpectWholeRam(got[1], ram);
  EXPECT_EQ(PayloadAs<vhost_user::MemoryTable>(got[1]).regions[0].mmap_offset, 0u);
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

// Records SHMEM calls and answers with a chosen verdict. `events` is one
// ordered log of map, unmap, suspend and resume, into which a scripted
// back-end may write the requests it gets (Note).
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
    events.push_back("map");
    return verdict;
  }
  absl::Status Unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len) override {
    absl::MutexLock lock(&mu);
    calls.push_back({false, shmid, 0, 0, shm_offset, len, false});
    events.push_back("unmap");
    return verdict;
  }
  void Suspend() override { Note("suspend"); }
  void Resume() override { Note("resume"); }
  void Note(std::string what) {
    absl::MutexLock lock(&mu);
    events.push_back(std::move(what));
  }
  std::vector<std::string> Events() {
    absl::MutexLock lock(&mu);
    return events;
  }
  absl::Mutex mu;
  std::vector<Call> calls;
  std::vector<std::string> events;
  absl::Status verdict;
};

// A back-end request with need_reply: the u64 in its reply (~0 if none came
// within `guard`).
uint64_t RoundTrip(vhost_user::Channel& ch, uint32_t request, const vhost_user::ShmemMapMsg& m,
                   int fd, absl::Duration guard = absl::Seconds(20)) {
  const vhost_user::MsgHeader h{request, vhost_user::kVersion | vhost_user::kFlagNeedReply,
                                sizeof(m)};
  const int fds[] = {fd};
  EXPECT_TRUE(ch.Send(h, {reinterpret_cast<const uint8_t*>(&m), sizeof(m)},
                      fd >= 0 ? std::span<const int>(fds) : std::span<const int>())
                  .ok());
  pollfd p{ch.fd(), POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(guard))) != 1) {
    ADD_FAILURE() << "no reply to back-end request " << request << " within " << guard;
    return ~uint64_t{0};
  }
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

// --- reconnect --------------------------------------------------------------

constexpr absl::Duration kGuard = absl::Seconds(20);  // hang guard, never a measurement

// Waits for `done` (up to kGuard).
template <typename F>
bool Eventually(F done) {
  const absl::Time deadline = absl::Now() + kGuard;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

bool Readable(int fd, absl::Duration wait = absl::ZeroDuration()) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait))) == 1;
}

// A non-blocking eventfd's count, drained (0 if it was not signalled).
uint64_t Drain(int fd) {
  uint64_t v = 0;
  return read(fd, &v, sizeof(v)) == static_cast<ssize_t>(sizeof(v)) ? v : 0;
}

Fd MakeEventFd() { return Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }

// Where the driver says how many requests were answered: the used ring's
// idx, after its flags.
void SetUsedIdx(const GuestMemory& ram, GuestAddr device_area, uint16_t idx) {
  std::memcpy(ram.Slice(device_area, 4)->data() + 2, &idx, sizeof(idx));
}

// A device using all we negotiate: what the back-end that comes back must
// offer again.
ScriptedBackendConfig FullDevice() {
  ScriptedBackendConfig config;
  config.protocol_features = kAllOurs;
  config.queue_num = 2;
  config.shmem_sizes = {1 << 20};
  config.config = {1, 2, 3, 4};
  return config;
}

std::vector<uint32_t> HandshakeCodes() {
  return {Code(FrontendRequest::kGetFeatures),  Code(FrontendRequest::kGetProtocolFeatures),
          Code(FrontendRequest::kSetProtocolFeatures), Code(FrontendRequest::kGetQueueNum),
          Code(FrontendRequest::kSetOwner), Code(FrontendRequest::kSetBackendReqFd),
          Code(FrontendRequest::kGetShmemConfig)};
}

std::vector<uint32_t> RingCodes() {
  return {Code(FrontendRequest::kSetVringNum),  Code(FrontendRequest::kSetVringAddr),
          Code(FrontendRequest::kSetVringBase), Code(FrontendRequest::kSetVringKick),
          Code(FrontendRequest::kSetVringCall), Code(FrontendRequest::kSetVringEnable)};
}

// What a back-end that comes back hears while `rings` rings were running:
// the handshake, the features and the memory table, then each ring set up
// again.
std::vector<uint32_t> RestartCodes(int rings) {
  std::vector<uint32_t> want = HandshakeCodes();
  want.push_back(Code(FrontendRequest::kSetFeatures));
  want.push_back(Code(FrontendRequest::kSetMemTable));
  for (int ring = 0; ring < rings; ++ring) {
    for (uint32_t code : RingCodes()) want.push_back(code);
  }
  return want;
}

const char* Name(uint32_t request) {
  return vhost_user::RequestName(vhost_user::RequestSpace::kFrontend, request);
}

// A back-end hook that writes each request into the mapper's log, so that
// one log orders the back-end's requests against Suspend, Map and Resume.
testing::BeforeReply LogInto(RecordingMapper& mapper) {
  return [&mapper](const Received& r, int) { mapper.Note(Name(r.request)); };
}

std::unique_ptr<VhostUserFrontend> ConnectReconnecting(const std::string& path,
                                                       const GuestMemory& ram,
                                                       ShmemMapper* mapper,
                                                       absl::Duration timeout) {
  absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
      VhostUserFrontend::Connect(path, 26, ram, mapper, 1);
  EXPECT_TRUE(fe.ok()) << fe.status();
  if (!fe.ok()) return nullptr;
  (*fe)->SetReconnectTimeout(timeout);
  (*fe)->StartServing();
  return *std::move(fe);
}

// Where each reconnect test starts: the first back-end (a FullDevice), the
// guest's RAM, a mapper that records, ring 0 with its eventfds, and a
// frontend connected to that back-end that reconnects for up to `timeout`
// (null if it could not connect: tests check). A test declares it first, so
// the back-ends it starts later are destroyed before the frontend.
struct ReconnectRig {
  explicit ReconnectRig(absl::Duration timeout)
      : fe(ConnectReconnecting(first.path(), ram, &mapper, timeout)) {}

  // Starts ring 0 (`q`) only.
  absl::Status Start() { return fe->Start(kVersion1, {&q, 1}); }

  ScriptedBackend first{FullDevice()};
  GuestMemory ram = MakeRam();
  RecordingMapper mapper;
  Fd kick = MakeEventFd(), call = MakeEventFd();
  const VirtqueueSetup q{0, 8, GuestAddr(0x40001000), GuestAddr(0x40002000),
                         GuestAddr(0x40003000), kick.get(), call.get()};
  std::unique_ptr<VhostUserFrontend> fe;
};

TEST(VhostUserFrontendTest, Reconnect_RenegotiatesAndRestartsRingsAtUsedIndex) {
  ReconnectRig rig(absl::Seconds(60));
  std::unique_ptr<VhostUserFrontend>& fe = rig.fe;
  RecordingMapper& mapper = rig.mapper;
  const GuestMemory& ram = rig.ram;
  Fd kick1 = MakeEventFd(), call1 = MakeEventFd();
  ASSERT_NE(fe, nullptr);
  const VirtqueueSetup queues[2] = {
      rig.q,
      {1, 16, GuestAddr(0x40004000), GuestAddr(0x40005000), GuestAddr(0x40006000), kick1.get(),
       call1.get()},
  };
  ASSERT_TRUE(fe->Start(kVersion1, queues).ok());
  // The driver has had 7 and 3 requests answered.
  SetUsedIdx(ram, queues[0].device, 7);
  SetUsedIdx(ram, queues[1].device, 3);

  rig.first.HangUp();
  ASSERT_TRUE(Eventually([&] { return !mapper.Events().empty(); }));
  EXPECT_THAT(mapper.Events(), ElementsAre("suspend")) << "the regions empty at once";
  EXPECT_EQ(fe->reconnects(), 0);

  ScriptedBackendConfig again = FullDevice();
  again.config = {9, 8, 7, 6};  // not part of what must match
  std::atomic<int> signalled_before_last_enable{0};
  ScriptedBackend second(again, rig.first.path(), [&](const Received& r, int) {
    mapper.Note(Name(r.request));
    if (r.request == Code(FrontendRequest::kSetVringEnable) &&
        PayloadAs<vhost_user::VringState>(r).index == 1) {
      for (const Fd* fd : {&rig.kick, &rig.call, &kick1, &call1}) {
        signalled_before_last_enable += Readable(fd->get()) ? 1 : 0;
      }
    }
  });
  ASSERT_TRUE(Eventually([&] { return fe->reconnects() == 1; }));
  EXPECT_FALSE(Readable(fe->failure_fd())) << "a reconnect is no failure";
  EXPECT_EQ(signalled_before_last_enable.load(), 0)
      << "the rings are kicked and called once every ring is back";

  // Suspended before the back-end came back; resumed after the last ring
  // was enabled, once.
  const std::vector<std::string> events = mapper.Events();
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.front(), "suspend");
  EXPECT_EQ(events.back(), "resume");
  EXPECT_EQ(events[events.size() - 2], "SET_VRING_ENABLE");
  EXPECT_EQ(std::count(events.begin(), events.end(), "suspend"), 1);
  EXPECT_EQ(std::count(events.begin(), events.end(), "resume"), 1);

  uint8_t config[4];
  ASSERT_TRUE(fe->ReadConfig(0, config).ok());
  EXPECT_THAT(config, ElementsAre(9, 8, 7, 6)) << "calls go to the back-end that came back";
  fe.reset();

  const std::vector<Received> got = second.Finish();
  std::vector<uint32_t> want = RestartCodes(2);
  want.push_back(Code(FrontendRequest::kGetConfig));
  ASSERT_THAT(Codes(got), ::testing::ElementsAreArray(want));
  EXPECT_EQ(PayloadAs<uint64_t>(got[2]), kAllOurs);
  EXPECT_EQ(PayloadAs<uint64_t>(got[7]), kVersion1 | Bit(vhost_user::kFProtocolFeatures));
  ExpectWholeRam(got[8], ram);
  for (size_t i = 0; i < got.size(); ++i) {
    const bool get = i == 0 || i == 1 || i == 3 || i == 6 || i + 1 == got.size();
    const bool before_reply_ack = i == 2;
    EXPECT_EQ((got[i].flags & vhost_user::kFlagNeedReply) != 0, !get && !before_reply_ack)
        << "message " << i << " " << Name(got[i].request);
  }
  const uint64_t host = reinterpret_cast<uint64_t>(ram.host_base());
  auto host_of = [&](GuestAddr a) { return host + (a.value() - kRamBase.value()); };
  const uint16_t used_idx[2] = {7, 3};
  for (int ring = 0; ring < 2; ++ring) {
    SCOPED_TRACE(::testing::Message() << "ring " << ring);
    const VirtqueueSetup& q = queues[ring];
    const Received* m = &got[9 + 6 * static_cast<size_t>(ring)];
    EXPECT_EQ(PayloadAs<vhost_user::VringState>(m[0]).index, static_cast<uint32_t>(ring));
    EXPECT_EQ(PayloadAs<vhost_user::VringState>(m[0]).num, q.size);
    const auto addr = PayloadAs<vhost_user::VringAddr>(m[1]);
    EXPECT_EQ(addr.index, static_cast<uint32_t>(ring));
    EXPECT_EQ(addr.desc_user_addr, host_of(q.desc));
    EXPECT_EQ(addr.avail_user_addr, host_of(q.driver));
    EXPECT_EQ(addr.used_user_addr, host_of(q.device));
    EXPECT_EQ(PayloadAs<vhost_user::VringState>(m[2]).index, static_cast<uint32_t>(ring));
    EXPECT_EQ(PayloadAs<vhost_user::VringState>(m[2]).num, used_idx[ring])
        << "the ring resumes after the last request the guest saw answered";
    EXPECT_EQ(PayloadAs<vhost_user::VringState>(m[5]).index, static_cast<uint32_t>(ring));
    EXPECT_EQ(PayloadAs<vhost_user::VringState>(m[5]).num, 1u);
    // The kick and call fds are the driver's own eventfds, signalled once:
    // read through the back-end's copy, drained for ours.
    for (int k = 0; k < 2; ++k) {
      const Received& file = m[3 + k];
      EXPECT_EQ(PayloadAs<uint64_t>(file), static_cast<uint64_t>(ring));
      ASSERT_EQ(file.fds.size(), 1u);
      EXPECT_EQ(Drain(file.fds[0]->get()), 1u) << (k == 0 ? "kick" : "call");
      EXPECT_EQ(Drain(k == 0 ? q.kick_fd : q.call_fd), 0u) << "the same eventfd";
    }
  }
}

TEST(VhostUserFrontendTest, Reconnect_BeforeStart_OnlyRenegotiatesThenServesAsBefore) {
  ReconnectRig rig(absl::Seconds(60));
  ASSERT_NE(rig.fe, nullptr);
  rig.first.HangUp();
  ScriptedBackend second(FullDevice(), rig.first.path(), LogInto(rig.mapper));
  ASSERT_TRUE(Eventually([&] { return rig.fe->reconnects() == 1; }));
  std::vector<std::string> want_events = {"suspend"};
  for (uint32_t code : HandshakeCodes()) want_events.push_back(Name(code));
  want_events.push_back("resume");
  EXPECT_THAT(rig.mapper.Events(), ::testing::ElementsAreArray(want_events));

  // A first Start after the reconnect goes to the new back-end.
  ASSERT_TRUE(rig.Start().ok());
  rig.fe.reset();
  EXPECT_THAT(Codes(second.Finish()), ::testing::ElementsAreArray(RestartCodes(1)));
  EXPECT_EQ(Drain(rig.kick.get()), 0u) << "no ring was running: nothing to kick";
}

TEST(VhostUserFrontendTest, Reconnect_AfterStop_OnlyRenegotiates) {
  ReconnectRig rig(absl::Seconds(60));
  ASSERT_NE(rig.fe, nullptr);
  ASSERT_TRUE(rig.Start().ok());
  ASSERT_TRUE(rig.fe->Stop().ok());
  rig.first.HangUp();
  ScriptedBackend second(FullDevice(), rig.first.path());
  ASSERT_TRUE(Eventually([&] { return rig.fe->reconnects() == 1; }));
  rig.fe.reset();
  EXPECT_THAT(Codes(second.Finish()), ::testing::ElementsAreArray(HandshakeCodes()));
  EXPECT_EQ(Drain(rig.kick.get()), 0u);
  EXPECT_EQ(Drain(rig.call.get()), 0u);
}

TEST(VhostUserFrontendTest, Reconnect_OtherDevice_GivesUpAtOnceNamingWhatChanged) {
  struct Case {
    const char* what;
    std::function<void(ScriptedBackendConfig&)> change;
  };
  const Case cases[] = {
      {"its features changed", [](ScriptedBackendConfig& c) { c.features |= Bit(1); }},
      {"its protocol features changed",
       [](ScriptedBackendConfig& c) { c.protocol_features &= ~Bit(vhost_user::kProtocolConfig); }},
      {"its queue count changed from 0x2 to 0x3", [](ScriptedBackendConfig& c) { c.queue_num = 3; }},
      {"its shared memory region 0 size changed",
       [](ScriptedBackendConfig& c) { c.shmem_sizes = {2 << 20}; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    // A timeout far beyond the hang guard: giving up must not wait for it.
    ReconnectRig rig(absl::Seconds(600));
    ASSERT_NE(rig.fe, nullptr);
    rig.first.HangUp();
    ScriptedBackendConfig other = FullDevice();
    c.change(other);
    ScriptedBackend second(other, rig.first.path());
    EXPECT_TRUE(Readable(rig.fe->failure_fd(), kGuard));
    EXPECT_EQ(rig.fe->reconnects(), 0);
    uint8_t config[4];
    const absl::Status s = rig.fe->ReadConfig(0, config);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("vhost-user backend ", rig.first.path())));
    EXPECT_THAT(s.message(), HasSubstr("did not come back"));
    EXPECT_THAT(s.message(), HasSubstr(c.what));
    EXPECT_EQ(rig.fe->Start(kVersion1, {}).code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(rig.mapper.Events(), ElementsAre("suspend", "resume"));
    rig.fe.reset();
  }
}

TEST(VhostUserFrontendTest, Reconnect_NobodyComesBack_FailsAfterTheTimeoutAndResumes) {
  ReconnectRig rig(absl::Seconds(1));
  ASSERT_NE(rig.fe, nullptr);
  rig.first.HangUp();
  ASSERT_TRUE(Readable(rig.fe->failure_fd(), kGuard));
  EXPECT_EQ(rig.fe->reconnects(), 0);
  EXPECT_THAT(rig.mapper.Events(), ElementsAre("suspend", "resume"))
      << "accesses that waited are released (to fault)";
  uint8_t config[4];
  const absl::Status s = rig.fe->ReadConfig(0, config);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("vhost-user backend ", rig.first.path(),
                                                  " disconnected and did not come back")));
  EXPECT_EQ(rig.fe->Stop().code(), absl::StatusCode::kUnavailable) << "broken stays broken";
}

TEST(VhostUserFrontendTest, Reconnect_Off_HangUpDropsEveryPieceThenSignalsFailure) {
  ReconnectRig rig(absl::ZeroDuration());
  ASSERT_NE(rig.fe, nullptr);
  EXPECT_FALSE(Readable(rig.fe->failure_fd()));
  rig.first.HangUp();
  ASSERT_TRUE(Readable(rig.fe->failure_fd(), kGuard));
  uint8_t config[4];
  EXPECT_EQ(rig.fe->ReadConfig(0, config).code(), absl::StatusCode::kUnavailable);
  // Emptied and settled (not left in doubt: nobody is coming back), before
  // the failure is signalled.
  EXPECT_THAT(rig.mapper.Events(), ElementsAre("suspend", "resume"))
      << "nothing the gone back-end granted stays mapped";
  EXPECT_EQ(rig.fe->reconnects(), 0);
}

TEST(VhostUserFrontendTest, Reconnect_NewBackendDiesMidHandshake_TriesAgain) {
  ReconnectRig rig(absl::Seconds(60));
  ASSERT_NE(rig.fe, nullptr);
  rig.first.HangUp();
  ScriptedBackendConfig dying = FullDevice();
  dying.disconnect_on = Code(FrontendRequest::kSetOwner);
  ScriptedBackend second(dying, rig.first.path());
  second.Finish();  // it hung up at SET_OWNER
  ScriptedBackendConfig again = FullDevice();
  again.config = {5, 5, 5, 5};
  ScriptedBackend third(again, rig.first.path());
  ASSERT_TRUE(Eventually([&] { return rig.fe->reconnects() == 1; }));
  EXPECT_FALSE(Readable(rig.fe->failure_fd()));
  uint8_t config[4];
  ASSERT_TRUE(rig.fe->ReadConfig(0, config).ok());
  EXPECT_THAT(config, ElementsAre(5, 5, 5, 5));
  EXPECT_THAT(rig.mapper.Events(), ElementsAre("suspend", "resume"));
}

TEST(VhostUserFrontendTest, Reconnect_HangsUpAgain_ReconnectsAgainAtTheNewUsedIndex) {
  ReconnectRig rig(absl::Seconds(60));
  ASSERT_NE(rig.fe, nullptr);
  ASSERT_TRUE(rig.Start().ok());
  SetUsedIdx(rig.ram, rig.q.device, 5);
  rig.first.HangUp();
  ScriptedBackend second(FullDevice(), rig.first.path());
  ASSERT_TRUE(Eventually([&] { return rig.fe->reconnects() == 1; }));
  SetUsedIdx(rig.ram, rig.q.device, 9);  // served by the second back-end meanwhile
  // The frontend watches the new connection: its hang-up is noticed too.
  second.HangUp();
  ScriptedBackend third(FullDevice(), rig.first.path());
  ASSERT_TRUE(Eventually([&] { return rig.fe->reconnects() == 2; }));
  EXPECT_FALSE(Readable(rig.fe->failure_fd()));
  EXPECT_THAT(rig.mapper.Events(), ElementsAre("suspend", "resume", "suspend", "resume"));
  rig.fe.reset();
  for (auto [backend, base] : {std::pair{&second, 5u}, std::pair{&third, 9u}}) {
    const std::vector<Received> got = backend->Finish();
    ASSERT_THAT(Codes(got), ::testing::ElementsAreArray(RestartCodes(1)));
    EXPECT_EQ(PayloadAs<vhost_user::VringState>(got[11]).num, base);
  }
  EXPECT_EQ(Drain(rig.kick.get()), 2u) << "kicked once per reconnect";
}

TEST(VhostUserFrontendTest, Reconnect_BackendMapsBeforeAckingEnable_MapReachesTheMapper) {
  // rmemd maps what the guest held before it acks the request queue's
  // enable: the frontend must serve that map while it waits for the ack.
  ReconnectRig rig(absl::Seconds(60));
  RecordingMapper& mapper = rig.mapper;
  ASSERT_NE(rig.fe, nullptr);
  ASSERT_TRUE(rig.Start().ok());
  rig.first.HangUp();

  Fd piece(memfd_create("reconnect-piece", MFD_CLOEXEC));
  struct stat st {};
  fstat(piece.get(), &st);
  std::atomic<uint64_t> map_reply{~uint64_t{0}};
  ScriptedBackend second(FullDevice(), rig.first.path(), [&](const Received& r, int backend_req) {
    mapper.Note(Name(r.request));
    if (r.request != Code(FrontendRequest::kSetVringEnable)) return;
    ASSERT_GE(backend_req, 0);
    vhost_user::Channel ch(Fd(fcntl(backend_req, F_DUPFD_CLOEXEC, 0)), "frontend",
                           vhost_user::RequestSpace::kBackend);
    vhost_user::ShmemMapMsg m;
    m.fd_offset = 0x1000;
    m.shm_offset = 0x4000;
    m.len = 0x2000;
    m.flags = vhost_user::kShmemMapReadWrite;
    // A short guard: a frontend that serves it only after the ack never does.
    map_reply = RoundTrip(ch, static_cast<uint32_t>(vhost_user::BackendRequest::kShmemMap), m,
                          piece.get(), absl::Seconds(5));
  });
  ASSERT_TRUE(Eventually([&] { return rig.fe->reconnects() == 1; }));
  EXPECT_EQ(map_reply.load(), 0u) << "the map was served while the frontend awaited the ack";
  std::vector<std::string> events = mapper.Events();
  ASSERT_GE(events.size(), 3u);
  EXPECT_THAT(std::vector<std::string>(events.end() - 3, events.end()),
              ElementsAre("SET_VRING_ENABLE", "map", "resume"));
  EXPECT_EQ(events.front(), "suspend");
  absl::MutexLock lock(&mapper.mu);
  ASSERT_EQ(mapper.calls.size(), 1u);
  EXPECT_TRUE(mapper.calls[0].map);
  EXPECT_EQ(mapper.calls[0].inode, st.st_ino);
  EXPECT_EQ(mapper.calls[0].fd_offset, 0x1000u);
  EXPECT_EQ(mapper.calls[0].shm_offset, 0x4000u);
  EXPECT_EQ(mapper.calls[0].len, 0x2000u);
  EXPECT_TRUE(mapper.calls[0].writable);
}

// A back-end that came up but is wedged: it listens (so connecting works)
// and never accepts nor answers. Closing it resets the connections waiting
// on it.
Fd ListenSilently(const std::string& path) {
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << path;
  EXPECT_EQ(listen(fd.get(), 4), 0);
  return fd;
}

TEST(VhostUserFrontendTest, Reconnect_BackendThatNeverAnswers_StillGivesUpAtTheTimeout) {
  ReconnectRig rig(absl::Seconds(1));
  ASSERT_NE(rig.fe, nullptr);
  rig.first.HangUp();
  Fd wedged = ListenSilently(rig.first.path());
  // The timeout bounds the whole reconnect, not only the connecting.
  const bool failed = Readable(rig.fe->failure_fd(), absl::Seconds(5));
  wedged.Reset();  // releases a frontend stuck on it, so the test ends either way
  EXPECT_TRUE(failed) << "a back-end that accepts and never answers holds the device (and "
                         "every call to it) past the reconnect timeout";
  unlink(rig.first.path().c_str());
}

TEST(VhostUserFrontendTest, Destruction_WhileReconnectingToABackendThatNeverAnswers_DoesNotHang) {
  ReconnectRig rig(absl::Seconds(60));
  ASSERT_NE(rig.fe, nullptr);
  rig.first.HangUp();
  Fd wedged = ListenSilently(rig.first.path());
  ASSERT_TRUE(Readable(wedged.get(), kGuard)) << "the frontend connects to it";
  absl::Notification destroyed;
  std::thread shutdown([&] {
    rig.fe.reset();
    destroyed.Notify();
  });
  const bool in_time = destroyed.WaitForNotificationWithTimeout(absl::Seconds(5));
  wedged.Reset();  // releases a destructor stuck on it, so the test ends either way
  shutdown.join();
  EXPECT_TRUE(in_time) << "the VMM cannot shut down while its back-end is wedged";
  unlink(rig.first.path().c_str());
}

TEST(VhostUserFrontendTest, Abandon_EndsAReconnectUnderWay_WaitingCallsFail) {
  // Beyond the guard below, short enough that a failing test still ends.
  ReconnectRig rig(absl::Seconds(15));
  ASSERT_NE(rig.fe, nullptr);
  rig.first.HangUp();
  ASSERT_TRUE(Eventually([&] { return !rig.mapper.Events().empty(); })) << "reconnecting";
  absl::Notification returned;
  absl::Status status;
  std::thread vcpu([&] {
    uint8_t config[4];
    status = rig.fe->ReadConfig(0, config);
    returned.Notify();
  });
  rig.fe->Abandon();  // the VM stops
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(absl::Seconds(5)))
      << "a vCPU waiting for the device is released";
  vcpu.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr(rig.first.path()));
  EXPECT_EQ(rig.fe->reconnects(), 0);
}

}  // namespace
}  // namespace rmem::vmm

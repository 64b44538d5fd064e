// TEST ONLY: rmem-shmem-test-backend, a vhost-user back-end that exercises
// rmem-vmm's shared memory region from the other side of the socket. It runs
// in the test SoC's host (L1) next to rmem-vmm; the guest (L2 scenario
// "shm") drives it through a mailbox in the region itself, so no virtqueue
// and no guest driver are needed. See images/l1/scenarios/vmm_shm.sh.
//
// The device: VIRTIO ID kTestDeviceId, no queues in use, one shared memory
// region (id 0, kRegionSize). Its memory is three 1 MiB pages, of a memfd
// or, with --carveout PHYS, of restricted memory: /dev/rmem-carveout
// (host_driver/rmem_carveout) at physical address PHYS. A memfd and its
// offsets go to rmem-vmm as they are; of the carve-out, as rmemd does it,
// rmem-vmm gets for each map a piece (RMEM_CARVEOUT_IOC_PIECE,
// host_driver/uapi/rmem_carveout.h): a file for exactly the map's range with
// exactly its right, at offset 0, revoked and closed once rmem-vmm has
// refused the map or removed it again (the matching unmap), never the device:
//   base + 0 MiB: "piece A", every word kPatternA
//   base + 1 MiB: "piece B", every word kPatternB
//   base + 2 MiB: the mailbox, zeros
// The script, once rmem-vmm has connected (each step prints a marker):
//   1. invalid maps and unmaps, each must be refused  RMEM-BACKEND-REFUSED n/m
//   2. map A read-only at region offset 0, the mailbox read-write at 1 MiB
//                                                     RMEM-BACKEND-READY
//   3. wait for the guest to write 1 to mailbox word 0, then unmap A, map B
//      read-only in its place and write 1 to word 1   RMEM-BACKEND-REMAPPED
//   4. the guest's write to mailbox word 2             RMEM-BACKEND-GUEST-WROTE 0x...
//   5. with --bench N: N map/unmap round trips of a 64 KiB piece
//                                                     RMEM-BACKEND-BENCH ...
//   6. with --carveout: the pieces issued, revoked and held (mapped) so far
//                                                     RMEM-BACKEND-PIECES issued=n revoked=n held=n
//      then write 1 to mailbox word 3: the guest may go on
//                                                     RMEM-BACKEND-SCRIPT-DONE
//   7. with --late-map: wait for the guest to write 1 to mailbox word 4, then
//      map A read-only at region offset 3 MiB (where nothing was mapped
//      until then) and write 1 to word 5              RMEM-BACKEND-LATE-MAPPED
//   8. with --revoke-live (only with --carveout): revoke a piece while the
//      guest has it mapped, as rmemd does when its grant is withdrawn:
//      wait for the guest to write 1 to mailbox word 6, map A read-only at
//      region offset 2 MiB (a fresh piece) and write 1 to word 7
//                                                     RMEM-BACKEND-LIVE-MAPPED
//      wait for word 8 (the guest has read it), REVOKE the piece without
//      unmapping it and write 1 to word 9             RMEM-BACKEND-LIVE-REVOKED
//      wait for word 10 (the guest is about to load from the piece; if it
//      never says so: RMEM-BACKEND-LIVE-NO-LOAD), sleep kLiveLinger -- the
//      guest's load meanwhile finds no stage-2 mapping and rmem-vmm's vCPU
//      waits for the piece to be removed -- then SHMEM_UNMAP it, write 1 to
//      word 11                                        RMEM-BACKEND-LIVE-UNMAPPED <reply>
//                                                     RMEM-BACKEND-PIECES issued=n revoked=n held=n
// Each map/unmap goes to rmem-vmm as BACKEND_SHMEM_MAP/UNMAP with need_reply;
// a reply of 0 means rmem-vmm installed (removed) the guest mapping.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "host_driver/uapi/rmem_carveout.h"
#include "vhost_user/channel.h"
#include "vhost_user/protocol.h"

namespace rmem::vmm::testing {
namespace {

using vhost_user::BackendRequest;
using vhost_user::Bytes;
using vhost_user::Channel;
using vhost_user::FrontendRequest;
using vhost_user::Message;
using vhost_user::MsgHeader;
using vhost_user::RequestSpace;

constexpr uint32_t kTestDeviceId = 65534;  // no VIRTIO device uses it; no guest driver binds
constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kRegionSize = 4 * kMiB;
constexpr uint64_t kPieceSize = 64 * 1024;
constexpr uint64_t kMailboxOffset = 1 * kMiB;  // in the region
constexpr uint64_t kLateOffset = 3 * kMiB;     // in the region: unmapped until step 7
constexpr uint64_t kLiveOffset = 2 * kMiB;     // in the region: the piece step 8 revokes
constexpr uint32_t kPatternA = 0xa11ce001;
constexpr uint32_t kPatternB = 0xb0b0b002;
constexpr int kWaitSeconds = 120;
// Step 8: how long a revoked piece stays mapped after the guest said it is
// about to load from it: the guest's load must come before the unmap (it
// is the guest's next instruction), and the unmap well before rmem-vmm stops
// waiting for a revoked piece to go (5 s, Vm::AwaitShmChange) and gives up
// on the vCPU.
constexpr auto kLiveLinger = std::chrono::seconds(2);

void Marker(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "rmem-shmem-test-backend: %s\n", why.c_str());
  std::exit(1);
}

// The memory behind the region, and our own view of it.
struct Pieces {
  Fd fd;  // the memfd or the carve-out device
  bool carveout = false;
  uint64_t base = 0;          // fd offset of piece A
  uint32_t* words = nullptr;  // 3 MiB
  uint32_t* mailbox() const { return words + 2 * kMiB / 4; }
};

constexpr const char* kCarveoutDevice = "/dev/rmem-carveout";

// carveout: nullopt for a memfd, else the physical address of piece A.
Pieces MakePieces(std::optional<uint64_t> carveout) {
  Pieces p;
  if (carveout) {
    p.fd = Fd(open(kCarveoutDevice, O_RDWR | O_CLOEXEC));
    if (!p.fd.valid()) Die(absl::StrCat("cannot open ", kCarveoutDevice, ": ", std::strerror(errno)));
    p.carveout = true;
    p.base = *carveout;
  } else {
    p.fd = Fd(memfd_create("rmem-shmem-test", MFD_CLOEXEC));
    if (!p.fd.valid() || ftruncate(p.fd.get(), 3 * kMiB) != 0) Die("cannot create the memfd");
  }
  void* m = mmap(nullptr, 3 * kMiB, PROT_READ | PROT_WRITE, MAP_SHARED, p.fd.get(),
                 static_cast<off_t>(p.base));
  if (m == MAP_FAILED) {
    Die(absl::StrCat("cannot map 3 MiB of the pieces' fd at 0x", absl::Hex(p.base), ": ",
                     std::strerror(errno)));
  }
  p.words = static_cast<uint32_t*>(m);
  std::fill_n(p.words, kMiB / 4, kPatternA);
  std::fill_n(p.words + kMiB / 4, kMiB / 4, kPatternB);
  std::fill_n(p.mailbox(), kMiB / 4, 0u);  // a carve-out holds what it last held
  return p;
}

// Sends BACKEND_SHMEM_MAP/UNMAP and waits for rmem-vmm's verdict (0 = done).
class ShmemClient {
 public:
  explicit ShmemClient(Channel channel) : channel_(std::move(channel)) {}

  uint64_t Map(int fd, uint64_t fd_offset, uint64_t shm_offset, uint64_t len, bool writable,
               uint8_t shmid = 0) {
    vhost_user::ShmemMapMsg m;
    m.shmid = shmid;
    m.fd_offset = fd_offset;
    m.shm_offset = shm_offset;
    m.len = len;
    m.flags = writable ? vhost_user::kShmemMapReadWrite : 0;
    return Call(BackendRequest::kShmemMap, m, fd);
  }
  uint64_t Unmap(uint64_t shm_offset, uint64_t len) {
    vhost_user::ShmemMapMsg m;
    m.shm_offset = shm_offset;
    m.len = len;
    return Call(BackendRequest::kShmemUnmap, m, -1);
  }

 private:
  uint64_t Call(BackendRequest request, const vhost_user::ShmemMapMsg& m, int fd) {
    const MsgHeader h{static_cast<uint32_t>(request),
                      vhost_user::kVersion | vhost_user::kFlagNeedReply, sizeof(m)};
    const int fds[1] = {fd};
    absl::Status s = channel_.Send(h, Bytes(m), fd >= 0 ? std::span<const int>(fds, 1)
                                                        : std::span<const int>());
    if (!s.ok()) Die(s.ToString());
    absl::StatusOr<Message> reply = channel_.Receive("the reply to a SHMEM request");
    if (!reply.ok()) Die(reply.status().ToString());
    uint64_t result = 0;
    if (reply->payload.size() != sizeof(result)) Die("SHMEM reply is not a u64");
    std::memcpy(&result, reply->payload.data(), sizeof(result));
    return result;
  }
  Channel channel_;
};

// Maps and unmaps parts of the pieces (offsets into their 3 MiB), with the
// fd rmem-vmm is to get for each: the memfd, or a carve-out piece per map.
class Grants {
 public:
  Grants(ShmemClient& shm, const Pieces& p) : shm_(shm), p_(p) {}

  uint64_t Map(uint64_t offset, uint64_t shm_offset, uint64_t len, bool writable,
               uint8_t shmid = 0) {
    if (!p_.carveout) {
      return shm_.Map(p_.fd.get(), p_.base + offset, shm_offset, len, writable, shmid);
    }
    // A piece is never empty: an empty map (which rmem-vmm must refuse)
    // gets a piece of one page.
    Fd piece = Issue(p_.base + offset, std::max(len, kPage), writable);
    const uint64_t result = shm_.Map(piece.get(), 0, shm_offset, len, writable, shmid);
    if (result == 0) {
      issued_[{shmid, shm_offset}] = std::move(piece);
    } else {
      Revoke(piece);
    }
    return result;
  }
  uint64_t Unmap(uint64_t shm_offset, uint64_t len) {
    const uint64_t result = shm_.Unmap(shm_offset, len);
    auto it = issued_.find({0, shm_offset});
    if (result == 0 && it != issued_.end()) {
      if (revoked_live_.erase(shm_offset) == 0) Revoke(it->second);
      issued_.erase(it);
    }
    return result;
  }
  // Revokes the piece mapped at shm_offset but leaves it mapped: rmem-vmm
  // is not told (its mapping of the piece is torn down under it); the
  // matching Unmap later only closes it.
  void RevokeLive(uint64_t shm_offset) {
    auto it = issued_.find({0, shm_offset});
    if (it == issued_.end()) Die("no piece to revoke at that region offset");
    int32_t fd = it->second.get();
    if (ioctl(p_.fd.get(), RMEM_CARVEOUT_IOC_REVOKE, &fd) != 0) {
      Die(absl::StrCat("cannot revoke a mapped piece: ", std::strerror(errno)));
    }
    ++revoked_count_;
    revoked_live_.insert(shm_offset);
  }
  std::string Counts() const {
    return absl::StrCat("issued=", issued_count_, " revoked=", revoked_count_,
                        " held=", issued_.size());
  }

 private:
  Fd Issue(uint64_t phys, uint64_t size, bool writable) {
    rmem_carveout_piece req{};
    req.phys = phys;
    req.size = size;
    req.flags = writable ? RMEM_CARVEOUT_PIECE_WRITE : 0;
    req.fd = -1;
    if (ioctl(p_.fd.get(), RMEM_CARVEOUT_IOC_PIECE, &req) != 0) {
      Die(absl::StrCat("cannot issue a piece of 0x", absl::Hex(size), " bytes at 0x",
                       absl::Hex(phys), ": ", std::strerror(errno)));
    }
    ++issued_count_;
    return Fd(req.fd);
  }
  void Revoke(Fd& piece) {
    int32_t fd = piece.get();
    if (ioctl(p_.fd.get(), RMEM_CARVEOUT_IOC_REVOKE, &fd) != 0) {
      Die(absl::StrCat("cannot revoke a piece: ", std::strerror(errno)));
    }
    ++revoked_count_;
    piece.Reset();
  }

  ShmemClient& shm_;
  const Pieces& p_;
  std::map<std::pair<uint8_t, uint64_t>, Fd> issued_;  // by (shmid, shm_offset)
  std::set<uint64_t> revoked_live_;  // region 0 offsets of mapped pieces already revoked
  int issued_count_ = 0;
  int revoked_count_ = 0;
};

// Waits until *word == want (the guest writes it through its mapping).
bool WaitFor(const volatile uint32_t* word, uint32_t want) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kWaitSeconds);
  while (*word != want) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

void PrintLatencies(const char* what, std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  Marker(absl::StrCat("RMEM-BACKEND-BENCH ", what, " n=", us.size(), " median_us=",
                      static_cast<int64_t>(us[us.size() / 2]),
                      " p99_us=", static_cast<int64_t>(us[us.size() * 99 / 100])));
}

void RunScript(ShmemClient& client, const Pieces& p, int bench_rounds, bool late_map,
               bool revoke_live) {
  Grants shm(client, p);
  const uint64_t a = 0, b = kMiB, mailbox_at = 2 * kMiB;  // offsets into the pieces
  // 1. Every one of these must be refused, and rmem-vmm must keep going.
  int refused = 0, tried = 0;
  auto must_fail = [&](uint64_t result) {
    ++tried;
    if (result != 0) ++refused;
  };
  must_fail(shm.Map(a, kRegionSize, kPieceSize, false));       // outside the region
  must_fail(shm.Map(a, kRegionSize - 4096, 2 * 4096, false));  // runs past its end
  must_fail(shm.Map(a, 0x800, kPieceSize, false));             // unaligned
  must_fail(shm.Map(a, 0, 0, false));                          // empty
  must_fail(shm.Map(a, 0, kPieceSize, false, /*shmid=*/7));    // no such region
  if (shm.Map(a, 0, kPieceSize, false) != 0) Die("mapping piece A was refused");
  must_fail(shm.Map(a, kPieceSize / 2, kPieceSize, false));    // overlaps A
  must_fail(shm.Unmap(0, 4096));                               // not exactly A
  must_fail(shm.Unmap(2 * kMiB, kPieceSize));                  // nothing there
  Marker(absl::StrCat("RMEM-BACKEND-REFUSED ", refused, "/", tried));

  // 2. The mailbox, read-write.
  if (shm.Map(mailbox_at, kMailboxOffset, 4096, true) != 0) Die("mapping the mailbox failed");
  Marker("RMEM-BACKEND-READY");

  // 3. Remap on request.
  volatile uint32_t* mailbox = p.mailbox();
  if (!WaitFor(&mailbox[0], 1)) Die("the guest never asked for the remap");
  if (shm.Unmap(0, kPieceSize) != 0) Die("unmapping piece A failed");
  if (shm.Map(b, 0, kPieceSize, false) != 0) Die("mapping piece B failed");
  mailbox[1] = 1;
  Marker("RMEM-BACKEND-REMAPPED");

  // 4. What the guest wrote through its read-write mapping.
  Marker(absl::StrCat("RMEM-BACKEND-GUEST-WROTE 0x", absl::Hex(mailbox[2], absl::kZeroPad8)));

  // 5. Latency of the whole path: socket, validation, host mmap, memslot.
  if (bench_rounds > 0) {
    std::vector<double> map_us, unmap_us;
    const uint64_t offset = 2 * kMiB;  // an unused part of the region
    for (int i = 0; i < bench_rounds; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      if (shm.Map(a, offset, kPieceSize, true) != 0) Die("bench map failed");
      const auto t1 = std::chrono::steady_clock::now();
      if (shm.Unmap(offset, kPieceSize) != 0) Die("bench unmap failed");
      const auto t2 = std::chrono::steady_clock::now();
      map_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      unmap_us.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
    }
    PrintLatencies("shmem_map_64k", map_us);
    PrintLatencies("shmem_unmap_64k", unmap_us);
  }
  if (p.carveout) Marker(absl::StrCat("RMEM-BACKEND-PIECES ", shm.Counts()));
  mailbox[3] = 1;
  Marker("RMEM-BACKEND-SCRIPT-DONE");

  // 7. Grant what the guest was refused before.
  if (late_map) {
    if (!WaitFor(&mailbox[4], 1)) Die("the guest never asked for the late map");
    if (shm.Map(a, kLateOffset, kPieceSize, false) != 0) Die("the late map of piece A failed");
    mailbox[5] = 1;
    Marker("RMEM-BACKEND-LATE-MAPPED");
  }

  // 8. Withdraw a piece under the guest's live mapping: the revoke alone
  // must take it from the guest (KVM's stage 2 through the MMU notifier);
  // the unmap only follows, a while after the guest's load.
  if (revoke_live) {
    if (!WaitFor(&mailbox[6], 1)) Die("the guest never asked for a piece to revoke");
    if (shm.Map(a, kLiveOffset, kPieceSize, false) != 0) Die("mapping the piece to revoke failed");
    mailbox[7] = 1;
    Marker("RMEM-BACKEND-LIVE-MAPPED");
    if (!WaitFor(&mailbox[8], 1)) Die("the guest never read the piece to revoke");
    shm.RevokeLive(kLiveOffset);
    mailbox[9] = 1;
    Marker("RMEM-BACKEND-LIVE-REVOKED");
    if (!WaitFor(&mailbox[10], 1)) Marker("RMEM-BACKEND-LIVE-NO-LOAD");
    std::this_thread::sleep_for(kLiveLinger);
    const uint64_t unmapped = shm.Unmap(kLiveOffset, kPieceSize);
    Marker(absl::StrCat("RMEM-BACKEND-LIVE-UNMAPPED ", unmapped));
    Marker(absl::StrCat("RMEM-BACKEND-PIECES ", shm.Counts()));
    mailbox[11] = 1;
  }
}

// Answers the front-end; returns when it disconnects.
void ServeFrontend(Channel& channel, Pieces& pieces, int bench_rounds, bool late_map,
                   bool revoke_live) {
  std::thread script;
  const uint64_t features = (uint64_t{1} << 32) | (uint64_t{1} << vhost_user::kFProtocolFeatures);
  const uint64_t protocol = (uint64_t{1} << vhost_user::kProtocolReplyAck) |
                            (uint64_t{1} << vhost_user::kProtocolBackendReq) |
                            (uint64_t{1} << vhost_user::kProtocolShmem);
  std::optional<Channel> backend_channel;
  for (;;) {
    absl::StatusOr<Message> msg = channel.Receive("a front-end request");
    if (!msg.ok()) break;  // rmem-vmm went away: done
    const auto request = static_cast<FrontendRequest>(msg->header.request);
    auto reply = [&](std::span<const uint8_t> payload) {
      const MsgHeader h{msg->header.request, vhost_user::kVersion | vhost_user::kFlagReply,
                        static_cast<uint32_t>(payload.size())};
      if (!channel.Send(h, payload).ok()) Die("cannot reply to the front-end");
    };
    switch (request) {
      case FrontendRequest::kGetFeatures:
        reply(Bytes(features));
        continue;
      case FrontendRequest::kGetProtocolFeatures:
        reply(Bytes(protocol));
        continue;
      case FrontendRequest::kGetShmemConfig: {
        vhost_user::ShmemConfig config;
        config.nregions = 1;
        config.memory_sizes[0] = kRegionSize;
        reply(Bytes(config));
        // The front-end asks this last while connecting: start the script.
        if (backend_channel && !script.joinable()) {
          script = std::thread([&] {
            ShmemClient client(std::move(*backend_channel));
            RunScript(client, pieces, bench_rounds, late_map, revoke_live);
          });
        }
        continue;
      }
      case FrontendRequest::kGetVringBase: {
        vhost_user::VringState state;
        reply(Bytes(state));
        continue;
      }
      case FrontendRequest::kSetBackendReqFd:
        if (msg->fds.size() != 1) Die("SET_BACKEND_REQ_FD without an fd");
        backend_channel.emplace(std::move(msg->fds[0]), "rmem-vmm (back-end requests)",
                                RequestSpace::kBackend);
        break;
      default:
        break;  // everything else is accepted and ignored: no rings are processed
    }
    if (msg->header.flags & vhost_user::kFlagNeedReply) {
      const uint64_t ok = 0;
      reply(Bytes(ok));
    }
  }
  if (script.joinable()) script.join();
}

int Main(int argc, char** argv) {
  std::string socket_path;
  int bench_rounds = 0;
  bool late_map = false;
  bool revoke_live = false;
  std::optional<uint64_t> carveout;
  uint64_t carveout_address = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--socket" && i + 1 < argc) {
      socket_path = argv[++i];
    } else if (a == "--bench" && i + 1 < argc && absl::SimpleAtoi(argv[i + 1], &bench_rounds) &&
               bench_rounds >= 0) {
      ++i;
    } else if (a == "--late-map") {
      late_map = true;
    } else if (a == "--revoke-live") {
      revoke_live = true;
    } else if (a == "--carveout" && i + 1 < argc &&
               absl::SimpleHexAtoi(argv[i + 1], &carveout_address)) {
      carveout = carveout_address;
      ++i;
    } else {
      std::fprintf(stderr,
                   "usage: rmem-shmem-test-backend --socket PATH [--bench N] [--late-map]\n"
                   "                               [--carveout PHYS [--revoke-live]]\n"
                   "TEST ONLY: a vhost-user back-end exercising rmem-vmm's shared memory\n"
                   "region (VIRTIO ID %u); see the comment at the top of its source.\n"
                   "--carveout: the pieces are 3 MiB of /dev/rmem-carveout at PHYS (hex);\n"
                   "rmem-vmm gets a piece file of the device per map, never the device.\n"
                   "--revoke-live: at the end, revoke a piece the guest has mapped, then\n"
                   "unmap it (step 8 of the script).\n",
                   kTestDeviceId);
      return a == "--help" ? 0 : 2;
    }
  }
  if (socket_path.empty()) Die("--socket PATH is required");
  if (revoke_live && !carveout) Die("--revoke-live needs --carveout: only pieces can be revoked");

  Fd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) Die("socket path too long");
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  unlink(socket_path.c_str());
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener.get(), 1) != 0) {
    Die(absl::StrCat("cannot listen on ", socket_path, ": ", std::strerror(errno)));
  }
  Pieces pieces = MakePieces(carveout);
  Fd conn(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn.valid()) Die("accept failed");
  Channel channel(std::move(conn), "rmem-vmm", RequestSpace::kFrontend);
  ServeFrontend(channel, pieces, bench_rounds, late_map, revoke_live);
  unlink(socket_path.c_str());
  return 0;
}

}  // namespace
}  // namespace rmem::vmm::testing

int main(int argc, char** argv) { return rmem::vmm::testing::Main(argc, argv); }

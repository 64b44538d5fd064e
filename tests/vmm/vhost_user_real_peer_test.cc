// VhostUserFrontend against real back-ends from Debian's QEMU packages:
// qemu-storage-daemon's vhost-user-blk export (negotiation, config space,
// and one real read through a split virtqueue built by hand in guest RAM)
// and virtiofsd (negotiation). A peer that is installed but cannot be driven
// fails the test with the reason; an absent binary skips it loudly.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "vmm/vhost_user/frontend.h"

namespace rmem::vmm {
namespace {

constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }
constexpr uint64_t kVersion1 = Bit(32);
constexpr GuestAddr kRamBase(0x40000000);
constexpr char kStorageDaemon[] = "/usr/bin/qemu-storage-daemon";
constexpr char kVirtiofsd[] = "/usr/lib/qemu/virtiofsd";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A scratch directory and a child process whose output goes to a log there.
class Peer {
 public:
  Peer() {
    char dir[] = "/tmp/rmem-vu-peer-XXXXXX";
    dir_ = mkdtemp(dir);
  }
  ~Peer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status;
      waitpid(pid_, &status, 0);
    }
    std::system(("rm -rf " + dir_).c_str());
  }
  const std::string& dir() const { return dir_; }
  std::string log() const { return ReadFile(dir_ + "/peer.log"); }

  void Spawn(std::vector<std::string> argv) {
    const std::string log_path = dir_ + "/peer.log";
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> args;
      for (std::string& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
};

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

uint8_t Pattern(size_t i) { return static_cast<uint8_t>(i * 7 + i / 512); }

// Split virtqueue layout (VIRTIO 1.2 §2.7) at fixed guest addresses.
struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Desc) == 16);
constexpr uint16_t kDescNext = 1, kDescWrite = 2;
constexpr uint16_t kQueueSize = 8;
constexpr GuestAddr kDesc(0x40000000), kAvail(0x40001000), kUsed(0x40002000),
    kReqHeader(0x40003000), kData(0x40004000), kStatus(0x40005000);

TEST(VhostUserRealPeerTest, QemuStorageDaemon_NegotiatesReadsConfigAndServesARead) {
  if (access(kStorageDaemon, X_OK) != 0) {
    GTEST_SKIP() << "\n\n*** " << kStorageDaemon
                 << " is not installed: the vhost-user-blk real-peer test DID NOT RUN ***\n";
  }
  Peer peer;
  constexpr uint64_t kImageSize = 8 << 20;
  const std::string image = peer.dir() + "/disk.img";
  {
    std::vector<char> bytes(kImageSize);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(Pattern(i));
    std::ofstream(image, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  const std::string sock = peer.dir() + "/blk.sock";
  peer.Spawn({kStorageDaemon, "--blockdev",
              "driver=file,node-name=disk,filename=" + image,
              "--export",
              "type=vhost-user-blk,id=exp,node-name=disk,addr.type=unix,addr.path=" + sock +
                  ",writable=on"});

  absl::StatusOr<GuestMemory> ram = GuestMemory::Create(kRamBase, 4 << 20);
  ASSERT_TRUE(ram.ok());
  absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
      VhostUserFrontend::Connect(sock, 2, *ram, nullptr, 1);
  ASSERT_TRUE(fe.ok()) << fe.status() << "\nqemu-storage-daemon log:\n" << peer.log();
  VhostUserFrontend& blk = **fe;
  std::printf("qemu-storage-daemon: features %s (device %s), protocol features offered %s "
              "negotiated %s, queues %d\n",
              Hex(blk.backend_features()).c_str(), Hex(blk.device_features()).c_str(),
              Hex(blk.offered_protocol_features()).c_str(), Hex(blk.protocol_features()).c_str(),
              blk.num_queues());
  EXPECT_NE(blk.device_features() & kVersion1, 0u);
  EXPECT_EQ(blk.device_features() & Bit(vhost_user::kFProtocolFeatures), 0u);
  ASSERT_TRUE(blk.HasProtocolFeature(vhost_user::kProtocolConfig))
      << "qemu-storage-daemon did not negotiate CONFIG: " << Hex(blk.protocol_features());

  uint64_t capacity = 0;
  ASSERT_TRUE(blk.ReadConfig(0, {reinterpret_cast<uint8_t*>(&capacity), 8}).ok());
  EXPECT_EQ(capacity, kImageSize / 512);

  // One VIRTIO_BLK_T_IN of sector 0: header, 512-byte buffer, status byte.
  const GuestMemory& mem = *ram;
  const struct {
    uint32_t type, reserved;
    uint64_t sector;
  } header{0, 0, 0};
  ASSERT_TRUE(mem.Write(kReqHeader, {reinterpret_cast<const uint8_t*>(&header), 16}).ok());
  const uint8_t status_init = 0xff;
  ASSERT_TRUE(mem.Write(kStatus, {&status_init, 1}).ok());
  const Desc descs[3] = {
      {kReqHeader.value(), 16, kDescNext, 1},
      {kData.value(), 512, kDescNext | kDescWrite, 2},
      {kStatus.value(), 1, kDescWrite, 0},
  };
  ASSERT_TRUE(mem.Write(kDesc, {reinterpret_cast<const uint8_t*>(descs), sizeof(descs)}).ok());
  const uint16_t avail[3] = {0 /* flags */, 1 /* idx */, 0 /* ring[0] = head 0 */};
  ASSERT_TRUE(mem.Write(kAvail, {reinterpret_cast<const uint8_t*>(avail), sizeof(avail)}).ok());

  Fd kick(eventfd(0, EFD_CLOEXEC)), call(eventfd(0, EFD_CLOEXEC));
  VirtqueueSetup q{0, kQueueSize, kDesc, kAvail, kUsed, kick.get(), call.get()};
  ASSERT_TRUE(blk.Start(kVersion1, {&q, 1}).ok()) << "\nlog:\n" << peer.log();
  // libvhost-user signals a new call fd once when it is set ("in case of I/O
  // hang after reconnecting"): drain that before kicking, then wait until the
  // used ring really moved.
  uint64_t drained;
  while (true) {
    pollfd ready{call.get(), POLLIN, 0};
    if (poll(&ready, 1, 0) != 1) break;
    ASSERT_EQ(read(call.get(), &drained, 8), 8);
  }
  const uint64_t one = 1;
  ASSERT_EQ(write(kick.get(), &one, 8), 8);
  const uint8_t* used = mem.Slice(kUsed, 16)->data();
  uint16_t used_idx = 0;
  for (int waited_ms = 0; waited_ms < 5000; waited_ms += 100) {
    pollfd ready{call.get(), POLLIN, 0};
    if (poll(&ready, 1, 100) == 1) {
      ASSERT_EQ(read(call.get(), &drained, 8), 8);
    }
    std::memcpy(&used_idx, used + 2, 2);
    if (used_idx != 0) break;
  }
  ASSERT_EQ(used_idx, 1) << "the request was not completed within 5 s\nlog:\n" << peer.log();
  uint32_t used_id;
  std::memcpy(&used_id, used + 4, 4);
  EXPECT_EQ(used_id, 0u);
  EXPECT_EQ(mem.Slice(kStatus, 1).value()[0], 0) << "VIRTIO_BLK_S_OK";
  const std::span<uint8_t> data = mem.Slice(kData, 512).value();
  size_t mismatches = 0;
  for (size_t i = 0; i < 512; ++i) mismatches += data[i] != Pattern(i);
  EXPECT_EQ(mismatches, 0u) << "sector 0 differs from the image";

  EXPECT_TRUE(blk.Stop().ok());
}

TEST(VhostUserRealPeerTest, Virtiofsd_NegotiatesFeatures) {
  if (access(kVirtiofsd, X_OK) != 0) {
    GTEST_SKIP() << "\n\n*** " << kVirtiofsd
                 << " is not installed: the virtiofsd real-peer test DID NOT RUN ***\n";
  }
  Peer peer;
  const std::string shared = peer.dir() + "/shared";
  ASSERT_EQ(mkdir(shared.c_str(), 0755), 0);
  const std::string sock = peer.dir() + "/fs.sock";
  // The default namespace sandbox needs unshare(2), which containers often
  // forbid; chroot works for root anywhere.
  peer.Spawn({kVirtiofsd, "--socket-path=" + sock, "-o", "source=" + shared, "-o",
              "sandbox=chroot", "-o", "cache=none"});

  absl::StatusOr<GuestMemory> ram = GuestMemory::Create(kRamBase, 4 << 20);
  ASSERT_TRUE(ram.ok());
  absl::StatusOr<std::unique_ptr<VhostUserFrontend>> fe =
      VhostUserFrontend::Connect(sock, 26, *ram, nullptr, 2);
  ASSERT_TRUE(fe.ok()) << fe.status() << "\nvirtiofsd log:\n" << peer.log();
  VhostUserFrontend& fs = **fe;
  std::printf("virtiofsd: features %s (device %s), protocol features offered %s negotiated %s, "
              "queues %d\n",
              Hex(fs.backend_features()).c_str(), Hex(fs.device_features()).c_str(),
              Hex(fs.offered_protocol_features()).c_str(), Hex(fs.protocol_features()).c_str(),
              fs.num_queues());
  EXPECT_NE(fs.device_features() & kVersion1, 0u);
  if (fs.HasProtocolFeature(vhost_user::kProtocolConfig)) {
    char tag[36] = {};
    EXPECT_TRUE(fs.ReadConfig(0, {reinterpret_cast<uint8_t*>(tag), sizeof(tag)}).ok());
    std::printf("virtiofsd: config tag \"%.36s\"\n", tag);
  } else {
    uint8_t tag[36];
    EXPECT_EQ(fs.ReadConfig(0, tag).code(), absl::StatusCode::kUnimplemented);
  }
}

}  // namespace
}  // namespace rmem::vmm

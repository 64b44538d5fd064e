// libFuzzer target: the vhost-user back-end's message path, as a hostile
// front-end drives it. The input is a byte stream from the front-end, cut
// into chunks and given fds as the input says:
//   1. the incremental reader reassembles it (any chunking) and the decoder
//      decodes each message in a context the input picks; an accepted
//      request must keep the decoder's promises;
//   2. the same stream goes to a live Connection over a socketpair, on an
//      event loop, with a device that answers every chain: handlers,
//      replies and state changes run for real.
// Any outcome is fine; a crash or a sanitizer report is a bug.
//
// Input: [mode byte][protocol features (8 bytes)] then records:
//   [chunk length - 1 (mod 64)][fds][chunk bytes...]
// mode bit 0: the decoder's context is OWNED; bit 1: also run a live
// connection. fds: (byte % 16) % 10 fds travel with the chunk, eventfds
// already signalled (so a kick fd fires at once), except that with bit 7 set
// the first is a sealed 64 KiB memfd holding the input (guest memory that a
// SET_MEM_TABLE can map: rings and buffers then come from the input too).
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "base/event_loop.h"
#include "virtio_rmem/vhost_user/connection.h"
#include "virtio_rmem/vhost_user/log.h"
#include "virtio_rmem/vhost_user/message_reader.h"
#include "virtio_rmem/vhost_user/request.h"

namespace {

using namespace rmem;
using namespace rmem::virtio_rmem;

constexpr int kQueues = 2;
constexpr uint64_t kFeatures = (uint64_t{1} << 32) | (uint64_t{1} << 30) | 1;
constexpr uint64_t kProtocol =
    (1 << vhost_user::kProtocolMq) | (1 << vhost_user::kProtocolReplyAck) |
    (1 << vhost_user::kProtocolBackendReq) | (1 << vhost_user::kProtocolConfig) |
    (1 << vhost_user::kProtocolBackendSendFd) | (1 << vhost_user::kProtocolResetDevice) |
    (1 << vhost_user::kProtocolShmem);
constexpr size_t kMemfdSize = 64 * 1024;

struct Chunk {
  std::vector<uint8_t> bytes;
  int fds;
  bool memfd;
};

std::vector<Chunk> Chunks(const uint8_t* data, size_t size) {
  std::vector<Chunk> out;
  while (size >= 2) {
    const size_t len = 1 + data[0] % 64;
    const int fds = (data[1] & 0xf) % 10;
    const bool memfd = (data[1] & 0x80) != 0 && fds > 0;
    data += 2;
    size -= 2;
    const size_t n = std::min(len, size);
    out.push_back({{data, data + n}, fds, memfd});
    data += n;
    size -= n;
  }
  return out;
}

// The input, as the content of guest memory.
std::span<const uint8_t> g_input;

std::vector<Fd> MakeFds(const Chunk& chunk) {
  std::vector<Fd> fds;
  for (int i = 0; i < chunk.fds; ++i) {
    if (i == 0 && chunk.memfd) {
      Fd m(memfd_create("fuzz-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING));
      if (ftruncate(m.get(), kMemfdSize) != 0) std::abort();
      (void)!pwrite(m.get(), g_input.data(), std::min(g_input.size(), kMemfdSize), 0);
      if (fcntl(m.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) std::abort();
      fds.push_back(std::move(m));
      continue;
    }
    fds.emplace_back(eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK));
  }
  return fds;
}

void CheckDecoded(const FrontendMessage& r) {
  const RequestRule* rule = FindRequestRule(static_cast<uint32_t>(r.code));
  if (rule == nullptr) std::abort();
  switch (rule->payload) {
    case PayloadKind::kVringState:
      if (r.state.index >= kQueues) std::abort();
      break;
    case PayloadKind::kVringFile:
      if (r.file.index >= kQueues || r.fds.size() != (r.file.has_fd ? 1u : 0u)) std::abort();
      break;
    case PayloadKind::kVringAddr:
      if (r.addr.index >= kQueues) std::abort();
      break;
    case PayloadKind::kConfig:
      if (uint64_t{r.config.offset} + r.config.size > vhost_user::kMaxConfigSize) std::abort();
      break;
    case PayloadKind::kMemTable:
      if (r.regions.empty() || r.regions.size() > 8 || r.regions.size() != r.fds.size()) {
        std::abort();
      }
      break;
    default:
      break;
  }
}

class NullDevice : public VirtioDevice {
 public:
  uint32_t device_id() const override { return 65534; }
  uint64_t device_features() const override { return 1; }
  std::vector<QueueKind> queues() const override {
    return {QueueKind::kRequest, QueueKind::kDeviceToDriver};
  }
  std::vector<uint64_t> shmem_region_sizes() const override { return {1 << 20}; }
  std::vector<uint8_t> ReadConfig() const override { return std::vector<uint8_t>(16, 0xab); }
  void OnConnect(DeviceHost&) override {}
  uint32_t OnChain(uint16_t, const DescriptorChain& chain) override {
    const uint8_t b[4] = {1, 2, 3, 4};
    return chain.Write(0, b) ? 4 : 0;
  }
  void OnDisconnect() override {}
};

void RunConnection(const std::vector<Chunk>& chunks) {
  static std::unique_ptr<EventLoop> loop = *EventLoop::Create();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  Fd ours(sv[0]);
  NullDevice device;
  DeviceShape shape{kFeatures, kProtocol, device.queues(), device.shmem_region_sizes()};
  bool ended = false;
  absl::StatusOr<std::shared_ptr<Connection>> c =
      Connection::Start(*loop, Fd(sv[1]), "fuzzed front-end", device, shape,
                        [&ended](absl::Status) { ended = true; });
  if (!c.ok()) std::abort();
  char sink[4096];
  for (const Chunk& chunk : chunks) {
    if (ended) break;
    std::vector<Fd> fds = MakeFds(chunk);
    std::vector<int> raw;
    for (const Fd& fd : fds) raw.push_back(fd.get());
    if (vhost_user::SendChunk(ours.get(), chunk.bytes, raw, MSG_DONTWAIT) < 0) break;
    (void)loop->RunOnce(absl::ZeroDuration());
    while (recv(ours.get(), sink, sizeof(sink), MSG_DONTWAIT) > 0) {
    }
  }
  // Let posted work (continuations, the teardown) run, then end it all.
  for (int i = 0; i < 4; ++i) (void)loop->RunOnce(absl::ZeroDuration());
  c->reset();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // A log line per input would drown libFuzzer's own output.
  SetLogSink([](absl::string_view) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 9) return 0;
  FrontendDecodeContext context;
  context.state = (data[0] & 1) ? ConnectionState::kOwned : ConnectionState::kAwaitingOwner;
  std::memcpy(&context.protocol_features, data + 1, 8);
  context.offered_features = kFeatures;
  context.offered_protocol_features = kProtocol;
  context.num_queues = kQueues;
  const std::vector<Chunk> chunks = Chunks(data + 9, size - 9);

  g_input = {data, size};

  // 1. Reader and decoder, no I/O.
  std::optional<MessageReader> reader;
  reader.emplace(vhost_user::RequestSpace::kFrontend, "fuzzed front-end");
  for (const Chunk& chunk : chunks) {
    std::vector<Fd> fds = MakeFds(chunk);
    std::span<const uint8_t> left = chunk.bytes;
    while (!left.empty()) {
      std::span<uint8_t> into = reader->NextBuffer();
      const size_t n = std::min(into.size(), left.size());
      std::memcpy(into.data(), left.data(), n);
      left = left.subspan(n);
      absl::StatusOr<std::optional<vhost_user::Message>> m = reader->Advance(n, std::move(fds));
      fds.clear();
      if (!m.ok()) {
        // The stream is unusable: start over with the next chunk.
        reader.emplace(vhost_user::RequestSpace::kFrontend, "fuzzed front-end");
        break;
      }
      if (!m->has_value()) continue;
      absl::StatusOr<FrontendMessage> r = DecodeFrontendRequest(**std::move(m), context);
      if (r.ok()) CheckDecoded(*r);
    }
  }

  // 2. A live connection.
  if (data[0] & 2) RunConnection(chunks);
  return 0;
}

// What rmemd's vhost-user back-end adds to one round trip, measured against
// the floor in the same run:
//   - a request/reply on the vhost-user socket (GET_CONFIG from rmem-vmm's
//     front-end through the back-end's loop, reader, decoder, device and
//     reply) against a bare Unix socket ping-pong of the same sizes between
//     two threads;
//   - a virtqueue request (the driver posts a chain and kicks; the back-end
//     walks and validates it, the device answers, the used ring is updated
//     and the call eventfd signalled) against a bare eventfd ping-pong.
// Prints Google Benchmark's table, then the two ratios.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "base/event_loop.h"
#include "base/eventfd.h"
#include "benchmark/benchmark.h"
#include "virtio_rmem/vhost_user/log.h"
#include "virtio_rmem/vhost_user/server.h"
#include "vmm/vhost_user/frontend.h"

namespace rmem {
namespace {

using virtio_rmem::DescriptorChain;
using virtio_rmem::QueueKind;

constexpr size_t kConfigMessageBytes = 12 + 12 + 8;  // header, config header, 8 bytes
constexpr GuestAddr kRam(0x40000000);
constexpr GuestAddr kDesc(0x40000000), kAvail(0x40001000), kUsed(0x40002000);
constexpr GuestAddr kIn(0x40010000), kOut(0x40011000);
constexpr uint16_t kQueueSize = 256;

// Answers every request with the sum of its bytes.
class SumDevice : public virtio_rmem::VirtioDevice {
 public:
  uint32_t device_id() const override { return 65534; }
  uint64_t device_features() const override { return 0; }
  std::vector<QueueKind> queues() const override { return {QueueKind::kRequest}; }
  std::vector<uint8_t> ReadConfig() const override { return std::vector<uint8_t>(8, 1); }
  void OnConnect(virtio_rmem::DeviceHost&) override {}
  uint32_t OnChain(uint16_t, const DescriptorChain& chain) override {
    uint64_t sum = 0;
    for (uint8_t b : chain.readable()) sum += b;
    return chain.Write(0, {reinterpret_cast<const uint8_t*>(&sum), 8}) ? 8 : 0;
  }
  void OnDisconnect() override {}
};

// rmemd's side in a thread, rmem-vmm's front-end connected to it.
class Setup {
 public:
  Setup() {
    char dir[] = "/tmp/rmem-vub-bench-XXXXXX";
    dir_ = mkdtemp(dir);
    loop_ = *EventLoop::Create();
    server_ = std::make_unique<virtio_rmem::VhostUserServer>(*loop_);
    if (!server_->AddGuest({"bench", dir_ + "/bench.sock"}, device_).ok()) std::abort();
    thread_ = std::thread([this] { (void)loop_->Run(); });
    ram_ = std::make_unique<vmm::GuestMemory>(*vmm::GuestMemory::Create(kRam, 1 << 20));
    frontend_ = *vmm::VhostUserFrontend::Connect(dir_ + "/bench.sock", 65534, *ram_, nullptr, 1);
  }
  ~Setup() {
    frontend_.reset();
    loop_->Stop();
    thread_.join();
    server_.reset();
    loop_.reset();
    unlink((dir_ + "/bench.sock").c_str());
    rmdir(dir_.c_str());
  }
  vmm::VhostUserFrontend& frontend() { return *frontend_; }
  uint8_t* At(GuestAddr a) { return ram_->host_base() + (a.value() - kRam.value()); }

 private:
  std::string dir_;
  SumDevice device_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<virtio_rmem::VhostUserServer> server_;
  std::thread thread_;
  std::unique_ptr<vmm::GuestMemory> ram_;
  std::unique_ptr<vmm::VhostUserFrontend> frontend_;
};

void BM_BareSocketRoundTrip(benchmark::State& state) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  Fd a(sv[0]), b(sv[1]);
  std::thread echo([&b] {
    char buf[kConfigMessageBytes];
    while (recv(b.get(), buf, sizeof(buf), MSG_WAITALL) == sizeof(buf)) {
      if (send(b.get(), buf, sizeof(buf), MSG_NOSIGNAL) != sizeof(buf)) break;
    }
  });
  char buf[kConfigMessageBytes] = {};
  for (auto _ : state) {
    if (send(a.get(), buf, sizeof(buf), MSG_NOSIGNAL) != sizeof(buf)) std::abort();
    if (recv(a.get(), buf, sizeof(buf), MSG_WAITALL) != sizeof(buf)) std::abort();
  }
  shutdown(a.get(), SHUT_RDWR);
  echo.join();
}
BENCHMARK(BM_BareSocketRoundTrip)->UseRealTime();

void BM_BackendMessageRoundTrip(benchmark::State& state) {
  Setup setup;
  uint8_t config[8];
  for (auto _ : state) {
    if (!setup.frontend().ReadConfig(0, config).ok()) std::abort();
  }
}
BENCHMARK(BM_BackendMessageRoundTrip)->UseRealTime();

void BM_BareEventfdPingPong(benchmark::State& state) {
  Fd ping = MakeEventFd(/*nonblocking=*/false), pong = MakeEventFd(/*nonblocking=*/false);
  std::thread other([&] {
    uint64_t v;
    while (read(ping.get(), &v, 8) == 8 && v != 1000000) SignalEventFd(pong.get());
  });
  uint64_t v;
  for (auto _ : state) {
    SignalEventFd(ping.get());
    if (read(pong.get(), &v, 8) != 8) std::abort();
  }
  const uint64_t stop = 1000000;
  if (write(ping.get(), &stop, 8) != 8) std::abort();
  other.join();
}
BENCHMARK(BM_BareEventfdPingPong)->UseRealTime();

void BM_BackendVirtqueueRoundTrip(benchmark::State& state) {
  Setup setup;
  Fd kick = MakeEventFd(), call = MakeEventFd();
  const vmm::VirtqueueSetup q{0, kQueueSize, kDesc, kAvail, kUsed, kick.get(), call.get()};
  if (!setup.frontend().Start(uint64_t{1} << 32, {&q, 1}).ok()) std::abort();
  std::memcpy(setup.At(kIn), "\x01\x02\x03\x04", 4);
  // Two descriptors per request: 4 readable bytes, 8 writable.
  uint8_t* desc = setup.At(kDesc);
  for (uint16_t i = 0; i < kQueueSize; i += 2) {
    const struct {
      uint64_t addr;
      uint32_t len;
      uint16_t flags, next;
    } d[2] = {{kIn.value(), 4, 1, static_cast<uint16_t>(i + 1)}, {kOut.value(), 8, 2, 0}};
    std::memcpy(desc + 16 * i, d, sizeof(d));
  }
  auto* avail_idx = reinterpret_cast<uint16_t*>(setup.At(kAvail) + 2);
  uint16_t* avail_ring = avail_idx + 1;
  auto* used_idx = reinterpret_cast<uint16_t*>(setup.At(kUsed) + 2);
  uint16_t next = 0;
  uint64_t v;
  for (auto _ : state) {
    avail_ring[next % kQueueSize] = static_cast<uint16_t>((2 * next) % kQueueSize);
    ++next;
    std::atomic_ref<uint16_t>(*avail_idx).store(next, std::memory_order_release);
    SignalEventFd(kick.get());
    // The back-end made the call fd non-blocking (virtio_rmem/vhost_user/peer_eventfd.h).
    pollfd p{call.get(), POLLIN, 0};
    if (poll(&p, 1, -1) != 1 || read(call.get(), &v, 8) != 8) std::abort();
    if (std::atomic_ref<uint16_t>(*used_idx).load(std::memory_order_acquire) != next) {
      state.SkipWithError("the used ring did not advance by one");
      break;
    }
  }
}
BENCHMARK(BM_BackendVirtqueueRoundTrip)->UseRealTime();

// Remembers each benchmark's real time per iteration, for the ratios: the
// median when repetitions were asked for, else the one run.
class Recorder : public benchmark::ConsoleReporter {
 public:
  Recorder() : ConsoleReporter(OO_None) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) ns_[r.benchmark_name()] = r.GetAdjustedRealTime();
    ConsoleReporter::ReportRuns(runs);
  }
  double ns(const std::string& name) const {
    for (const char* suffix : {"/real_time_median", "/real_time"}) {
      auto it = ns_.find(name + suffix);
      if (it != ns_.end()) return it->second;
    }
    return 0;
  }

 private:
  std::map<std::string, double> ns_;
};

}  // namespace
}  // namespace rmem

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // Each benchmark's set-up connects and disconnects: no log line for that.
  rmem::virtio_rmem::SetLogSink([](absl::string_view) {});
  rmem::Recorder recorder;
  benchmark::RunSpecifiedBenchmarks(&recorder);
  const double sock = recorder.ns("BM_BareSocketRoundTrip");
  const double msg = recorder.ns("BM_BackendMessageRoundTrip");
  const double efd = recorder.ns("BM_BareEventfdPingPong");
  const double vq = recorder.ns("BM_BackendVirtqueueRoundTrip");
  if (sock > 0 && msg > 0) {
    std::printf(
        "vhost-user request round trip through the back-end: %.0f ns = %.2f x a bare "
        "Unix socket round trip (%.0f ns)\n",
        msg, msg / sock, sock);
  }
  if (efd > 0 && vq > 0) {
    std::printf(
        "virtqueue request round trip (kick -> used + call): %.0f ns = %.2f x a bare "
        "eventfd ping-pong (%.0f ns)\n",
        vq, vq / efd, efd);
  }
  benchmark::Shutdown();
  return 0;
}

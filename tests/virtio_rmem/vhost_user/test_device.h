// TEST ONLY: a small virtio device for the back-end's tests, and a harness
// that runs a VhostUserServer on its event loop in a thread.
//
// EchoSumDevice: queue 0 takes requests, queue 1 is an event queue the
// device fills (PushToQueue); one 1 MiB shared memory region; 16 bytes of
// config space whose second half is writable. A request's first readable
// byte says what to do with the rest:
//   'S' bytes...                       reply: their sum as u64
//   'E' bytes...                       reply: the bytes (as many as fit)
//   'M' u64 region_off, u64 fd_off, u64 len, u8 writable
//                                      MapShmem of the device's memfd; reply u32 status code
//   'U' u64 region_off, u64 len        UnmapShmem; reply u32 status code
// Anything else: reply nothing (0 bytes).
// It records OnRingStarted calls (ring_starts) and runs a hook there if set.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "base/event_loop.h"
#include "gtest/gtest.h"
#include "virtio_rmem/vhost_user/device.h"
#include "virtio_rmem/vhost_user/server.h"

namespace rmem::virtio_rmem::testing {

inline constexpr absl::Duration kGuard = absl::Seconds(20);  // hang guard, never a measurement

class EchoSumDevice : public VirtioDevice {
 public:
  static constexpr uint32_t kId = 65534;
  static constexpr uint64_t kRegionSize = 1 << 20;
  static constexpr uint64_t kPieceBytes = 2 << 20;

  EchoSumDevice() : config_(16) {
    for (size_t i = 0; i < config_.size(); ++i) config_[i] = static_cast<uint8_t>(0xc0 + i);
    pieces_ = Fd(memfd_create("test-device-pieces", MFD_CLOEXEC));
    EXPECT_EQ(ftruncate(pieces_.get(), kPieceBytes), 0);
    for (uint64_t off = 0; off < kPieceBytes; off += 4096) {
      const uint64_t tag = 0x5a5a000000000000 | off;
      EXPECT_EQ(pwrite(pieces_.get(), &tag, 8, static_cast<off_t>(off)), 8);
    }
  }

  uint32_t device_id() const override { return kId; }
  uint64_t device_features() const override { return 1; }
  std::vector<QueueKind> queues() const override {
    return {QueueKind::kRequest, QueueKind::kDeviceToDriver};
  }
  std::vector<uint64_t> shmem_region_sizes() const override { return {kRegionSize}; }
  std::vector<uint8_t> ReadConfig() const override { return config_; }
  absl::Status WriteConfig(uint32_t offset, std::span<const uint8_t> bytes) override {
    if (offset < 8 || offset + bytes.size() > config_.size()) {
      return absl::PermissionDeniedError("only config bytes 8-15 are writable");
    }
    std::memcpy(config_.data() + offset, bytes.data(), bytes.size());
    return absl::OkStatus();
  }

  void OnConnect(DeviceHost& host) override {
    host_ = &host;
    absl::MutexLock lock(&mu_);
    ++connects_;
  }
  void OnDisconnect() override {
    absl::MutexLock lock(&mu_);
    ++disconnects_;
  }
  void OnReset() override {
    absl::MutexLock lock(&mu_);
    ++resets_;
  }
  void OnRingStarted(uint16_t queue) override {
    if (on_ring_started_) on_ring_started_(queue);
    absl::MutexLock lock(&mu_);
    ring_starts_.push_back(queue);
  }
  void OnBuffersAvailable(uint16_t queue) override {
    EXPECT_EQ(queue, 1);
    absl::MutexLock lock(&mu_);
    ++buffers_available_;
  }

  uint32_t OnChain(uint16_t queue, const DescriptorChain& chain) override {
    EXPECT_EQ(queue, 0);
    {
      absl::MutexLock lock(&mu_);
      ++chains_;
    }
    std::span<const uint8_t> in = chain.readable();
    if (in.empty()) return 0;
    const uint8_t op = in[0];
    in = in.subspan(1);
    auto u64 = [&](size_t at) {
      uint64_t v = 0;
      if (in.size() >= at + 8) std::memcpy(&v, in.data() + at, 8);
      return v;
    };
    auto reply32 = [&](absl::Status s) -> uint32_t {
      const uint32_t code = static_cast<uint32_t>(s.code());
      last_status_ = s;
      return chain.Write(0, {reinterpret_cast<const uint8_t*>(&code), 4}) ? 4 : 0;
    };
    switch (op) {
      case 'S': {
        uint64_t sum = 0;
        for (uint8_t b : in) sum += b;
        return chain.Write(0, {reinterpret_cast<const uint8_t*>(&sum), 8}) ? 8 : 0;
      }
      case 'E': {
        const uint32_t n =
            std::min<uint32_t>(static_cast<uint32_t>(in.size()), chain.writable_size());
        EXPECT_TRUE(chain.Write(0, in.first(n)));
        return n;
      }
      case 'M':
        return reply32(host_->MapShmem({.region_id = 0,
                                        .region_offset = u64(0),
                                        .fd = pieces_.get(),
                                        .fd_offset = u64(8),
                                        .length = u64(16),
                                        .writable = in.size() > 24 && in[24] != 0}));
      case 'U':
        return reply32(host_->UnmapShmem(0, u64(0), u64(8)));
      default:
        return 0;
    }
  }

  // For tests, from the loop thread (BackendThread::RunInLoop).
  DeviceHost* host() const { return host_; }
  // Runs in OnRingStarted, before the call is recorded.
  void SetOnRingStarted(std::function<void(uint16_t)> f) { on_ring_started_ = std::move(f); }
  const absl::Status& last_status() const { return last_status_; }

  // From any thread.
  int connects() const { return Get(&EchoSumDevice::connects_); }
  int disconnects() const { return Get(&EchoSumDevice::disconnects_); }
  int resets() const { return Get(&EchoSumDevice::resets_); }
  int chains() const { return Get(&EchoSumDevice::chains_); }
  int buffers_available() const { return Get(&EchoSumDevice::buffers_available_); }
  // The queues OnRingStarted was called with, in order.
  std::vector<uint16_t> ring_starts() const {
    absl::MutexLock lock(&mu_);
    return ring_starts_;
  }
  // Waits (up to kGuard) until disconnects() reaches `n`.
  bool WaitForDisconnects(int n) const {
    std::pair<const EchoSumDevice*, int> arg(this, n);
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](std::pair<const EchoSumDevice*, int>* a) {
                                      return a->first->disconnects_ >= a->second;
                                    },
                                    &arg),
                                kGuard);
  }

 private:
  int Get(int EchoSumDevice::*field) const {
    absl::MutexLock lock(&mu_);
    return this->*field;
  }

  std::vector<uint8_t> config_;
  Fd pieces_;
  DeviceHost* host_ = nullptr;
  absl::Status last_status_;
  std::function<void(uint16_t)> on_ring_started_;
  mutable absl::Mutex mu_;
  int connects_ ABSL_GUARDED_BY(mu_) = 0;
  int disconnects_ ABSL_GUARDED_BY(mu_) = 0;
  int resets_ ABSL_GUARDED_BY(mu_) = 0;
  int chains_ ABSL_GUARDED_BY(mu_) = 0;
  int buffers_available_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<uint16_t> ring_starts_ ABSL_GUARDED_BY(mu_);
};

// A VhostUserServer on its own EventLoop, run by a thread. Guests are added
// before Start; afterwards everything touching the server goes through
// RunInLoop.
class BackendThread {
 public:
  BackendThread() {
    char dir[] = "/tmp/rmem-vub-XXXXXX";
    dir_ = mkdtemp(dir);
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
    EXPECT_TRUE(loop.ok());
    loop_ = *std::move(loop);
    server_ = std::make_unique<VhostUserServer>(*loop_);
  }
  ~BackendThread() {
    if (thread_.joinable()) {
      loop_->Stop();
      thread_.join();
    }
    server_.reset();
    loop_.reset();
    std::system(("rm -rf " + dir_).c_str());
  }

  std::string Path(const std::string& guest) const { return dir_ + "/" + guest + ".sock"; }
  const std::string& dir() const { return dir_; }
  VhostUserServer& server() { return *server_; }
  EventLoop& loop() { return *loop_; }

  absl::Status AddGuest(const std::string& name, VirtioDevice& device) {
    return server_->AddGuest({name, Path(name)}, device);
  }
  void Start() {
    thread_ = std::thread([this] { EXPECT_TRUE(loop_->Run().ok()); });
  }

  // Runs `f` on the loop's thread and returns its result.
  template <typename F>
  auto RunInLoop(F f) -> decltype(f()) {
    using R = decltype(f());
    absl::Notification done;
    if constexpr (std::is_void_v<R>) {
      loop_->Post([&] {
        f();
        done.Notify();
      });
      EXPECT_TRUE(done.WaitForNotificationWithTimeout(kGuard));
    } else {
      std::optional<R> result;
      loop_->Post([&] {
        result.emplace(f());
        done.Notify();
      });
      EXPECT_TRUE(done.WaitForNotificationWithTimeout(kGuard));
      return *std::move(result);
    }
  }

  GuestStatus Status(const std::string& guest) {
    return RunInLoop([&] { return *server_->Status(guest); });
  }

 private:
  std::string dir_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<VhostUserServer> server_;
  std::thread thread_;
};

}  // namespace rmem::virtio_rmem::testing

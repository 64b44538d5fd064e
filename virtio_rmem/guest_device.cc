#include "virtio_rmem/guest_device.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/log.h"

namespace rmem::virtio_rmem {

namespace {

constexpr int kVmmExitWaitMs = 10000;

}  // namespace

GuestDevice::GuestDevice(Broker& broker, ShmRegionStage2& stage2, VmId vm, uint64_t region_bytes,
                         std::function<void()> after_request)
    : stage2_(stage2),
      rmem_(broker, vm),
      region_bytes_(region_bytes),
      after_request_(std::move(after_request)) {}

GuestDevice::~GuestDevice() {
  if (vmm_pidfd_ >= 0) close(vmm_pidfd_);
}

void GuestDevice::OnConnect(DeviceHost& host) {
  host_ = &host;
  const int pid = host.peer_pid();
  vmm_pid_ = pid;
  if (vmm_pidfd_ >= 0) close(vmm_pidfd_);
  vmm_pidfd_ = pid > 0 ? static_cast<int>(syscall(SYS_pidfd_open, pid, 0)) : -1;
  if (vmm_pidfd_ < 0) {
    rmem::Log(LogLevel::kWarn, absl::StrCat(VmName(vm()), ": cannot hold the VMM's process (pid ",
                                            pid, "): ", std::strerror(errno)));
  }
}

void GuestDevice::OnRingStarted(uint16_t queue) {
  if (queue != VIRTIO_RMEM_VQ_REQUEST || host_ == nullptr || stage2_.attached(vm())) return;
  const size_t restored = stage2_.waiting(vm());
  if (absl::Status s = stage2_.Attach(vm(), region_bytes_, this, [this] { SeverVmm(); });
      !s.ok()) {
    rmem::Log(LogLevel::kWarn, absl::StrCat(VmName(vm()), ": ", s.ToString()));
    return;
  }
  if (restored > 0) {
    rmem::Log(LogLevel::kInfo, absl::StrCat(VmName(vm()), ": its VMM is back: ", restored,
                                            " restored mappings made again"));
  }
}

void GuestDevice::SeverVmm() {
  const int pid = vmm_pid_;
  if (pid == getpid()) {
    rmem::Log(LogLevel::kWarn,
              absl::StrCat(VmName(vm()), ": the VMM is this process (a test): not killed"));
    return;
  }
  if (vmm_pidfd_ < 0) {
    // Without a handle on the VMM nothing proves its mappings are gone:
    // reusing the pages could expose them. Stop rather than risk it.
    rmem::Log(LogLevel::kError,
              absl::StrCat("FATAL: ", VmName(vm()),
                           ": a VMM that may still map buffers cannot be stopped"));
    std::abort();
  }
  rmem::Log(LogLevel::kWarn, absl::StrCat(VmName(vm()), ": killing its VMM (pid ", pid,
                                          "): it may still map buffers"));
  syscall(SYS_pidfd_send_signal, vmm_pidfd_, SIGKILL, nullptr, 0);
  pollfd p{vmm_pidfd_, POLLIN, 0};
  if (poll(&p, 1, kVmmExitWaitMs) != 1) {
    rmem::Log(LogLevel::kError,
              absl::StrCat("FATAL: ", VmName(vm()), ": its VMM did not exit within ",
                           kVmmExitWaitMs, " ms of SIGKILL"));
    std::abort();
  }
}

uint32_t GuestDevice::OnChain(uint16_t queue, const DescriptorChain& chain) {
  (void)queue;  // only the requestq is a kRequest queue
  if (host_ != nullptr) rmem_.SetFeatures(host_->acked_features());
  const uint64_t failed_before = rmem_.counters().failed;
  const std::vector<uint8_t> response =
      rmem_.HandleRequest(chain.readable(), chain.writable_size());
  // Every request at debug level only: a guest's refusals are its own
  // mistakes, and a busy guest makes many requests.
  if (LogEnabled(LogLevel::kDebug)) {
    rmem::Log(LogLevel::kDebug,
              absl::StrCat(VmName(vm()), ": ",
                           response.empty() || rmem_.counters().failed != failed_before
                               ? rmem_.last_error()
                               : absl::StrCat(RequestTypeName(rmem_.last_type()), ": OK")));
  }
  uint32_t written = 0;
  if (!response.empty() && chain.Write(0, response)) written = static_cast<uint32_t>(response.size());
  if (after_request_) after_request_();
  return written;
}

void GuestDevice::OnBuffersAvailable(uint16_t queue) {
  (void)queue;
  FlushEvents();
}

void GuestDevice::FlushEvents() {
  if (host_ == nullptr) return;
  for (;;) {
    if (pending_.empty()) {
      std::optional<virtio_rmem_event> e = rmem_.NextEvent();
      if (!e) return;
      pending_.push_back(*e);
    }
    const virtio_rmem_event& e = pending_.front();
    const absl::Status s = host_->PushToQueue(VIRTIO_RMEM_VQ_EVENT, [&](const DescriptorChain& c) {
      if (c.writable_size() < sizeof(e)) return uint32_t{0};  // too short: returned empty
      std::vector<uint8_t> bytes(sizeof(e));
      std::memcpy(bytes.data(), &e, sizeof(e));
      return c.Write(0, bytes) ? static_cast<uint32_t>(sizeof(e)) : uint32_t{0};
    });
    if (!s.ok()) return;  // no buffer posted (or no connection): keep it queued
    pending_.pop_front();
    ++events_delivered_;
  }
}

void GuestDevice::OnReset() {
  pending_.clear();
  TearDown();
  if (after_request_) after_request_();
}

void GuestDevice::Retire() {
  if (host_ == nullptr) return;
  pending_.clear();
  TearDown();
}

void GuestDevice::OnDisconnect() {
  if (stage2_.mapped_bytes(vm()) > 0) SeverVmm();
  stage2_.Detach(vm());
  host_ = nullptr;
  if (vmm_pidfd_ >= 0) close(vmm_pidfd_);
  vmm_pidfd_ = -1;
  vmm_pid_ = 0;
  pending_.clear();
  TearDown();
  if (after_request_) after_request_();
}

void GuestDevice::TearDown() {
  if (absl::Status s = rmem_.GuestGone(); !s.ok()) {
    rmem::Log(LogLevel::kError, absl::StrCat(VmName(vm()), ": torn down, but ", s.ToString()));
  }
}

absl::Status GuestDevice::Map(uint64_t region_offset, int fd, uint64_t fd_offset,
                              uint64_t length, bool writable) {
  if (host_ == nullptr) return absl::UnavailableError("no VMM connected");
  return host_->MapShmem(ShmemPiece{.region_id = VIRTIO_RMEM_SHM_BUFFERS,
                                    .region_offset = region_offset,
                                    .fd = fd,
                                    .fd_offset = fd_offset,
                                    .length = length,
                                    .writable = writable});
}

absl::Status GuestDevice::Unmap(uint64_t region_offset, uint64_t length) {
  if (host_ == nullptr) return absl::UnavailableError("no VMM connected");
  return host_->UnmapShmem(VIRTIO_RMEM_SHM_BUFFERS, region_offset, length);
}

}  // namespace rmem::virtio_rmem

#include "vmm/virtio/virtio_mmio.h"

#include <poll.h>
#include <unistd.h>

#include <bit>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "broker/check.h"
#include "base/eventfd.h"
#include "base/sys_error.h"

namespace rmem::vmm {
namespace {

// Register offsets (VIRTIO 1.2 §4.2.2).
enum : uint64_t {
  kMagic = 0x000, kVersion = 0x004, kDeviceId = 0x008, kVendorId = 0x00c,
  kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014,
  kDriverFeatures = 0x020, kDriverFeaturesSel = 0x024,
  kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038, kQueueReady = 0x044,
  kQueueNotify = 0x050, kInterruptStatus = 0x060, kInterruptAck = 0x064, kStatus = 0x070,
  kQueueDescLow = 0x080, kQueueDescHigh = 0x084, kQueueDriverLow = 0x090,
  kQueueDriverHigh = 0x094, kQueueDeviceLow = 0x0a0, kQueueDeviceHigh = 0x0a4,
  kShmSel = 0x0ac, kShmLenLow = 0x0b0, kShmLenHigh = 0x0b4, kShmBaseLow = 0x0b8,
  kShmBaseHigh = 0x0bc, kQueueReset = 0x0c0, kConfigGeneration = 0x0fc, kConfig = 0x100,
};

constexpr uint32_t kMagicValue = 0x74726976;  // "virt"
constexpr uint32_t kVendor = 0x4d454d52;      // "RMEM"

// Device status bits (§2.1).
constexpr uint32_t kStatusFeaturesOk = 8;
constexpr uint32_t kStatusDriverOk = 4;
constexpr uint32_t kStatusNeedsReset = 64;

constexpr uint32_t kIntUsedBuffer = 1;
constexpr uint32_t kIntConfigChange = 2;

constexpr uint64_t kFeatureVersion1 = uint64_t{1} << 32;
constexpr uint64_t kGuestErrorLogLimit = 8;

uint32_t Lo(uint64_t v) { return static_cast<uint32_t>(v); }
uint32_t Hi(uint64_t v) { return static_cast<uint32_t>(v >> 32); }
void SetLo(uint64_t& v, uint32_t x) { v = (v & ~uint64_t{0xffffffff}) | x; }
void SetHi(uint64_t& v, uint32_t x) { v = (v & 0xffffffff) | (uint64_t{x} << 32); }

}  // namespace

absl::StatusOr<std::unique_ptr<VirtioMmioTransport>> VirtioMmioTransport::Create(
    std::string name, GuestAddr base, VirtioBackend* backend, IrqLine* irq,
    std::vector<ShmPlacement> shm, const IoEventRegistrar& register_kick) {
  std::unique_ptr<VirtioMmioTransport> t(
      new VirtioMmioTransport(std::move(name), backend, irq, std::move(shm)));
  t->stop_ = MakeEventFd();
  if (!t->stop_.valid()) return ErrnoError("eventfd");
  {
    absl::MutexLock lock(&t->mu_);
    t->queues_.resize(static_cast<size_t>(backend->num_queues()));
    for (size_t i = 0; i < t->queues_.size(); ++i) {
      Queue& q = t->queues_[i];
      q.kick = MakeEventFd();
      q.call = MakeEventFd();
      if (!q.kick.valid() || !q.call.valid()) return ErrnoError("eventfd for a virtqueue");
      if (absl::Status s = register_kick(GuestAddr(base.value() + kQueueNotify), i, q.kick.get());
          !s.ok()) {
        return s;
      }
    }
  }
  t->watcher_ = std::thread([raw = t.get()] { raw->WatchCalls(); });
  return t;
}

VirtioMmioTransport::VirtioMmioTransport(std::string name, VirtioBackend* backend, IrqLine* irq,
                                         std::vector<ShmPlacement> shm)
    : name_(std::move(name)),
      backend_(backend),
      irq_(irq),
      shm_(std::move(shm)),
      device_features_(backend->device_features()) {}

VirtioMmioTransport::~VirtioMmioTransport() {
  if (watcher_.joinable()) {
    SignalEventFd(stop_.get());
    watcher_.join();
  }
}

uint64_t VirtioMmioTransport::guest_errors() const {
  absl::MutexLock lock(&mu_);
  return guest_errors_;
}

void VirtioMmioTransport::GuestErrorLocked(const std::string& what) {
  if (guest_errors_++ < kGuestErrorLogLimit) {
    std::fprintf(stderr, "rmem-vmm: %s: guest error: %s (ignored)\n", name_.c_str(), what.c_str());
  }
}

void VirtioMmioTransport::MmioRead(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  absl::MutexLock lock(&mu_);
  if (offset >= kConfig) {
    absl::Status s = backend_->ReadConfig(static_cast<uint32_t>(offset - kConfig), data);
    if (!s.ok()) GuestErrorLocked(absl::StrCat("config read: ", s.message()));
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) {
    GuestErrorLocked(absl::StrCat(data.size(), "-byte read of register ", Hex(offset),
                                  " (registers are 32-bit)"));
    return;
  }
  const uint32_t v = ReadRegLocked(offset);
  std::memcpy(data.data(), &v, 4);
}

void VirtioMmioTransport::MmioWrite(uint64_t offset, std::span<const uint8_t> data) {
  absl::MutexLock lock(&mu_);
  if (offset >= kConfig) {
    absl::Status s = backend_->WriteConfig(static_cast<uint32_t>(offset - kConfig), data);
    if (!s.ok()) GuestErrorLocked(absl::StrCat("config write: ", s.message()));
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) {
    GuestErrorLocked(absl::StrCat(data.size(), "-byte write of register ", Hex(offset),
                                  " (registers are 32-bit)"));
    return;
  }
  uint32_t v;
  std::memcpy(&v, data.data(), 4);
  WriteRegLocked(offset, v);
}

uint32_t VirtioMmioTransport::ReadRegLocked(uint64_t offset) {
  const bool queue_valid = queue_sel_ < queues_.size();
  const ShmPlacement* shm = nullptr;
  for (const ShmPlacement& p : shm_) {
    if (p.id == shm_sel_) shm = &p;
  }
  switch (offset) {
    case kMagic:
      return kMagicValue;
    case kVersion:
      return 2;
    case kDeviceId:
      return backend_->device_id();
    case kVendorId:
      return kVendor;
    case kDeviceFeatures:
      return device_features_sel_ == 0 ? Lo(device_features_)
             : device_features_sel_ == 1 ? Hi(device_features_)
                                         : 0;
    case kQueueNumMax:
      return queue_valid ? backend_->max_queue_size() : 0;
    case kQueueReady:
      return queue_valid && queues_[queue_sel_].ready ? 1 : 0;
    case kInterruptStatus:
      return interrupt_status_;
    case kStatus:
      return status_;
    case kShmLenLow:
      return shm ? Lo(shm->size) : 0xffffffff;  // -1: no such region (§4.2.2)
    case kShmLenHigh:
      return shm ? Hi(shm->size) : 0xffffffff;
    case kShmBaseLow:
      return shm ? Lo(shm->base.value()) : 0xffffffff;
    case kShmBaseHigh:
      return shm ? Hi(shm->base.value()) : 0xffffffff;
    case kQueueReset:  // VIRTIO_F_RING_RESET is not offered
      return 0;
    case kConfigGeneration:
      return config_generation_;
    default:
      GuestErrorLocked(absl::StrCat("read of write-only or unknown register ", Hex(offset)));
      return 0;
  }
}

void VirtioMmioTransport::WriteRegLocked(uint64_t offset, uint32_t value) {
  const bool queue_valid = queue_sel_ < queues_.size();
  Queue* q = queue_valid ? &queues_[queue_sel_] : nullptr;
  switch (offset) {
    case kDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case kDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case kDriverFeatures:
      if (status_ & kStatusFeaturesOk) {
        GuestErrorLocked("driver features written after FEATURES_OK");
      } else if (driver_features_sel_ == 0) {
        SetLo(driver_features_, value);
      } else if (driver_features_sel_ == 1) {
        SetHi(driver_features_, value);
      } else if (value != 0) {
        GuestErrorLocked(absl::StrCat("driver features word ", driver_features_sel_, " = ",
                                      Hex(value), " (no such features)"));
      }
      return;
    case kQueueSel:
      queue_sel_ = value;
      return;
    case kQueueNotify:
      // Normally absorbed by the ioeventfd; if it reaches us, kick the same way.
      if (value < queues_.size()) {
        SignalEventFd(queues_[value].kick.get());
      } else {
        GuestErrorLocked(absl::StrCat("notify of queue ", value, ", which does not exist"));
      }
      return;
    case kInterruptAck:
      interrupt_status_ &= ~value;
      UpdateIrqLocked();
      return;
    case kStatus:
      WriteStatusLocked(value);
      return;
    case kShmSel:
      shm_sel_ = value;
      return;
    case kQueueNum:
    case kQueueReady:
    case kQueueDescLow:
    case kQueueDescHigh:
    case kQueueDriverLow:
    case kQueueDriverHigh:
    case kQueueDeviceLow:
    case kQueueDeviceHigh:
      break;  // queue registers, below
    default:
      GuestErrorLocked(absl::StrCat("write of read-only or unknown register ", Hex(offset)));
      return;
  }

  if (q == nullptr) {
    GuestErrorLocked(absl::StrCat("queue register ", Hex(offset), " written for queue ",
                                  queue_sel_, ", which does not exist"));
    return;
  }
  if (offset == kQueueReady) {
    if (value == 0) {
      q->ready = false;
      return;
    }
    const uint16_t max = backend_->max_queue_size();
    if (q->num == 0 || q->num > max || !std::has_single_bit(q->num)) {
      GuestErrorLocked(absl::StrCat("queue ", queue_sel_, " made ready with size ", q->num,
                                    " (must be a power of two up to ", max, ")"));
      return;
    }
    q->ready = true;
    return;
  }
  if (q->ready || (status_ & kStatusDriverOk)) {
    GuestErrorLocked(absl::StrCat("queue ", queue_sel_, " register ", Hex(offset),
                                  " written while the queue is live"));
    return;
  }
  switch (offset) {
    case kQueueNum:
      q->num = value > 0xffff ? 0 : static_cast<uint16_t>(value);  // 0 fails at QueueReady
      return;
    case kQueueDescLow:
      SetLo(q->desc, value);
      return;
    case kQueueDescHigh:
      SetHi(q->desc, value);
      return;
    case kQueueDriverLow:
      SetLo(q->driver, value);
      return;
    case kQueueDriverHigh:
      SetHi(q->driver, value);
      return;
    case kQueueDeviceLow:
      SetLo(q->device, value);
      return;
    case kQueueDeviceHigh:
      SetHi(q->device, value);
      return;
    default:
      return;
  }
}

void VirtioMmioTransport::WriteStatusLocked(uint32_t value) {
  if (value == 0) {
    ResetLocked();
    return;
  }
  if ((value & status_) != status_) {
    GuestErrorLocked(absl::StrCat("status ", Hex(value), " clears bits of ", Hex(status_),
                                  " (only a reset may)"));
    return;
  }
  const uint32_t added = value & ~status_;
  if (added & kStatusFeaturesOk) {
    const uint64_t unoffered = driver_features_ & ~device_features_;
    if (unoffered != 0 || !(driver_features_ & kFeatureVersion1)) {
      GuestErrorLocked(absl::StrCat("FEATURES_OK refused: driver features ", Hex(driver_features_),
                                    unoffered ? " include ones not offered"
                                              : " lack VIRTIO_F_VERSION_1"));
      value &= ~kStatusFeaturesOk;  // the driver reads it back and gives up
    }
  }
  if ((added & kStatusDriverOk) && !started_) {
    if (!(value & kStatusFeaturesOk)) {
      GuestErrorLocked("DRIVER_OK without FEATURES_OK");
      return;
    }
    std::vector<VirtqueueSetup> setups;
    for (size_t i = 0; i < queues_.size(); ++i) {
      const Queue& q = queues_[i];
      if (!q.ready) continue;
      setups.push_back({.index = static_cast<int>(i), .size = q.num, .desc = GuestAddr(q.desc),
                        .driver = GuestAddr(q.driver), .device = GuestAddr(q.device),
                        .kick_fd = q.kick.get(), .call_fd = q.call.get()});
    }
    if (absl::Status s = backend_->Start(driver_features_, setups); !s.ok()) {
      std::fprintf(stderr, "rmem-vmm: %s: device failed to start: %s\n", name_.c_str(),
                   s.ToString().c_str());
      status_ = value | kStatusNeedsReset;
      SetInterruptLocked(kIntConfigChange);
      return;
    }
    started_ = true;
  }
  status_ = value;
}

void VirtioMmioTransport::ResetLocked() {
  if (started_) {
    if (absl::Status s = backend_->Stop(); !s.ok()) {
      std::fprintf(stderr, "rmem-vmm: %s: stopping the device on reset: %s\n", name_.c_str(),
                   s.ToString().c_str());
    }
    started_ = false;
  }
  for (Queue& q : queues_) {
    q.num = 0;
    q.ready = false;
    q.desc = q.driver = q.device = 0;
    uint64_t drained;
    (void)!read(q.call.get(), &drained, sizeof(drained));  // stale calls must not interrupt
  }
  status_ = 0;
  driver_features_ = 0;
  device_features_sel_ = driver_features_sel_ = queue_sel_ = shm_sel_ = 0;
  interrupt_status_ = 0;
  UpdateIrqLocked();
}

void VirtioMmioTransport::SetInterruptLocked(uint32_t bits) {
  interrupt_status_ |= bits;
  UpdateIrqLocked();
}

void VirtioMmioTransport::UpdateIrqLocked() {
  const bool level = interrupt_status_ != 0;
  if (level == irq_level_) return;
  irq_level_ = level;
  irq_->SetLevel(level);
}

void VirtioMmioTransport::WatchCalls() {
  // [0] stop, [1] the backend's failure eventfd (-1: none), [2...] calls.
  std::vector<pollfd> fds;
  fds.push_back({stop_.get(), POLLIN, 0});
  fds.push_back({backend_->failure_fd(), POLLIN, 0});
  {
    absl::MutexLock lock(&mu_);
    for (const Queue& q : queues_) fds.push_back({q.call.get(), POLLIN, 0});
  }
  while (true) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      RMEM_CHECK(errno == EINTR);
      continue;
    }
    if (fds[0].revents & POLLIN) return;
    if (fds[1].revents & POLLIN) {
      fds[1].fd = -1;  // once
      absl::MutexLock lock(&mu_);
      std::fprintf(stderr, "rmem-vmm: %s: device failed, telling the driver it needs a reset\n",
                   name_.c_str());
      status_ |= kStatusNeedsReset;
      SetInterruptLocked(kIntConfigChange);
    }
    bool used = false;
    for (size_t i = 2; i < fds.size(); ++i) {
      uint64_t n;
      if ((fds[i].revents & POLLIN) && read(fds[i].fd, &n, sizeof(n)) == sizeof(n)) used = true;
    }
    if (used) {
      absl::MutexLock lock(&mu_);
      if (started_) SetInterruptLocked(kIntUsedBuffer);
    }
  }
}

}  // namespace rmem::vmm

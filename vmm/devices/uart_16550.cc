#include "vmm/devices/uart_16550.h"

#include <algorithm>

namespace rmem::vmm {
namespace {

enum Reg : uint64_t { kData = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                      kScr = 7 };
constexpr uint8_t kIerThri = 0x02;    // "transmit holding register empty" interrupt enable
constexpr uint8_t kIerMask = 0x0f;
constexpr uint8_t kIirNoInt = 0x01;
constexpr uint8_t kIirThri = 0x02;
constexpr uint8_t kIirFifos = 0xc0;   // FIFOs enabled (16550A)
constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kLsrThre = 0x20;
constexpr uint8_t kLsrTemt = 0x40;
constexpr uint8_t kMsrConnected = 0xb0;  // DCD, DSR, CTS

}  // namespace

void Uart16550::MmioRead(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (offset >= 8 || data.empty()) return;  // registers are bytes; the rest reads as zero
  absl::MutexLock lock(&mu_);
  data[0] = ReadRegLocked(offset);
  UpdateIrqLocked();
}

void Uart16550::MmioWrite(uint64_t offset, std::span<const uint8_t> data) {
  if (offset >= 8 || data.empty()) return;
  absl::MutexLock lock(&mu_);
  WriteRegLocked(offset, data[0]);
  UpdateIrqLocked();
}

uint8_t Uart16550::IirLocked() const {
  const uint8_t fifos = fifo_enabled_ ? kIirFifos : 0;
  if (thre_pending_ && (ier_ & kIerThri)) return fifos | kIirThri;
  return fifos | kIirNoInt;
}

uint8_t Uart16550::ReadRegLocked(uint64_t reg) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (reg) {
    case kData:
      return dlab ? dll_ : 0;  // no receive data ever
    case kIer:
      return dlab ? dlm_ : ier_;
    case kIirFcr: {
      const uint8_t iir = IirLocked();
      // Reading IIR while THRE is the reported source acknowledges it.
      if ((iir & 0x0f) == kIirThri) thre_pending_ = false;
      return iir;
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      return kLsrThre | kLsrTemt;
    case kMsr:
      // In loopback the modem inputs mirror MCR outputs (the 8250 driver's probe checks this).
      if (mcr_ & kMcrLoop) {
        return static_cast<uint8_t>(((mcr_ & 0x0c) << 4) | ((mcr_ & 0x01) << 5) |
                                    ((mcr_ & 0x02) << 3));
      }
      return kMsrConnected;
    default:
      return scr_;
  }
}

void Uart16550::WriteRegLocked(uint64_t reg, uint8_t value) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (reg) {
    case kData:
      if (dlab) {
        dll_ = value;
        return;
      }
      // In loopback mode the byte goes to the (unmodelled) receiver, not the line.
      if (!(mcr_ & kMcrLoop)) output_(value);
      thre_pending_ = true;  // transmitted at once: THR is empty again
      return;
    case kIer:
      if (dlab) {
        dlm_ = value;
        return;
      }
      // Enabling the THRE interrupt while THR is empty raises it.
      if (!(ier_ & kIerThri) && (value & kIerThri)) thre_pending_ = true;
      ier_ = value & kIerMask;
      return;
    case kIirFcr:
      fifo_enabled_ = (value & kFcrEnable) != 0;
      return;
    case kLcr:
      lcr_ = value;
      return;
    case kMcr:
      mcr_ = value & 0x1f;
      return;
    case kScr:
      scr_ = value;
      return;
    default:
      return;  // LSR and MSR are read-only
  }
}

void Uart16550::UpdateIrqLocked() {
  const bool level = (IirLocked() & kIirNoInt) == 0;
  if (level == irq_level_) return;
  irq_level_ = level;
  if (irq_ != nullptr) irq_->SetLevel(level);
}

}  // namespace rmem::vmm

// A 16550A UART (output only), enough for Linux's 8250 driver with
// interrupts: the guest's console. Transmission is instantaneous, so the
// transmit holding register is always empty again right after a write; the
// "THR empty" interrupt follows the 16550 rules (raised when THR empties or
// when the guest enables it while THR is empty; cleared by reading IIR while
// it is the pending source, or by writing THR). Receive is not modelled: the
// line never has data, and the modem lines report a connected peer.
//
// Registers (reg-shift 0, byte wide), from the National PC16550D datasheet:
//   0 THR (w) / RBR (r) / DLL (DLAB=1)   4 MCR
//   1 IER / DLM (DLAB=1)                 5 LSR (r)
//   2 IIR (r) / FCR (w)                  6 MSR (r)
//   3 LCR                                7 SCR
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vmm/devices/mmio_device.h"

namespace rmem::vmm {

class Uart16550 final : public MmioDevice {
 public:
  static constexpr uint64_t kWindowSize = 0x1000;

  // `output` receives every transmitted byte; `irq` may be null (polled use).
  Uart16550(std::function<void(uint8_t)> output, IrqLine* irq)
      : output_(std::move(output)), irq_(irq) {}

  void MmioRead(uint64_t offset, std::span<uint8_t> data) override;
  void MmioWrite(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  uint8_t ReadRegLocked(uint64_t reg) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteRegLocked(uint64_t reg, uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint8_t IirLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateIrqLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<void(uint8_t)> output_;
  IrqLine* const irq_;

  absl::Mutex mu_;
  uint8_t ier_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t lcr_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t mcr_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t scr_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t dll_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t dlm_ ABSL_GUARDED_BY(mu_) = 0;
  bool fifo_enabled_ ABSL_GUARDED_BY(mu_) = false;
  bool thre_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool irq_level_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rmem::vmm

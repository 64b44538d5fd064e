// TEST ONLY: the driver side of one split virtqueue, written from the VIRTIO
// 1.2 spec (§2.7) independently of virtio_rmem/virtqueue/ (its own layout
// constants), so that a layout mistake there shows up as a test failure
// rather than agreeing with itself. It writes descriptors and the available
// ring into guest memory the way a guest would, and reads the used ring.
//
// Guest memory is given as its host address and guest base; the rings sit
// at guest addresses the test chooses.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "broker/types.h"
#include "gtest/gtest.h"

namespace rmem::testing {

class FakeDriver {
 public:
  struct Buffer {
    GuestAddr addr;
    uint32_t len;
    bool device_writable;
  };
  struct Used {
    uint32_t id;
    uint32_t len;
  };
  static constexpr uint16_t kNext = 1, kWrite = 2, kIndirect = 4;

  // `host` is where guest address `guest_base` is mapped; the queue has
  // `size` entries with its parts at `desc`, `avail` and `used`.
  FakeDriver(uint8_t* host, GuestAddr guest_base, uint64_t memory_size, uint16_t size,
             GuestAddr desc, GuestAddr avail, GuestAddr used, uint16_t first_avail = 0)
      : host_(host),
        base_(guest_base),
        memory_size_(memory_size),
        size_(size),
        desc_(desc),
        avail_(avail),
        used_(used),
        avail_idx_(first_avail) {
    std::memset(At(desc_, 16u * size), 0, 16u * size);
    std::memset(At(avail_, 6 + 2u * size), 0, 6 + 2u * size);
    std::memset(At(used_, 6 + 8u * size), 0, 6 + 8u * size);
    Store16(At(avail_, 2), avail_idx_);
    Store16(At(used_, 2), first_avail);
  }

  uint8_t* At(GuestAddr addr, uint64_t len) const {
    const uint64_t off = addr.value() - base_.value();
    EXPECT_LE(off + len, memory_size_) << "test bug: outside guest memory";
    return host_ + off;
  }

  // Writes descriptor `index` as given (any values: tests make bad ones).
  void SetDesc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    uint8_t* d = At(desc_, 16u * size_) + 16u * index;
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
  }

  // Lays `buffers` out as a chain from the next free descriptors (wrapping
  // around the table) and makes it available. Returns its head.
  uint16_t Post(const std::vector<Buffer>& buffers) {
    const uint16_t head = next_desc_;
    for (size_t i = 0; i < buffers.size(); ++i) {
      const uint16_t index = next_desc_;
      next_desc_ = static_cast<uint16_t>((next_desc_ + 1) % size_);
      const bool last = i + 1 == buffers.size();
      SetDesc(index, buffers[i].addr.value(), buffers[i].len,
              static_cast<uint16_t>((last ? 0 : kNext) | (buffers[i].device_writable ? kWrite : 0)),
              last ? 0 : next_desc_);
    }
    MakeAvailable(head);
    return head;
  }

  // Puts `head` (any value) in the next available slot and publishes it.
  void MakeAvailable(uint16_t head) {
    Store16(At(avail_, 6 + 2u * size_) + 4 + 2u * (avail_idx_ % size_), head);
    SetAvailIdx(static_cast<uint16_t>(avail_idx_ + 1));
  }

  // Publishes the available index (a release store, as a driver's barrier).
  void SetAvailIdx(uint16_t idx) {
    avail_idx_ = idx;
    std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(At(avail_, 4) + 2))
        .store(idx, std::memory_order_release);
  }

  void SetNoInterrupt(bool on) { Store16(At(avail_, 2), on ? 1 : 0); }

  uint16_t used_idx() const {
    return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(At(used_, 4) + 2))
        .load(std::memory_order_acquire);
  }
  // The used element written at position `n` (taken modulo the size).
  Used used(uint16_t n) const {
    Used u;
    std::memcpy(&u, At(used_, 6 + 8u * size_) + 4 + 8u * (n % size_), sizeof(u));
    return u;
  }

  uint16_t avail_idx() const { return avail_idx_; }
  uint16_t size() const { return size_; }

 private:
  static void Store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

  uint8_t* host_;
  GuestAddr base_;
  uint64_t memory_size_;
  uint16_t size_;
  GuestAddr desc_, avail_, used_;
  uint16_t avail_idx_;
  uint16_t next_desc_ = 0;
};

// Waits until `driver`'s used index reaches `want` (ring arithmetic: at or
// past it), draining the call eventfd `call_fd` as notifications come.
// False once `guard` (a hang guard, never a measurement) has passed.
inline bool WaitForUsed(const FakeDriver& driver, int call_fd, uint16_t want,
                        absl::Duration guard) {
  const absl::Time deadline = absl::Now() + guard;
  while (static_cast<int16_t>(driver.used_idx() - want) < 0) {
    if (absl::Now() > deadline) return false;
    pollfd p{call_fd, POLLIN, 0};
    if (poll(&p, 1, 20) == 1) {
      uint64_t v;
      EXPECT_EQ(read(call_fd, &v, 8), 8);
    }
  }
  return true;
}

}  // namespace rmem::testing

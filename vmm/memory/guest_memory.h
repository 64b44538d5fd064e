// Guest RAM: one memfd-backed region at a fixed guest physical base. The
// memfd is what vhost-user backends map (SET_MEM_TABLE), so RAM is never
// anonymous memory, and its size is sealed (F_SEAL_SHRINK | F_SEAL_GROW) so
// that no back-end mapping it can be made to fault. Every access from the VMM goes through bounds-checked
// accessors: a guest-supplied address never becomes a host pointer unchecked.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "broker/types.h"

namespace rmem::vmm {

class GuestMemory {
 public:
  // Creates and maps `size` bytes (a multiple of 4 KiB, non-zero) of memfd
  // RAM at guest physical `base` (page aligned). InvalidArgument for a bad
  // base/size; Internal with the errno text if memfd/ftruncate/mmap fail.
  static absl::StatusOr<GuestMemory> Create(GuestAddr base, uint64_t size);

  GuestMemory(GuestMemory&& other) noexcept;
  GuestMemory& operator=(GuestMemory&& other) noexcept;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory();

  GuestAddr base() const { return base_; }
  uint64_t size() const { return size_; }
  GuestAddr end() const { return GuestAddr(base_.value() + size_); }
  int fd() const { return fd_; }
  uint8_t* host_base() const { return host_; }

  // The host view of [addr, addr + len), or OutOfRange naming the range if
  // any byte of it is outside guest RAM (overflow-safe).
  absl::StatusOr<std::span<uint8_t>> Slice(GuestAddr addr, uint64_t len) const;
  // Copies into guest RAM; OutOfRange as Slice.
  absl::Status Write(GuestAddr addr, std::span<const uint8_t> bytes) const;

 private:
  GuestMemory(GuestAddr base, uint64_t size, int fd, uint8_t* host)
      : base_(base), size_(size), fd_(fd), host_(host) {}
  void Release();

  GuestAddr base_;
  uint64_t size_ = 0;
  int fd_ = -1;
  uint8_t* host_ = nullptr;
};

}  // namespace rmem::vmm

#include "vmm/memory/shm_window.h"

#include <sys/mman.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "broker/check.h"
#include "base/sys_error.h"

namespace rmem::vmm {

ShmWindows::~ShmWindows() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, region] : state_) {
    for (auto& [offset, piece] : region.pieces) RMEM_CHECK_OK(RemoveLocked(piece));
  }
}

absl::Status ShmWindows::RemoveLocked(Piece& piece) {
  if (absl::Status s = mapper_->Remove(piece.token); !s.ok()) return s;
  munmap(piece.host, piece.len);
  return absl::OkStatus();
}

void ShmWindows::Suspend() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, region] : state_) {
    // A memslot that cannot be removed would leave the guest a page nobody
    // vouches for any more: nothing sane can continue.
    for (auto& [offset, piece] : region.pieces) RMEM_CHECK_OK(RemoveLocked(piece));
    region.pieces.clear();
  }
  in_doubt_ = true;
  changes_.fetch_add(1, std::memory_order_release);
}

void ShmWindows::Resume() {
  absl::MutexLock lock(&mu_);
  in_doubt_ = false;
  changes_.fetch_add(1, std::memory_order_release);
}

bool ShmWindows::AwaitChange(uint64_t since, absl::Duration slice) const {
  absl::MutexLock lock(&mu_);
  const auto changed = [this, since]() { return changes() != since; };
  return mu_.AwaitWithTimeout(absl::Condition(&changed), slice);
}

const ShmPlacement* ShmWindows::ContainingLocked(GuestAddr addr) const {
  for (const ShmPlacement& p : regions_) {
    if (addr >= p.base && addr.value() - p.base.value() < p.size) return &p;
  }
  return nullptr;
}

bool ShmWindows::AwaitSettled(GuestAddr addr, absl::Duration slice) const {
  absl::MutexLock lock(&mu_);
  if (ContainingLocked(addr) == nullptr) return false;
  const auto settled = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !in_doubt_; };
  mu_.AwaitWithTimeout(absl::Condition(&settled), slice);
  return in_doubt_;
}

bool ShmWindows::Access(GuestAddr addr, std::span<uint8_t> data, bool is_write) {
  absl::MutexLock lock(&mu_);
  const ShmPlacement* p = ContainingLocked(addr);
  if (p == nullptr || data.size() > 8) return false;
  const uint64_t offset = addr.value() - p->base.value();
  auto state = state_.find(p->id);
  if (state == state_.end()) return false;
  auto it = state->second.pieces.upper_bound(offset);
  if (it == state->second.pieces.begin()) return false;
  --it;
  const Piece& piece = it->second;
  const uint64_t at = offset - it->first;
  if (at >= piece.len || data.size() > piece.len - at || (is_write && !piece.writable)) {
    return false;
  }
  if (data.empty()) return true;  // only the right was asked about
  if (is_write) {
    std::memcpy(piece.host + at, data.data(), data.size());
  } else {
    std::memcpy(data.data(), piece.host + at, data.size());
  }
  bytes_accessed_ += data.size();
  return true;
}

uint64_t ShmWindows::bytes_accessed() const {
  absl::MutexLock lock(&mu_);
  return bytes_accessed_;
}

void ShmWindows::SetRegions(std::vector<ShmPlacement> regions) {
  absl::MutexLock lock(&mu_);
  RMEM_CHECK(regions_.empty());
  regions_ = std::move(regions);
}

const ShmPlacement* ShmWindows::FindLocked(uint8_t shmid) const {
  for (const ShmPlacement& p : regions_) {
    if (p.id == shmid) return &p;
  }
  return nullptr;
}

absl::Status ShmWindows::Bad(uint8_t shmid, uint64_t offset, uint64_t len,
                             absl::string_view why) const {
  return absl::InvalidArgumentError(absl::StrCat(device_, ": shared memory region ", shmid,
                                                 " piece ", Hex(offset), "+", Hex(len), ": ",
                                                 why));
}

absl::Status ShmWindows::Map(uint8_t shmid, int fd, uint64_t fd_offset, uint64_t shm_offset,
                             uint64_t len, bool writable) {
  absl::MutexLock lock(&mu_);
  const ShmPlacement* region = FindLocked(shmid);
  if (region == nullptr) return Bad(shmid, shm_offset, len, "no such region");
  if (len == 0 || len % kPageSize || shm_offset % kPageSize || fd_offset % kPageSize) {
    return Bad(shmid, shm_offset, len, "length and offsets must be non-zero multiples of 4 KiB");
  }
  if (shm_offset > region->size || len > region->size - shm_offset) {
    return Bad(shmid, shm_offset, len,
               absl::StrCat("outside the region of ", Hex(region->size), " bytes"));
  }
  Region& r = state_[shmid];
  auto next = r.pieces.lower_bound(shm_offset);
  if (next != r.pieces.end() && next->first < shm_offset + len) {
    return Bad(shmid, shm_offset, len, absl::StrCat("overlaps the piece at ", Hex(next->first)));
  }
  if (next != r.pieces.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.len > shm_offset) {
      return Bad(shmid, shm_offset, len, absl::StrCat("overlaps the piece at ", Hex(prev->first)));
    }
  }
  void* host = mmap(nullptr, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd,
                    static_cast<off_t>(fd_offset));
  if (host == MAP_FAILED) {
    return ErrnoError(absl::StrCat(device_, ": mapping the backend's fd at ", Hex(fd_offset),
                                   "+", Hex(len), writable ? " read-write" : " read-only"));
  }
  absl::StatusOr<uint32_t> token = mapper_->Install(GuestAddr(region->base.value() + shm_offset),
                                                    static_cast<uint8_t*>(host), len, writable);
  if (!token.ok()) {
    munmap(host, len);
    return token.status();
  }
  r.pieces[shm_offset] =
      Piece{.len = len, .writable = writable, .host = static_cast<uint8_t*>(host), .token = *token};
  changes_.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

absl::Status ShmWindows::Unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len) {
  absl::MutexLock lock(&mu_);
  if (FindLocked(shmid) == nullptr) return Bad(shmid, shm_offset, len, "no such region");
  Region& r = state_[shmid];
  auto it = r.pieces.find(shm_offset);
  if (it == r.pieces.end() || it->second.len != len) {
    return Bad(shmid, shm_offset, len, "is not exactly one mapped piece");
  }
  // The guest loses the piece before the host mapping goes away.
  if (absl::Status s = RemoveLocked(it->second); !s.ok()) return s;
  r.pieces.erase(it);
  changes_.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

std::optional<std::string> ShmWindows::Classify(GuestAddr addr, bool is_write) const {
  absl::MutexLock lock(&mu_);
  for (const ShmPlacement& p : regions_) {
    if (addr < p.base || addr.value() - p.base.value() >= p.size) continue;
    const uint64_t offset = addr.value() - p.base.value();
    auto state = state_.find(p.id);
    if (state != state_.end()) {
      auto it = state->second.pieces.upper_bound(offset);
      if (it != state->second.pieces.begin()) {
        --it;
        if (offset < it->first + it->second.len) {
          return absl::StrCat(device_, ": guest ", is_write ? "write to" : "read of",
                              it->second.writable ? " " : " read-only ", "piece ",
                              Hex(it->first), "+", Hex(it->second.len), " of shared memory region ",
                              p.id, " at ", addr.ToString());
        }
      }
    }
    return absl::StrCat(device_, ": guest ", is_write ? "write to" : "read of",
                        " unmapped offset ", Hex(offset), " of shared memory region ", p.id,
                        " at ", addr.ToString());
  }
  return std::nullopt;
}

size_t ShmWindows::mapped_pieces() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, r] : state_) n += r.pieces.size();
  return n;
}

}  // namespace rmem::vmm

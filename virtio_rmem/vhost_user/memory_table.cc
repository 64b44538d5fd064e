#include "virtio_rmem/vhost_user/memory_table.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/sys_error.h"
#include "broker/check.h"
#include "virtio_rmem/vhost_user/limits.h"

namespace rmem::virtio_rmem {

absl::StatusOr<std::unique_ptr<MemoryTable>> MemoryTable::Map(
    const std::vector<MemRegionSpec>& regions, std::span<const Fd> fds) {
  RMEM_CHECK(regions.size() == fds.size());  // the decoder checked the count
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::unique_ptr<MemoryTable> table(new MemoryTable());  // unmaps what it holds on failure
  std::vector<GuestRegion> guest;
  uint64_t total = 0;
  for (const MemRegionSpec& r : regions) {
    total += r.size;  // at most 8 regions of < 2^64 each: check as we go
    if (total < r.size || total > kMaxMappedBytesPerConnection) {
      return absl::ResourceExhaustedError(absl::StrCat("the memory table maps more than ",
                                                       kMaxMappedBytesPerConnection,
                                                       " bytes, the limit per connection"));
    }
  }
  for (size_t i = 0; i < regions.size(); ++i) {
    const MemRegionSpec& r = regions[i];
    const int fd = fds[i].get();
    const std::string what =
        absl::StrCat("memory region ", i, " (guest ", r.guest.ToString(), " + ", Hex(r.size), ")");
    const int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          what,
          ": its fd is not a memfd sealed against shrinking (F_SEAL_SHRINK); a file that "
          "can shrink under us would fault the whole daemon"));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) return ErrnoError(absl::StrCat("fstat of ", what));
    // The decoder checked that mmap_offset + size does not overflow.
    if (static_cast<uint64_t>(st.st_size) < r.mmap_offset + r.size) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": its fd holds ", st.st_size,
                                                     " bytes, less than mmap offset ",
                                                     Hex(r.mmap_offset), " + size"));
    }
    const uint64_t map_offset = r.mmap_offset & ~(page - 1);
    const uint64_t lead = r.mmap_offset - map_offset;
    const uint64_t length = lead + r.size;  // <= st_size: fits size_t
    void* base = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
                      static_cast<off_t>(map_offset));
    if (base == MAP_FAILED) return ErrnoError(absl::StrCat("mapping ", what));
    table->mappings_.push_back({base, length});
    uint8_t* host = static_cast<uint8_t*>(base) + lead;
    guest.push_back({r.guest, r.size, host});
    table->user_regions_.push_back({r.user, r.size, host});
  }
  absl::StatusOr<GuestMemoryMap> map = GuestMemoryMap::Create(std::move(guest));
  if (!map.ok()) return map.status();  // the decoder rejects overlaps first
  table->guest_ = *std::move(map);
  return table;
}

MemoryTable::~MemoryTable() {
  for (const Mapping& m : mappings_) RMEM_CHECK(munmap(m.base, m.length) == 0);
}

absl::StatusOr<std::span<uint8_t>> MemoryTable::TranslateFrontend(FrontendVa addr,
                                                                  uint64_t len) const {
  for (const UserRegion& r : user_regions_) {
    if (addr < r.user) continue;
    const uint64_t offset = addr.value() - r.user.value();
    if (offset < r.size && len <= r.size - offset) return std::span<uint8_t>(r.host + offset, len);
  }
  return absl::InvalidArgumentError(absl::StrCat("front-end range ", addr.ToString(), " + ",
                                                 Hex(len), " is not inside one memory region"));
}

}  // namespace rmem::virtio_rmem

// The two CarveoutMemory implementations: the host module's device and the
// memfd stand-in. Both map a physical range to (fd, offset) by finding its
// carve-out.
#include "broker/backend/carveout_memory.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "broker/check.h"
#include "host_driver/uapi/rmem_carveout.h"

namespace rmem {
namespace {

struct Region {
  PageRange pages;
  int fd = -1;
  uint64_t fd_offset_of_base = 0;
};

absl::Status Errno(absl::string_view what) {
  const int err = errno;
  const std::string message = absl::StrCat(what, ": ", std::strerror(err));
  if (err == ENOENT || err == ENODEV || err == ENXIO) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

// A piece the device issued: its own file, revoked through the device.
class DevicePieceFile : public CarveoutMemory::PieceFile {
 public:
  DevicePieceFile(int device_fd, int fd) : device_fd_(device_fd), fd_(fd) {}
  ~DevicePieceFile() override {
    // A piece rmemd cannot revoke would leave a VMM holding pages the
    // broker is about to scrub and hand to someone else: stop instead
    // (rmemd's exit closes the device, which revokes every piece).
    int fd = fd_;
    RMEM_CHECK(ioctl(device_fd_, RMEM_CARVEOUT_IOC_REVOKE, &fd) == 0);
    close(fd_);
  }
  int fd() const override { return fd_; }
  uint64_t offset() const override { return 0; }

 private:
  const int device_fd_;
  const int fd_;
};

// The stand-in's: a descriptor of the whole memfd. Nothing to revoke.
class StandinPieceFile : public CarveoutMemory::PieceFile {
 public:
  StandinPieceFile(int fd, uint64_t offset) : fd_(fd), offset_(offset) {}
  ~StandinPieceFile() override { close(fd_); }
  int fd() const override { return fd_; }
  uint64_t offset() const override { return offset_; }

 private:
  const int fd_;
  const uint64_t offset_;
};

class RegionCarveoutMemory : public CarveoutMemory {
 public:
  // `fds`: the descriptors the regions use, each once (the device's one fd
  // serves every region; the stand-in has one per carve-out). `device`:
  // whether they are the device's (pieces by ioctl) or memfds.
  RegionCarveoutMemory(std::vector<Region> regions, std::vector<int> fds, std::string description,
                       bool device)
      : regions_(std::move(regions)),
        fds_(std::move(fds)),
        description_(std::move(description)),
        device_(device) {}
  ~RegionCarveoutMemory() override {
    for (const int fd : fds_) close(fd);
  }

  absl::StatusOr<Piece> Locate(PageRange pages) const override {
    for (const Region& r : regions_) {
      if (r.pages.Contains(pages)) {
        return Piece{r.fd, r.fd_offset_of_base + (pages.base().value() - r.pages.base().value())};
      }
    }
    return absl::InvalidArgumentError(absl::StrCat("pages [", pages.base().ToString(), ", +",
                                                   Hex(pages.size_bytes()),
                                                   ") are not inside one carve-out"));
  }

  absl::StatusOr<std::unique_ptr<PieceFile>> Issue(PageRange pages,
                                                   bool writable) const override {
    absl::StatusOr<Piece> at = Locate(pages);
    if (!at.ok()) return at.status();
    if (!device_) {
      const int fd = fcntl(at->fd, F_DUPFD_CLOEXEC, 0);
      if (fd < 0) return Errno("duplicating the stand-in's memfd");
      return std::make_unique<StandinPieceFile>(fd, at->offset);
    }
    rmem_carveout_piece request{};
    request.phys = pages.base().value();
    request.size = pages.size_bytes();
    request.flags = writable ? RMEM_CARVEOUT_PIECE_WRITE : 0;
    request.fd = -1;
    if (ioctl(at->fd, RMEM_CARVEOUT_IOC_PIECE, &request) != 0) {
      if (errno == ENOTTY) {
        return absl::FailedPreconditionError(absl::StrCat(
            description_, " issues no pieces: the rmem_carveout module loaded is older than "
                          "this rmemd (load host_driver/rmem_carveout from the same tree)"));
      }
      return Errno(absl::StrCat("issuing a piece of ", description_, " for [",
                                pages.base().ToString(), ", +", Hex(pages.size_bytes()), ")"));
    }
    return std::make_unique<DevicePieceFile>(at->fd, request.fd);
  }

  bool confined() const override { return device_; }
  std::string Describe() const override { return description_; }

 private:
  std::vector<Region> regions_;
  std::vector<int> fds_;
  std::string description_;
  bool device_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CarveoutMemory>> OpenDeviceCarveoutMemory(
    const std::string& device_path, const std::vector<Carveout>& carveouts) {
  const int fd = open(device_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return Errno(absl::StrCat("opening ", device_path,
                              " (is host_driver/rmem_carveout loaded, and are we root?)"));
  }
  // The listing: one "0x<base> 0x<size> <name>" line per carve-out.
  std::string listing;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno(absl::StrCat("reading ", device_path));
      close(fd);
      return s;
    }
    if (n == 0) break;
    listing.append(buf, static_cast<size_t>(n));
  }
  std::vector<Region> regions;
  for (const Carveout& c : carveouts) {
    bool served = false;
    for (absl::string_view line : absl::StrSplit(listing, '\n', absl::SkipEmpty())) {
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      uint64_t base = 0, size = 0;
      if (f.size() >= 2 && absl::SimpleHexAtoi(f[0], &base) && absl::SimpleHexAtoi(f[1], &size) &&
          base == c.base.value() && size == c.size) {
        served = true;
      }
    }
    if (!served) {
      close(fd);
      return absl::FailedPreconditionError(
          absl::StrCat(device_path, " does not serve carve-out ", c.name, " [", c.base.ToString(),
                       ", +", Hex(c.size), "); it lists:\n", listing));
    }
    regions.push_back(Region{*PageRange::FromBytes(c.base, c.size), fd, c.base.value()});
  }
  return std::make_unique<RegionCarveoutMemory>(std::move(regions), std::vector<int>{fd},
                                                device_path, /*device=*/true);
}

absl::StatusOr<std::unique_ptr<CarveoutMemory>> MakeMemfdCarveoutMemory(
    const std::vector<Carveout>& carveouts) {
  std::vector<Region> regions;
  std::vector<int> fds;
  auto fail = [&](absl::Status s) {
    for (const int fd : fds) close(fd);
    return s;
  };
  for (const Carveout& c : carveouts) {
    const int fd = memfd_create(absl::StrCat("rmem-standin-", c.name).c_str(), MFD_CLOEXEC);
    if (fd < 0) return fail(Errno("memfd_create"));
    fds.push_back(fd);
    regions.push_back(Region{*PageRange::FromBytes(c.base, c.size), fd, 0});
    if (ftruncate(fd, static_cast<off_t>(c.size)) != 0) {
      return fail(Errno(absl::StrCat("sizing the stand-in for ", c.name)));
    }
  }
  return std::make_unique<RegionCarveoutMemory>(std::move(regions), std::move(fds),
                                                "the memfd stand-in (not restricted memory)",
                                                /*device=*/false);
}

}  // namespace rmem

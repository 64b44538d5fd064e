// TEST ONLY: rmem-carveout-check, run in the test SoC's host (L1) by the
// scenario carveout_map against /dev/rmem-carveout (host_driver/rmem_carveout,
// interface host_driver/uapi/rmem_carveout.h): the device's own mmap at a
// physical address, and the pieces it issues (piece-*): a file for one range
// with one right, revoked by RMEM_CARVEOUT_IOC_REVOKE or when the issuing
// device file is released. The last check (piece-holds-module) tries to
// remove the module while only a piece's mapping is left; the scenario's own
// rmmod at its end is the other half (removed once no piece is left).
//
//   rmem-carveout-check mmap         the interface checks, one marker each:
//                                    RMEM-CARVEOUT-CHECK <check> ok|FAIL <detail>
//                                    and RMEM-CARVEOUT-CHECKS <passed>/<run>
//   rmem-carveout-check peek PHYS N  prints N 64-bit words at PHYS (hex, 8-aligned),
//                                    RMEM-CARVEOUT-PEEK <phys> <word>...
//
// Exit status: 0 if every check passed (peek: if it could map), 1 otherwise,
// 2 on a usage error.
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
// From the repository's root; this program's build has only absl on its path.
#include "host_driver/uapi/rmem_carveout.h"

namespace {

constexpr const char* kDevice = "/dev/rmem-carveout";
constexpr uint64_t kPage = 4096;

struct Carveout {
  uint64_t base = 0;
  uint64_t size = 0;
  std::string name;
};

int checks_run = 0, checks_passed = 0;

void Check(const std::string& name, bool ok, const std::string& detail) {
  ++checks_run;
  if (ok) ++checks_passed;
  std::printf("RMEM-CARVEOUT-CHECK %s %s %s\n", name.c_str(), ok ? "ok" : "FAIL",
              detail.c_str());
  std::fflush(stdout);
}

std::string Errno(int e) { return e ? absl::StrCat(strerrordesc_np(e)) : "success"; }

// mmap of the device at `offset`; returns the mapping or MAP_FAILED with errno.
void* Map(int fd, uint64_t offset, uint64_t len, int prot = PROT_READ | PROT_WRITE,
          int flags = MAP_SHARED) {
  return mmap(nullptr, len, prot, flags, fd, static_cast<off_t>(offset));
}

struct MapRequest {
  uint64_t offset = 0;
  uint64_t len = 0;
  int prot = PROT_READ | PROT_WRITE;
  int flags = MAP_SHARED;
};

// Every mmap of `fd` must be refused with one of `errnos`; unmaps anything
// that was mapped.
void CheckMapsRefused(const std::string& name, int fd, const std::vector<MapRequest>& maps,
                      const std::vector<int>& errnos) {
  bool ok = true;
  std::string detail;
  for (const MapRequest& m : maps) {
    errno = 0;
    void* p = Map(fd, m.offset, m.len, m.prot, m.flags);
    const int e = p == MAP_FAILED ? errno : 0;
    if (p != MAP_FAILED) munmap(p, m.len);
    ok = ok && std::find(errnos.begin(), errnos.end(), e) != errnos.end();
    absl::StrAppend(&detail, detail.empty() ? "" : "; ", "offset 0x", absl::Hex(m.offset),
                    " len 0x", absl::Hex(m.len), ": ", p == MAP_FAILED ? Errno(e) : "MAPPED");
  }
  Check(name, ok, detail);
}

std::vector<Carveout> List(int fd) {
  std::string text;
  char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
  std::vector<Carveout> list;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    Carveout c;
    if (f.size() != 3 || !absl::SimpleHexAtoi(f[0], &c.base) ||
        !absl::SimpleHexAtoi(f[1], &c.size)) {
      Check("listing-format", false, std::string(line));
      continue;
    }
    c.name = f[2];
    list.push_back(c);
  }
  return list;
}

// Writes a pattern through one mapping and reads it back through another
// (a second open of the device): both reach the same physical pages.
void CheckPattern(int fd, const Carveout& c, uint64_t offset_in, const std::string& where) {
  const uint64_t phys = c.base + offset_in;
  const std::string name = absl::StrCat("pattern-", c.name, "-", where);
  void* w = Map(fd, phys, kPage);
  if (w == MAP_FAILED) return Check(name, false, absl::StrCat("mmap: ", Errno(errno)));
  const int fd2 = open(kDevice, O_RDONLY | O_CLOEXEC);
  void* r = fd2 < 0 ? MAP_FAILED : Map(fd2, phys, kPage, PROT_READ);
  if (r == MAP_FAILED) {
    munmap(w, kPage);
    if (fd2 >= 0) close(fd2);
    return Check(name, false, absl::StrCat("second mapping: ", Errno(errno)));
  }
  auto* words = static_cast<volatile uint64_t*>(w);
  auto* back = static_cast<const volatile uint64_t*>(r);
  int bad = 0;
  for (uint64_t i = 0; i < kPage / 8; ++i) words[i] = phys ^ (i * 0x9e3779b97f4a7c15ULL);
  for (uint64_t i = 0; i < kPage / 8; ++i) bad += back[i] != (phys ^ (i * 0x9e3779b97f4a7c15ULL));
  munmap(w, kPage);
  munmap(r, kPage);
  close(fd2);
  Check(name, bad == 0, absl::StrCat("phys 0x", absl::Hex(phys), ", ", bad, " words differ"));
}

// Opening without CAP_SYS_RAWIO must fail with EPERM, even as root (the
// file's 0600 mode alone would let root in). Done in a child that drops
// the capability from its effective set.
void CheckNeedsRawio() {
  const pid_t pid = fork();
  if (pid == 0) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &header, data) != 0) _exit(10);
    data[CAP_SYS_RAWIO / 32].effective &= ~(1u << (CAP_SYS_RAWIO % 32));
    if (syscall(SYS_capset, &header, data) != 0) _exit(11);
    const int fd = open(kDevice, O_RDONLY | O_CLOEXEC);
    _exit(fd >= 0 ? 0 : errno == EPERM ? 1 : 12);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  Check("open-needs-cap-sys-rawio", code == 1,
        code == 0 ? "opened without CAP_SYS_RAWIO" : absl::StrCat("child exit ", code));
}

// --- Pieces: RMEM_CARVEOUT_IOC_PIECE and RMEM_CARVEOUT_IOC_REVOKE ---------

constexpr uint64_t kPieceSize = 4 * kPage;

// Issues a piece of the device file `dev`: its fd, or -1 with errno.
int IssuePiece(int dev, uint64_t phys, uint64_t size, uint32_t flags) {
  rmem_carveout_piece req{};
  req.phys = phys;
  req.size = size;
  req.flags = flags;
  req.fd = -1;
  if (ioctl(dev, RMEM_CARVEOUT_IOC_PIECE, &req) != 0) return -1;
  return req.fd;
}

// RMEM_CARVEOUT_IOC_REVOKE of the fd `piece` on `dev`: 0 or the errno.
int Revoke(int dev, int piece) {
  int32_t arg = piece;
  return ioctl(dev, RMEM_CARVEOUT_IOC_REVOKE, &arg) == 0 ? 0 : errno;
}

struct PieceRequest {
  uint64_t phys = 0;
  uint64_t size = 0;
  uint32_t flags = RMEM_CARVEOUT_PIECE_WRITE;
};

// Every request must be refused with `want`.
void CheckPiecesRefused(const std::string& name, int dev, const std::vector<PieceRequest>& requests,
                        int want) {
  bool ok = true;
  std::string detail;
  for (const PieceRequest& r : requests) {
    errno = 0;
    const int piece = IssuePiece(dev, r.phys, r.size, r.flags);
    const int e = piece < 0 ? errno : 0;
    if (piece >= 0) close(piece);
    ok = ok && e == want;
    absl::StrAppend(&detail, detail.empty() ? "" : "; ", "0x", absl::Hex(r.phys), "+0x",
                    absl::Hex(r.size), " flags 0x", absl::Hex(r.flags), ": ",
                    piece >= 0 ? "ISSUED" : Errno(e));
  }
  Check(name, ok, detail);
}

// The word a pattern puts at word `i` from physical address `phys`: a
// function of the word's own address, so any part of it can be checked.
uint64_t PatternWord(uint64_t phys, uint64_t i, uint64_t salt) {
  const uint64_t at = phys + i * 8;
  return at ^ salt ^ (at * 0x9e3779b97f4a7c15ULL);
}

void WritePattern(void* at, uint64_t phys, uint64_t len, uint64_t salt) {
  auto* words = static_cast<volatile uint64_t*>(at);
  for (uint64_t i = 0; i < len / 8; ++i) words[i] = PatternWord(phys, i, salt);
}

// How many words at `at` (physical address `phys`) differ from the pattern.
uint64_t PatternErrors(const void* at, uint64_t phys, uint64_t len, uint64_t salt) {
  const auto* words = static_cast<const volatile uint64_t*>(at);
  uint64_t bad = 0;
  for (uint64_t i = 0; i < len / 8; ++i) bad += words[i] != PatternWord(phys, i, salt);
  return bad;
}

sigjmp_buf sigbus_jump;
void OnSigbus(int) { siglongjmp(sigbus_jump, 1); }

// Whether reading the word at `p` raises SIGBUS (caught here).
bool Sigbuses(const void* p) {
  struct sigaction on_bus = {};
  struct sigaction old = {};
  on_bus.sa_handler = OnSigbus;
  sigemptyset(&on_bus.sa_mask);
  sigaction(SIGBUS, &on_bus, &old);
  volatile bool bus = true;
  if (sigsetjmp(sigbus_jump, 1) == 0) {
    (void)*static_cast<const volatile uint64_t*>(p);
    bus = false;
  }
  sigaction(SIGBUS, &old, nullptr);
  return bus;
}

// Reopening a piece through /proc must not yield a file with other rights
// (or any file at all): its inode has no open().
void CheckNoReopen(int rw_piece, int ro_piece) {
  bool ok = true;
  std::string detail;
  for (int piece : {rw_piece, ro_piece}) {
    const std::string path = absl::StrCat("/proc/self/fd/", piece);
    errno = 0;
    const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    const int e = fd < 0 ? errno : 0;
    if (fd >= 0) close(fd);
    ok = ok && e == ENXIO;
    absl::StrAppend(&detail, detail.empty() ? "" : "; ", path,
                    " O_RDWR: ", fd >= 0 ? "OPENED" : Errno(e));
  }
  Check("piece-no-reopen", ok, detail);
}

// A mapping of `piece` in this process and one in a forked child both
// SIGBUS once the piece is revoked; both worked before.
void CheckRevokeSigbus(int dev, int piece, void* mapping) {
  int ready[2], go[2];
  if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0) {
    return Check("piece-revoke-sigbus", false, absl::StrCat("pipe: ", Errno(errno)));
  }
  const bool before = Sigbuses(mapping);
  const pid_t pid = fork();
  if (pid == 0) {
    // 0: worked before the revoke and SIGBUSes after; 1: no SIGBUS after;
    // 2: SIGBUS before; 3: no word from the parent.
    char c = Sigbuses(mapping) ? 'b' : 'r';
    if (write(ready[1], &c, 1) != 1 || c == 'b') _exit(2);
    if (read(go[0], &c, 1) != 1) _exit(3);
    _exit(Sigbuses(mapping) ? 0 : 1);
  }
  char c = 0;
  const bool child_ready = pid > 0 && read(ready[0], &c, 1) == 1 && c == 'r';
  const int revoke = Revoke(dev, piece);
  const bool after = Sigbuses(mapping);
  if (pid > 0) {
    c = 'g';
    if (write(go[1], &c, 1) != 1) kill(pid, SIGKILL);
  }
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
  for (int fd : {ready[0], ready[1], go[0], go[1]}) close(fd);
  const int child = pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  Check("piece-revoke-sigbus", !before && child_ready && revoke == 0 && after && child == 0,
        absl::StrCat("before: ", before ? "SIGBUS" : "read", ", child ready: ", child_ready,
                     ", revoke: ", Errno(revoke), ", after: ", after ? "SIGBUS" : "READ",
                     ", child exit ", child, " (0: SIGBUS after)"));
}

// `dev` is open read-write, `ro_dev` read-only; `c` a carve-out.
void CheckPieces(int dev, int ro_dev, const Carveout& c) {
  const uint64_t phys = c.base + 16 * kPage;  // no other check writes there
  const uint32_t kWrite = RMEM_CARVEOUT_PIECE_WRITE;

  // Requests that must be refused.
  CheckPiecesRefused("piece-refuse-outside", dev, {{c.base - kPage, kPage}, {0x40000000, kPage}},
                     EINVAL);
  CheckPiecesRefused(
      "piece-refuse-straddle", dev,
      {{c.base - kPage, 2 * kPage}, {c.base + c.size - kPage, 2 * kPage}, {c.base, c.size + kPage}},
      EINVAL);
  CheckPiecesRefused("piece-refuse-unaligned", dev,
                     {{phys + 0x800, kPage}, {phys, 0x800}, {phys, kPage + 0x800}}, EINVAL);
  CheckPiecesRefused("piece-refuse-zero", dev, {{phys, 0}}, EINVAL);
  CheckPiecesRefused("piece-refuse-overflow", dev,
                     {{~uint64_t{0} - kPage + 1, 2 * kPage}, {c.base, ~(kPage - 1)}}, EINVAL);
  CheckPiecesRefused("piece-refuse-flags", dev,
                     {{phys, kPieceSize, 1u << 1}, {phys, kPieceSize, ~0u}}, EINVAL);
  CheckPiecesRefused("piece-refuse-readonly-device", ro_dev,
                     {{phys, kPieceSize, kWrite}, {phys, kPieceSize, 0}}, EBADF);

  const int rw = IssuePiece(dev, phys, kPieceSize, kWrite);
  const int rw_errno = errno;
  const int ro = IssuePiece(dev, phys, kPieceSize, 0);
  const int ro_errno = errno;
  Check("piece-issue", rw >= 0 && ro >= 0,
        absl::StrCat("0x", absl::Hex(phys), "+0x", absl::Hex(kPieceSize),
                     " read-write: ", rw >= 0 ? "issued" : Errno(rw_errno),
                     ", read-only: ", ro >= 0 ? "issued" : Errno(ro_errno)));
  if (rw < 0 || ro < 0) {
    if (rw >= 0) close(rw);
    if (ro >= 0) close(ro);
    return;
  }

  // The files: their access modes, close-on-exec, size.
  const int rw_fl = fcntl(rw, F_GETFL), ro_fl = fcntl(ro, F_GETFL);
  const int rw_fd = fcntl(rw, F_GETFD), ro_fd = fcntl(ro, F_GETFD);
  Check("piece-fd-flags",
        (rw_fl & O_ACCMODE) == O_RDWR && (ro_fl & O_ACCMODE) == O_RDONLY && (rw_fd & FD_CLOEXEC) &&
            (ro_fd & FD_CLOEXEC),
        absl::StrCat("read-write piece: accmode ", rw_fl & O_ACCMODE, " cloexec ",
                     rw_fd & FD_CLOEXEC, "; read-only piece: accmode ", ro_fl & O_ACCMODE,
                     " cloexec ", ro_fd & FD_CLOEXEC));
  struct stat st_rw = {};
  struct stat st_ro = {};
  const bool stat_ok = fstat(rw, &st_rw) == 0 && fstat(ro, &st_ro) == 0;
  Check("piece-fstat-size",
        stat_ok && static_cast<uint64_t>(st_rw.st_size) == kPieceSize &&
            static_cast<uint64_t>(st_ro.st_size) == kPieceSize,
        stat_ok ? absl::StrCat("st_size 0x", absl::Hex(st_rw.st_size), " / 0x",
                               absl::Hex(st_ro.st_size), ", want 0x", absl::Hex(kPieceSize))
                : Errno(errno));
  CheckNoReopen(rw, ro);

  // The read-write piece is exactly [phys, phys + size): a pattern written
  // through it reads back through the device's mapping at that address.
  void* piece_map = Map(rw, 0, kPieceSize);
  void* dev_map = Map(dev, phys, kPieceSize, PROT_READ);
  if (piece_map == MAP_FAILED || dev_map == MAP_FAILED) {
    Check("piece-rw-map", false,
          absl::StrCat("piece: ", piece_map == MAP_FAILED ? "not mapped" : "mapped", ", device: ",
                       dev_map == MAP_FAILED ? "not mapped" : "mapped", ": ", Errno(errno)));
  } else {
    WritePattern(piece_map, phys, kPieceSize, 0x5a5a);
    const uint64_t bad = PatternErrors(dev_map, phys, kPieceSize, 0x5a5a);
    Check("piece-rw-map", bad == 0,
          absl::StrCat("0x", absl::Hex(kPieceSize), " bytes at 0x", absl::Hex(phys), ", ", bad,
                       " words differ"));
  }
  // A page at an offset inside the piece is that page of the range.
  void* third = Map(rw, 2 * kPage, kPage, PROT_READ);
  Check("piece-map-offset",
        third != MAP_FAILED && PatternErrors(third, phys + 2 * kPage, kPage, 0x5a5a) == 0,
        third == MAP_FAILED ? Errno(errno)
                            : absl::StrCat(PatternErrors(third, phys + 2 * kPage, kPage, 0x5a5a),
                                           " words differ from page 2 of the pattern"));
  if (third != MAP_FAILED) munmap(third, kPage);
  CheckMapsRefused("piece-refuse-beyond", rw,
                   {{0, kPieceSize + kPage},
                    {kPieceSize, kPage},
                    {kPieceSize - kPage, 2 * kPage},
                    {uint64_t{1} << 40, kPage}},
                   {EINVAL});
  CheckMapsRefused("piece-refuse-private", rw, {{0, kPage, PROT_READ, MAP_PRIVATE}}, {EINVAL});

  // The read-only piece: reads the same memory, never writes it.
  CheckMapsRefused("piece-ro-refuse-write", ro, {{0, kPieceSize}}, {EACCES});
  void* ro_map = Map(ro, 0, kPieceSize, PROT_READ);
  if (ro_map == MAP_FAILED) {
    Check("piece-ro-reads", false, Errno(errno));
    Check("piece-ro-no-mprotect-write", false, "not mapped");
  } else {
    const uint64_t bad = PatternErrors(ro_map, phys, kPieceSize, 0x5a5a);
    Check("piece-ro-reads", bad == 0, absl::StrCat(bad, " words differ"));
    errno = 0;
    const int rc = mprotect(ro_map, kPieceSize, PROT_READ | PROT_WRITE);
    Check("piece-ro-no-mprotect-write", rc != 0 && errno == EACCES,
          rc == 0 ? "mprotect allowed PROT_WRITE" : Errno(errno));
    munmap(ro_map, kPieceSize);
  }

  // Revoking: only the issuer, only pieces.
  const int other = open(kDevice, O_RDWR | O_CLOEXEC);
  const int by_other = other < 0 ? -1 : Revoke(other, rw);
  const int by_ro_dev = Revoke(ro_dev, rw);
  if (other >= 0) close(other);
  const bool still_maps = piece_map != MAP_FAILED && !Sigbuses(piece_map);
  Check("piece-revoke-other-session", by_other == EPERM && by_ro_dev == EPERM && still_maps,
        absl::StrCat("another read-write open: ", other < 0 ? "cannot open" : Errno(by_other),
                     ", a read-only open: ", Errno(by_ro_dev),
                     ", the piece afterwards: ", still_maps ? "still mapped" : "GONE"));
  const int memfd = memfd_create("rmem-carveout-check", MFD_CLOEXEC);
  const int of_device = Revoke(dev, dev), of_memfd = Revoke(dev, memfd);
  if (memfd >= 0) close(memfd);
  Check("piece-revoke-not-a-piece", of_device == EINVAL && of_memfd == EINVAL,
        absl::StrCat("the device's fd: ", Errno(of_device), ", a memfd: ", Errno(of_memfd)));
  const int closed = dup(rw);
  if (closed >= 0) close(closed);
  const int of_minus_one = Revoke(dev, -1), of_closed = Revoke(dev, closed);
  Check("piece-revoke-bad-fd", of_minus_one == EBADF && of_closed == EBADF,
        absl::StrCat("-1: ", Errno(of_minus_one), ", a closed fd: ", Errno(of_closed)));

  // Revoking takes every mapping away, here and in other processes.
  if (piece_map != MAP_FAILED) {
    CheckRevokeSigbus(dev, rw, piece_map);
    const int again = Revoke(dev, rw);
    Check("piece-revoke-idempotent", again == 0 && Sigbuses(piece_map),
          absl::StrCat("second revoke: ", Errno(again)));
    munmap(piece_map, kPieceSize);
  } else {
    Check("piece-revoke-sigbus", false, "not mapped");
    Check("piece-revoke-idempotent", false, "not mapped");
  }
  if (dev_map != MAP_FAILED) munmap(dev_map, kPieceSize);
  CheckMapsRefused("piece-revoke-no-remap", rw, {{0, kPieceSize}, {0, kPage, PROT_READ}},
                   {ENODEV});
  close(rw);
  close(ro);

  // Releasing the device file that issued a piece revokes it.
  const int issuer = open(kDevice, O_RDWR | O_CLOEXEC);
  const int orphan = issuer < 0 ? -1 : IssuePiece(issuer, phys, kPieceSize, kWrite);
  void* orphan_map = orphan < 0 ? MAP_FAILED : Map(orphan, 0, kPieceSize);
  if (orphan_map == MAP_FAILED) {
    Check("piece-revoke-on-close", false, absl::StrCat("no mapped piece: ", Errno(errno)));
  } else {
    const bool before = Sigbuses(orphan_map);
    close(issuer);
    const bool after = Sigbuses(orphan_map);
    errno = 0;
    void* again = Map(orphan, 0, kPage, PROT_READ);
    const int e = again == MAP_FAILED ? errno : 0;
    if (again != MAP_FAILED) munmap(again, kPage);
    Check("piece-revoke-on-close", !before && after && e == ENODEV,
          absl::StrCat("before: ", before ? "SIGBUS" : "read",
                       ", after closing the device: ", after ? "SIGBUS" : "READ",
                       ", mmap again: ", again == MAP_FAILED ? Errno(e) : "MAPPED"));
    munmap(orphan_map, kPieceSize);
  }
  if (orphan >= 0) close(orphan);
  if (issuer >= 0 && orphan_map == MAP_FAILED) close(issuer);
}

// With no device file left in this process and a piece's file kept only by
// a mapping, the module must refuse to go: the piece holds it. (Its removal
// once nothing holds it is the scenario's last step.) Call with no other
// file of the device open.
void CheckPieceHoldsModule(const Carveout& c) {
  const int dev = open(kDevice, O_RDWR | O_CLOEXEC);
  const int piece = dev < 0 ? -1 : IssuePiece(dev, c.base, kPage, 0);
  void* m = piece < 0 ? MAP_FAILED : Map(piece, 0, kPage, PROT_READ);
  const int e = errno;
  if (piece >= 0) close(piece);
  if (dev >= 0) close(dev);
  if (m == MAP_FAILED) {
    return Check("piece-holds-module", false, absl::StrCat("no mapped piece: ", Errno(e)));
  }
  errno = 0;
  const long rc = syscall(SYS_delete_module, "rmem_carveout", O_NONBLOCK);
  const int busy = rc == 0 ? 0 : errno;
  munmap(m, kPage);
  Check("piece-holds-module", rc != 0 && busy == EWOULDBLOCK,
        rc == 0 ? "the module was REMOVED while a piece was mapped"
                : absl::StrCat("delete_module: ", Errno(busy)));
}

int RunChecks() {
  const int fd = open(kDevice, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    Check("open", false, absl::StrCat(kDevice, ": ", Errno(errno)));
    return 1;
  }
  const std::vector<Carveout> list = List(fd);
  Check("listing", !list.empty(), absl::StrCat(list.size(), " carve-outs"));
  if (list.empty()) return 1;
  for (const Carveout& c : list) {
    CheckPattern(fd, c, 0, "first-page");
    CheckPattern(fd, c, c.size - kPage, "last-page");
    // A whole carve-out at once, and the same from a read-only open.
    void* whole = Map(fd, c.base, c.size);
    Check(absl::StrCat("whole-", c.name), whole != MAP_FAILED,
          whole == MAP_FAILED ? Errno(errno) : absl::StrCat("0x", absl::Hex(c.size), " bytes"));
    if (whole != MAP_FAILED) munmap(whole, c.size);
  }

  const Carveout& c = list.front();
  // Refusals. The kernel itself refuses an offset that is not page aligned;
  // an offset near 2^64 overflows in the kernel (EOVERFLOW) or in our check.
  CheckMapsRefused("refuse-below", fd, {{c.base - kPage, kPage}}, {EINVAL});
  CheckMapsRefused("refuse-straddle-start", fd, {{c.base - kPage, 2 * kPage}}, {EINVAL});
  CheckMapsRefused("refuse-straddle-end", fd, {{c.base + c.size - kPage, 2 * kPage}},
                   {EINVAL});
  CheckMapsRefused("refuse-longer-than-carveout", fd, {{c.base, c.size + kPage}}, {EINVAL});
  CheckMapsRefused("refuse-kernel-ram", fd, {{0x40000000, kPage}}, {EINVAL});
  CheckMapsRefused("refuse-unaligned", fd, {{c.base + 0x800, kPage}}, {EINVAL});
  CheckMapsRefused("refuse-overflow", fd, {{~uint64_t{0} - kPage + 1, 2 * kPage}},
                   {EINVAL, EOVERFLOW});
  CheckMapsRefused("refuse-private", fd, {{c.base, kPage, PROT_READ, MAP_PRIVATE}}, {EINVAL});
  for (size_t i = 0; i + 1 < list.size(); ++i) {
    // Across the boundary of two carve-outs that touch: not inside one.
    if (list[i].base + list[i].size == list[i + 1].base) {
      CheckMapsRefused(absl::StrCat("refuse-across-", list[i].name), fd,
                       {{list[i + 1].base - kPage, 2 * kPage}}, {EINVAL});
    }
  }

  // Read-only open: reading works, writing cannot be had, not even later.
  const int ro = open(kDevice, O_RDONLY | O_CLOEXEC);
  void* r = ro < 0 ? MAP_FAILED : Map(ro, c.base, kPage, PROT_READ);
  Check("readonly-map", r != MAP_FAILED, r == MAP_FAILED ? Errno(errno) : "mapped");
  if (r != MAP_FAILED) {
    errno = 0;
    const int rc = mprotect(r, kPage, PROT_READ | PROT_WRITE);
    Check("readonly-no-mprotect-write", rc != 0 && errno == EACCES,
          rc == 0 ? "mprotect allowed PROT_WRITE" : Errno(errno));
    munmap(r, kPage);
  }
  if (ro >= 0) {
    CheckMapsRefused("readonly-refuse-write", ro, {{c.base, kPage}}, {EACCES});
    CheckPieces(fd, ro, c);
    close(ro);
  } else {
    Check("piece-issue", false, absl::StrCat("no read-only open: ", Errno(errno)));
  }
  CheckNeedsRawio();
  close(fd);
  CheckPieceHoldsModule(c);
  std::printf("RMEM-CARVEOUT-CHECKS %d/%d\n", checks_passed, checks_run);
  return checks_passed == checks_run ? 0 : 1;
}

int Peek(uint64_t phys, uint64_t count) {
  const int fd = open(kDevice, O_RDONLY | O_CLOEXEC);
  const uint64_t page = phys & ~(kPage - 1);
  if (fd < 0 || phys % 8 || count == 0 || phys + count * 8 > page + kPage) {
    std::fprintf(stderr, "rmem-carveout-check: cannot peek 0x%llx (%s)\n",
                 static_cast<unsigned long long>(phys), fd < 0 ? Errno(errno).c_str() : "range");
    return 1;
  }
  void* m = Map(fd, page, kPage, PROT_READ);
  if (m == MAP_FAILED) {
    std::fprintf(stderr, "rmem-carveout-check: mmap 0x%llx: %s\n",
                 static_cast<unsigned long long>(page), Errno(errno).c_str());
    return 1;
  }
  const auto* words = static_cast<const volatile uint64_t*>(m);
  std::string line = absl::StrCat("RMEM-CARVEOUT-PEEK 0x", absl::Hex(phys));
  for (uint64_t i = 0; i < count; ++i) {
    absl::StrAppend(&line, " 0x", absl::Hex(words[(phys - page) / 8 + i], absl::kZeroPad16));
  }
  std::printf("%s\n", line.c_str());
  munmap(m, kPage);
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  uint64_t phys = 0, count = 0;
  if (cmd == "mmap" && argc == 2) return RunChecks();
  if (cmd == "peek" && argc == 4 && absl::SimpleHexAtoi(argv[2], &phys) &&
      absl::SimpleAtoi(argv[3], &count)) {
    return Peek(phys, count);
  }
  std::fprintf(stderr,
               "usage: rmem-carveout-check mmap | peek PHYS COUNT\n"
               "TEST ONLY: checks /dev/rmem-carveout (host_driver/rmem_carveout).\n");
  return 2;
}

// TEST ONLY: rmem-carveout-check, run in the test SoC's host (L1) by the
// scenario carveout_map against /dev/rmem-carveout (host_driver/rmem_carveout).
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
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

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

// Expects a refusal with one of `errnos`; unmaps anything that was mapped.
void CheckRefused(const std::string& name, int fd, uint64_t offset, uint64_t len,
                  std::vector<int> errnos, int prot = PROT_READ | PROT_WRITE,
                  int flags = MAP_SHARED) {
  errno = 0;
  void* m = Map(fd, offset, len, prot, flags);
  const int e = m == MAP_FAILED ? errno : 0;
  if (m != MAP_FAILED) munmap(m, len);
  bool ok = false;
  for (int want : errnos) ok = ok || e == want;
  Check(name, ok, absl::StrCat("offset 0x", absl::Hex(offset), " len 0x", absl::Hex(len), ": ",
                               m == MAP_FAILED ? Errno(e) : "MAPPED"));
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
  CheckRefused("refuse-below", fd, c.base - kPage, kPage, {EINVAL});
  CheckRefused("refuse-straddle-start", fd, c.base - kPage, 2 * kPage, {EINVAL});
  CheckRefused("refuse-straddle-end", fd, c.base + c.size - kPage, 2 * kPage, {EINVAL});
  CheckRefused("refuse-longer-than-carveout", fd, c.base, c.size + kPage, {EINVAL});
  CheckRefused("refuse-kernel-ram", fd, 0x40000000, kPage, {EINVAL});
  CheckRefused("refuse-unaligned", fd, c.base + 0x800, kPage, {EINVAL});
  CheckRefused("refuse-overflow", fd, ~uint64_t{0} - kPage + 1, 2 * kPage, {EINVAL, EOVERFLOW});
  CheckRefused("refuse-private", fd, c.base, kPage, {EINVAL}, PROT_READ, MAP_PRIVATE);
  for (size_t i = 0; i + 1 < list.size(); ++i) {
    // Across the boundary of two carve-outs that touch: not inside one.
    if (list[i].base + list[i].size == list[i + 1].base) {
      CheckRefused(absl::StrCat("refuse-across-", list[i].name), fd, list[i + 1].base - kPage,
                   2 * kPage, {EINVAL});
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
    CheckRefused("readonly-refuse-write", ro, c.base, kPage, {EACCES});
    close(ro);
  }
  CheckNeedsRawio();
  close(fd);
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

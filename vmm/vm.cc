#include "vmm/vm.h"

#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "broker/check.h"
#include "base/eventfd.h"
#include "base/sys_error.h"

namespace rmem::vmm {
namespace {

constexpr int kKickSignal = SIGUSR1;
void IgnoreKick(int) {}

// Unclaimed MMIO is logged for the first few accesses only: a guest probing
// the bus must not flood the console (STYLE.md rule 4). So are accesses KVM
// could not decode.
constexpr uint64_t kUnclaimedLogLimit = 8;

// KVM_EXIT_ARM_NISV's esr_iss holds ESR_EL2's WnR bit: the access was a write.
constexpr uint64_t kEsrWriteNotRead = uint64_t{1} << 6;

// The exit status of a guest stopped for, or powered off after, isolation
// violations (docs/vmm.md).
constexpr int kViolationExit = 5;

void StderrLine(const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }

}  // namespace

int ExitCode(VmExit exit) {
  switch (exit) {
    case VmExit::kPoweredOff:
      return 0;
    case VmExit::kReset:
      return 3;
    case VmExit::kCrashed:
      return 4;
    case VmExit::kTimedOut:
      return 124;
    case VmExit::kSignalled:
      return 143;
    case VmExit::kIsolationViolation:
      return kViolationExit;
  }
  return 1;
}

int ExitStatus(VmExit exit, uint64_t violations) {
  if (exit == VmExit::kPoweredOff && violations > 0) return kViolationExit;
  return ExitCode(exit);
}

const char* VmExitName(VmExit exit) {
  switch (exit) {
    case VmExit::kPoweredOff:
      return "powered off";
    case VmExit::kReset:
      return "reset requested";
    case VmExit::kCrashed:
      return "crashed";
    case VmExit::kTimedOut:
      return "timed out";
    case VmExit::kSignalled:
      return "stopped by signal";
    case VmExit::kIsolationViolation:
      return "stopped: isolation violation";
  }
  return "?";
}

Vm::Vm(KvmVm kvm, GuestMemory ram)
    : kvm_(std::move(kvm)), ram_(std::move(ram)), violations_(StderrLine) {}

void Vm::SetViolationPolicy(ViolationPolicy policy,
                            std::unique_ptr<ExternalAbortInjector> injector,
                            std::string stop_reason) {
  violation_policy_ = policy;
  abort_injector_ = std::move(injector);
  stop_reason_ = std::move(stop_reason);
}

IrqLine* Vm::Own(std::unique_ptr<IrqLine> line) {
  irqs_.push_back(std::move(line));
  return irqs_.back().get();
}

KvmSlotMapper* Vm::slot_mapper() {
  // Slot 0 is RAM; pieces take the rest.
  if (slot_mapper_ == nullptr) slot_mapper_ = std::make_unique<KvmSlotMapper>(&kvm_, 1);
  return slot_mapper_.get();
}

ShmWindows* Vm::OwnShmWindows(std::unique_ptr<ShmWindows> windows) {
  shm_windows_.push_back(std::move(windows));
  return shm_windows_.back().get();
}

VirtioBackend* Vm::OwnBackend(std::unique_ptr<VirtioBackend> backend) {
  backends_.push_back(std::move(backend));
  return backends_.back().get();
}

absl::Status Vm::AddDevice(std::string name, GuestAddr base, uint64_t size,
                           std::unique_ptr<MmioDevice> device) {
  absl::Status s = bus_.Add(std::move(name), base, size, device.get());
  if (s.ok()) devices_.push_back(std::move(device));
  return s;
}

void Vm::Finish(absl::StatusOr<VmExit> outcome) {
  {
    absl::MutexLock lock(&mu_);
    if (!outcome_.has_value()) outcome_ = std::move(outcome);
  }
  SignalEventFd(done_fd_);
}

std::optional<std::string> Vm::ClassifyViolation(GuestAddr addr, bool is_write) const {
  for (const std::unique_ptr<ShmWindows>& w : shm_windows_) {
    if (std::optional<std::string> v = w->Classify(addr, is_write)) return v;
  }
  return std::nullopt;
}

void Vm::AwaitShm(int index, GuestAddr addr) {
  for (const std::unique_ptr<ShmWindows>& w : shm_windows_) {
    bool said = false;
    while (!stopping_.load(std::memory_order_acquire) &&
           w->AwaitSettled(addr, absl::Milliseconds(100))) {
      if (!said && shm_waits_.fetch_add(1) < kUnclaimedLogLimit) {
        std::fprintf(stderr,
                     "rmem-vmm: vCPU %d: access at %s waits for its device's back-end to come "
                     "back\n",
                     index, addr.ToString().c_str());
      }
      said = true;
    }
  }
}

uint64_t Vm::ShmChanges() const {
  uint64_t sum = 0;
  for (const std::unique_ptr<ShmWindows>& w : shm_windows_) sum += w->changes();
  return sum;
}

bool Vm::AwaitShmChange(int index, uint64_t since) {
  if (shm_windows_.empty()) return false;
  // Changed while this vCPU was in KVM_RUN (a piece mapped since): running
  // again may be all it takes.
  if (ShmChanges() != since) return true;
  if (revoked_waits_.fetch_add(1) < kUnclaimedLogLimit) {
    std::fprintf(stderr,
                 "rmem-vmm: vCPU %d: KVM cannot map a page of guest memory (EFAULT): waiting "
                 "for a revoked shared memory piece to be removed\n",
                 index);
  }
  // The back-end's hang-up is what removes its revoked pieces (Suspend),
  // seen by the frontend's own thread within moments.
  const absl::Time deadline = absl::Now() + kRevokedPieceWait;
  while (!stopping_.load(std::memory_order_acquire) && absl::Now() < deadline) {
    if (ShmChanges() != since) return true;
    for (const std::unique_ptr<ShmWindows>& w : shm_windows_) {
      if (w->AwaitChange(w->changes(), absl::Milliseconds(10))) break;
    }
  }
  return ShmChanges() != since || stopping_.load(std::memory_order_acquire);
}

bool Vm::ShmAccess(GuestAddr addr, std::span<uint8_t> data, bool is_write) {
  for (const std::unique_ptr<ShmWindows>& w : shm_windows_) {
    if (w->Access(addr, data, is_write)) return true;
  }
  return false;
}

bool Vm::OnViolation(int index, KvmVcpu& vcpu, const std::string& what) {
  if (violation_policy_ == ViolationPolicy::kAbort && abort_injector_ != nullptr) {
    // The access is not performed: a write to a read-only piece never
    // reached memory (its memslot is read-only, and nothing here writes it),
    // a load gets no data.
    absl::Status s = abort_injector_->InjectDataAbort(vcpu);
    if (s.ok()) {
      violations_.Record(index, what, "external abort injected");
      return true;
    }
    violations_.Record(index, what, "injecting an external abort failed");
    Finish(absl::Status(s.code(), absl::StrCat("vCPU ", index, ": ", s.message())));
    return false;
  }
  violations_.Record(index, what, stop_reason_);
  Finish(VmExit::kIsolationViolation);
  return false;
}

bool Vm::OnUndecodedAccess(int index, KvmVcpu& vcpu, GuestAddr addr, bool is_write) {
  const std::string what =
      absl::StrCat(is_write ? "write" : "read", " at ", addr.ToString(),
                   " that KVM could not decode (no instruction syndrome: LDP/STP, SIMD, ...)");
  if (abort_injector_ == nullptr) {
    Finish(absl::UnimplementedError(absl::StrCat("vCPU ", index, ": guest ", what)));
    return false;
  }
  // Nothing can emulate it: answer as hardware answers an access no device
  // decodes.
  if (absl::Status s = abort_injector_->InjectDataAbort(vcpu); !s.ok()) {
    Finish(absl::Status(s.code(), absl::StrCat("vCPU ", index, ": ", s.message())));
    return false;
  }
  if (undecoded_.fetch_add(1) < kUnclaimedLogLimit) {
    std::fprintf(stderr, "rmem-vmm: vCPU %d: guest %s: external abort injected\n", index,
                 what.c_str());
  }
  return true;
}

void Vm::VcpuLoop(int index) {
  KvmVcpu& vcpu = vcpus_[static_cast<size_t>(index)];
  kvm_run* run = vcpu.run();
  while (!stopping_.load(std::memory_order_acquire)) {
    const uint64_t shm_changes = ShmChanges();
    if (ioctl(vcpu.fd(), KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;  // kicked, or a signal: re-check
      if (errno == EFAULT && AwaitShmChange(index, shm_changes)) continue;
      Finish(ErrnoError(absl::StrCat("KVM_RUN on vCPU ", index)));
      return;
    }
    exits_.fetch_add(1, std::memory_order_relaxed);
    switch (run->exit_reason) {
      case KVM_EXIT_MMIO: {
        const GuestAddr addr(run->mmio.phys_addr);
        const uint32_t len = std::min<uint32_t>(run->mmio.len, sizeof(run->mmio.data));
        const bool claimed =
            run->mmio.is_write
                ? bus_.Write(addr, std::span<const uint8_t>(run->mmio.data, len))
                : bus_.Read(addr, std::span<uint8_t>(run->mmio.data, len));
        if (!claimed) {
          // A piece that is mapped (again, after a reconnect, or just now)
          // with this right: the access is the guest's due, not a violation.
          AwaitShm(index, addr);
          if (ShmAccess(addr, std::span<uint8_t>(run->mmio.data, len), run->mmio.is_write)) break;
          if (std::optional<std::string> violation = ClassifyViolation(addr, run->mmio.is_write)) {
            if (!OnViolation(index, vcpu, *violation)) return;
            break;
          }
          if (!run->mmio.is_write) std::fill_n(run->mmio.data, len, 0);
          if (unclaimed_mmio_.fetch_add(1) < kUnclaimedLogLimit) {
            std::fprintf(stderr, "rmem-vmm: vCPU %d: unclaimed MMIO %s of %u bytes at %s\n",
                         index, run->mmio.is_write ? "write" : "read", len,
                         addr.ToString().c_str());
          }
        }
        break;
      }
      case KVM_EXIT_ARM_NISV: {
        // arm64, with KVM_CAP_ARM_NISV_TO_USER: an access outside RAM (or a
        // write to a read-only memslot) without an instruction syndrome.
        // Nothing emulates those; one inside a shared memory region is an
        // isolation violation like any other.
        const GuestAddr addr(run->arm_nisv.fault_ipa);
        const bool is_write = (run->arm_nisv.esr_iss & kEsrWriteNotRead) != 0;
        AwaitShm(index, addr);
        // Mapped with this right now: run the instruction again.
        if (ShmAccess(addr, {}, is_write)) break;
        if (std::optional<std::string> violation = ClassifyViolation(addr, is_write)) {
          if (!OnViolation(index, vcpu, *violation)) return;
        } else if (!OnUndecodedAccess(index, vcpu, addr, is_write)) {
          return;
        }
        break;
      }
      case KVM_EXIT_SYSTEM_EVENT:
        switch (run->system_event.type) {
          case KVM_SYSTEM_EVENT_SHUTDOWN:
            Finish(VmExit::kPoweredOff);
            return;
          case KVM_SYSTEM_EVENT_RESET:
            Finish(VmExit::kReset);
            return;
          case KVM_SYSTEM_EVENT_CRASH:
            Finish(VmExit::kCrashed);
            return;
          default:
            Finish(absl::UnimplementedError(absl::StrCat(
                "vCPU ", index, ": unhandled system event type ", run->system_event.type)));
            return;
        }
      case KVM_EXIT_INTR:
        break;
      case KVM_EXIT_FAIL_ENTRY:
        Finish(absl::InternalError(absl::StrCat(
            "vCPU ", index, ": KVM entry failed, hardware reason ",
            Hex(run->fail_entry.hardware_entry_failure_reason))));
        return;
      case KVM_EXIT_INTERNAL_ERROR:
        Finish(absl::InternalError(absl::StrCat("vCPU ", index, ": KVM internal error, suberror ",
                                                run->internal.suberror)));
        return;
      default:
        Finish(absl::UnimplementedError(
            absl::StrCat("vCPU ", index, ": unhandled KVM exit reason ", run->exit_reason)));
        return;
    }
  }
}

Vm::Stats Vm::stats() const {
  uint64_t shm_bytes = 0;
  for (const std::unique_ptr<ShmWindows>& w : shm_windows_) shm_bytes += w->bytes_accessed();
  return Stats{.exits = exits_.load(), .unclaimed = unclaimed_mmio_.load(),
               .undecoded = undecoded_.load(), .shm_waits = shm_waits_.load(),
               .shm_bytes_accessed = shm_bytes, .mmio_by_device = bus_.AccessCounts()};
}

absl::StatusOr<VmExit> Vm::Run(absl::Duration timeout) {
  RMEM_CHECK(done_fd_ < 0);
  Fd done = MakeEventFd(/*nonblocking=*/false);
  if (!done.valid()) return ErrnoError("eventfd");
  done_fd_ = done.get();

  // SIGTERM/SIGINT are read from a signalfd by this thread; blocked before
  // the vCPU threads start so they inherit the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigset_t old_mask;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
  Fd sig(signalfd(-1, &stop_signals, SFD_CLOEXEC));
  if (!sig.valid()) return ErrnoError("signalfd");

  struct sigaction kick {};
  kick.sa_handler = IgnoreKick;  // no SA_RESTART: KVM_RUN returns EINTR
  sigaction(kKickSignal, &kick, nullptr);

  Fd timer;
  if (timeout > absl::ZeroDuration()) {
    timer = Fd(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
    if (!timer.valid()) return ErrnoError("timerfd_create");
    itimerspec spec{};
    spec.it_value = absl::ToTimespec(timeout);
    if (timerfd_settime(timer.get(), 0, &spec, nullptr) != 0) return ErrnoError("timerfd_settime");
  }

  std::vector<std::thread> threads;
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    threads.emplace_back([this, i] { VcpuLoop(static_cast<int>(i)); });
  }

  pollfd fds[3] = {{done.get(), POLLIN, 0}, {sig.get(), POLLIN, 0}, {timer.get(), POLLIN, 0}};
  const nfds_t nfds = timer.valid() ? 3 : 2;
  while (poll(fds, nfds, -1) < 0 && errno == EINTR) {
  }
  if (fds[1].revents & POLLIN) {
    signalfd_siginfo info;
    if (read(sig.get(), &info, sizeof(info)) == sizeof(info)) {
      std::fprintf(stderr, "rmem-vmm: %s received, stopping the guest\n",
                   strsignal(static_cast<int>(info.ssi_signo)));
    }
    Finish(VmExit::kSignalled);
  } else if (nfds == 3 && (fds[2].revents & POLLIN)) {
    Finish(VmExit::kTimedOut);
  }

  stopping_.store(true, std::memory_order_release);
  // A vCPU may be waiting in a device call for a back-end to come back.
  for (const std::unique_ptr<VirtioBackend>& b : backends_) b->Abandon();
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    vcpus_[i].run()->immediate_exit = 1;
    pthread_kill(threads[i].native_handle(), kKickSignal);
  }
  for (std::thread& t : threads) t.join();
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);

  absl::MutexLock lock(&mu_);
  RMEM_CHECK(outcome_.has_value());
  return *outcome_;
}

}  // namespace rmem::vmm

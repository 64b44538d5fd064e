// rmem-vmm: boots one guest and exits with why it stopped (docs/vmm.md).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "vmm/arch/build_vm.h"
#include "vmm/config/cli.h"

namespace {

constexpr int kVmmError = 1;
constexpr int kUsageError = 2;

void PrintStats(const rmem::vmm::Vm& vm, absl::Duration setup, absl::Duration run) {
  const rmem::vmm::Vm::Stats s = vm.stats();
  std::string by_device;
  for (const auto& [name, count] : s.mmio_by_device) {
    absl::StrAppend(&by_device, ", ", name, " ", count);
  }
  std::fprintf(stderr,
               "rmem-vmm: stats: set-up %.3f s, run %.3f s, %llu exits to the VMM "
               "(MMIO%s, unclaimed %llu, undecoded %llu, waited for a back-end %llu, "
               "isolation violations %llu)\n",
               absl::ToDoubleSeconds(setup), absl::ToDoubleSeconds(run),
               static_cast<unsigned long long>(s.exits), by_device.c_str(),
               static_cast<unsigned long long>(s.unclaimed),
               static_cast<unsigned long long>(s.undecoded),
               static_cast<unsigned long long>(s.shm_waits),
               static_cast<unsigned long long>(vm.violations().count()));
  // What the VMM itself copied to or from guests' shared memory (the demo
  // sums it: frames must cross from guest to guest without a host copy).
  std::fprintf(stderr, "rmem-vmm: stats: shared memory bytes accessed by the VMM: %llu\n",
               static_cast<unsigned long long>(s.shm_bytes_accessed));
}

int Main(const std::vector<std::string>& args) {
  using namespace rmem::vmm;  // NOLINT
  absl::StatusOr<std::variant<VmConfig, HelpRequested>> parsed = ParseCommandLine(args);
  if (!parsed.ok()) {
    std::fprintf(stderr, "rmem-vmm: %s (see --help)\n",
                 std::string(parsed.status().message()).c_str());
    return kUsageError;
  }
  if (std::holds_alternative<HelpRequested>(*parsed)) {
    std::fputs(Usage().c_str(), stdout);
    return 0;
  }
  const VmConfig& config = std::get<VmConfig>(*parsed);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Vm>> vm = BuildVm(config);
  if (!vm.ok()) {
    std::fprintf(stderr, "rmem-vmm: cannot start the guest: %s\n", vm.status().ToString().c_str());
    return kVmmError;
  }
  const absl::Time built = absl::Now();
  absl::StatusOr<VmExit> exit = (*vm)->Run(config.timeout);
  std::fflush(stdout);
  if (config.stats) PrintStats(**vm, built - start, absl::Now() - built);
  // Every run that had violations says how many, whatever else happened.
  if (const std::string summary = (*vm)->violations().Summary(); !summary.empty()) {
    std::fprintf(stderr, "%s\n", summary.c_str());
  }
  if (!exit.ok()) {
    std::fprintf(stderr, "rmem-vmm: the VMM failed: %s\n", exit.status().ToString().c_str());
    return kVmmError;
  }
  if (*exit != VmExit::kPoweredOff) {
    std::fprintf(stderr, "rmem-vmm: guest %s\n", VmExitName(*exit));
  }
  return ExitStatus(*exit, (*vm)->violations().count());
}

}  // namespace

int main(int argc, char** argv) { return Main(std::vector<std::string>(argv + 1, argv + argc)); }

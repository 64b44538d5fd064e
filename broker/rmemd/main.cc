// rmemd, the restricted-memory broker daemon: reads and validates what
// firmware handed over (carve-out contract v1, initiator binding), joins it
// with its configuration, and serves every configured guest a virtio-rmem
// device over vhost-user from one broker (docs/rmemd.md).
#include <signal.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/event_loop.h"
#include "base/fd.h"
#include "broker/rights.h"
#include "broker/rmemd/config.h"
#include "broker/rmemd/firmware_source.h"
#include "broker/rmemd/platform_firewalls.h"
#include "broker/rmemd/service.h"
#include "broker/rmemd/setup.h"
#include "broker/state/sqlite_state_store.h"

namespace rmem::rmemd {
namespace {

constexpr int kRejected = 1;
constexpr int kUsage = 2;

constexpr char kUsageText[] =
    "usage: rmemd [--fdt FILE | --transfer-list FILE] [--check-firmware]\n"
    "             [--config FILE [--check-config] [--memory DEVICE|standin]\n"
    "              [--state FILE | --no-state] [--reset-state]\n"
    "              [--reconnect-grace SECONDS]]\n"
    "\n"
    "Reads the restricted-memory carve-outs and the device initiators firmware\n"
    "handed over: a flattened device tree (--fdt), an Arm Firmware Handoff\n"
    "transfer list (--transfer-list), or, with neither, the embedded default\n"
    "platform.\n"
    "\n"
    "  --check-firmware   print the verdict as one JSON object and exit:\n"
    "                     0 accepted, 1 rejected (docs/bindings/rmem-carveout.yaml,\n"
    "                     docs/bindings/rmem-initiator.yaml)\n"
    "  --config FILE      the guests to serve and their heaps (TOML,\n"
    "                     docs/rmemd.md; example docs/rmemd.example.toml)\n"
    "  --check-config     check the configuration against the firmware and\n"
    "                     exit: 0 it fits, 1 it does not\n"
    "  --memory DEVICE    where carve-out pages are reached (default\n"
    "                     /dev/rmem-carveout, host_driver/rmem_carveout);\n"
    "                     'standin': memfds, ordinary host memory (tests only)\n"
    "  --state FILE       where every request is recorded before the guest sees\n"
    "                     its reply (SQLite, docs/reliability.md); a restarted\n"
    "                     rmemd continues from it. Default /run/rmemd/state.db\n"
    "                     (/run/rmemd is created, mode 0700)\n"
    "  --no-state         keep the state in memory only: a restart forgets every\n"
    "                     buffer (and scrubs it)\n"
    "  --reset-state      discard the recorded state and start empty (every\n"
    "                     carve-out page is scrubbed); also the way out when rmemd\n"
    "                     refuses a state file that is damaged or from a newer rmemd\n"
    "  --reconnect-grace SECONDS\n"
    "                     after a restart, how long a VM that holds buffers has for\n"
    "                     its VMM to reconnect before it is torn down (default 30)\n"
    "  --help             this text\n"
    "\n"
    "Otherwise rmemd lists the carve-outs and initiators; with --config it\n"
    "lists the guests and heaps and serves each guest a virtio-rmem device on\n"
    "its vhost-user socket until SIGTERM or SIGINT (exit 0), or refuses to\n"
    "start (exit 1) naming what is wrong. Exit 2: a usage error or a file that\n"
    "cannot be read. SIGUSR1 prints what each bus firewall lets every id do\n"
    "on the carve-outs, read from its registers.\n";

int Usage(const std::string& why) {
  std::fprintf(stderr, "rmemd: %s (see --help)\n", why.c_str());
  return kUsage;
}

const char* MaxAccessName(Access a) {
  switch (a) {
    case Access::kRead: return "read";
    case Access::kWrite: return "write";
    case Access::kReadWrite: return "read-write";
    case Access::kNone: break;
  }
  return "none";
}

void PrintPlatform(const FirmwareSource& source, const firmware_handoff::Platform& platform) {
  const size_t n = platform.carveouts.size();
  std::printf("rmemd: %zu carve-out%s from %s\n", n, n == 1 ? "" : "s", Describe(source).c_str());
  std::printf("  %-18s %-12s %-16s %-6s %s\n", "base", "size", "use-case", "no-map", "firewall");
  for (const firmware_handoff::HandoffCarveout& c : platform.carveouts) {
    const std::string firewall =
        c.firewall ? absl::StrFormat("%s #%u", c.firewall->node, c.firewall->index) : "-";
    std::printf("  %-18s %-12s %-16s %-6s %s\n", c.base.ToString().c_str(),
                absl::StrFormat("%u MiB", c.size >> 20).c_str(), c.use_case.c_str(),
                c.no_map ? "yes" : "no", firewall.c_str());
  }
  const size_t m = platform.initiators.size();
  std::printf("rmemd: %zu device initiator%s\n", m, m == 1 ? "" : "s");
  if (m == 0) return;
  std::printf("  %-32s %-14s %-10s %s\n", "device", "owner-vm", "max", "firewall id");
  for (const firmware_handoff::HandoffInitiator& i : platform.initiators) {
    std::vector<std::string> ids;
    for (const firmware_handoff::FirewallRef& f : i.firewalls) {
      ids.push_back(absl::StrFormat("%s #%u", f.node, f.index));
    }
    std::printf("  %-32s %-14s %-10s %s\n", i.node.c_str(), i.owner_vm.c_str(),
                MaxAccessName(i.max_access), absl::StrJoin(ids, ", ").c_str());
  }
}

void PrintSetup(const RmemdConfig& config, const BrokerSetup& setup) {
  std::printf("rmemd: %zu guest%s from %s\n", setup.guests.size(),
              setup.guests.size() == 1 ? "" : "s", config.source.c_str());
  std::printf("  %-14s %-6s %-12s %-12s %s\n", "vm", "id", "quota", "region", "vhost-user socket");
  auto mib = [](uint64_t bytes) {
    return bytes == kUnlimited ? std::string("unlimited") : absl::StrFormat("%u MiB", bytes >> 20);
  };
  for (const GuestConfig& g : setup.guests) {
    std::printf("  %-14s %-6u %-12s %-12s %s\n", g.name.c_str(), g.id.value(),
                mib(g.quota_bytes).c_str(), mib(g.region_bytes).c_str(), g.socket.c_str());
  }
  std::printf("rmemd: %zu heap%s\n", setup.policy.heaps.size(),
              setup.policy.heaps.size() == 1 ? "" : "s");
  for (const HeapConfig& h : setup.policy.heaps) {
    std::vector<std::string> who;
    for (const HeapAccess& a : h.access) {
      const VmConfig* vm = nullptr;
      for (const VmConfig& v : setup.policy.vms) {
        if (v.id == a.vm) vm = &v;
      }
      who.push_back(absl::StrCat(vm != nullptr ? vm->name : "?", a.may_allocate ? " (allocates) " : " ",
                                 a.max_rights.ToString()));
    }
    std::printf("  %-14s on %s%s: %s\n", h.name.c_str(), absl::StrJoin(h.carveouts, ", ").c_str(),
                h.cpu_map_allowed ? "" : " (device-only)", absl::StrJoin(who, "; ").c_str());
  }
}

// Serves the guests until SIGTERM or SIGINT: exit 0 after an orderly stop
// (every connection ended, every VM torn down), 1 if it cannot start.
struct StateChoice {
  std::string path = "/run/rmemd/state.db";  // "" : --no-state
  bool reset = false;
  absl::Duration reconnect_grace = absl::Seconds(30);
};

constexpr char kDefaultStateDir[] = "/run/rmemd";

absl::StatusOr<std::unique_ptr<StateStore>> OpenState(const StateChoice& choice) {
  if (choice.path.empty()) return std::unique_ptr<StateStore>();
  if (choice.path.rfind(std::string(kDefaultStateDir) + "/", 0) == 0) {
    // /run itself may be missing in a minimal initramfs.
    for (const char* dir : {"/run", kDefaultStateDir}) {
      if (mkdir(dir, dir == kDefaultStateDir ? 0700 : 0755) != 0 && errno != EEXIST) {
        return absl::UnavailableError(
            absl::StrCat("cannot create ", dir, " for the state: ", std::strerror(errno)));
      }
    }
  }
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store =
      SqliteStateStore::Open(choice.path, SqliteStateStore::Options{.reset = choice.reset});
  if (!store.ok()) return store.status();
  return std::unique_ptr<StateStore>(*std::move(store));
}

int Serve(const firmware_handoff::Platform& platform, const BrokerSetup& setup,
          const std::string& memory_choice, const StateChoice& state_choice) {
  absl::StatusOr<std::unique_ptr<CarveoutMemory>> memory =
      memory_choice == "standin" ? MakeMemfdCarveoutMemory(setup.carveouts)
                                 : OpenDeviceCarveoutMemory(memory_choice, setup.carveouts);
  if (!memory.ok()) {
    std::fprintf(stderr,
                 "rmemd: refusing to start: %s\n(load host_driver/rmem_carveout, or pass "
                 "--memory standin for host memory that is NOT restricted)\n",
                 std::string(memory.status().message()).c_str());
    return kRejected;
  }
  std::printf("rmemd: carve-out memory: %s\n", (*memory)->Describe().c_str());
  absl::StatusOr<std::unique_ptr<PlatformFirewalls>> firewalls =
      PlatformFirewalls::Create(platform, setup);
  if (!firewalls.ok()) {
    std::fprintf(stderr, "rmemd: refusing to start: %s\n",
                 std::string(firewalls.status().message()).c_str());
    return kRejected;
  }
  for (const std::string& line : (*firewalls)->Describe()) {
    std::printf("rmemd: firewall %s\n", line.c_str());
  }
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  if (!loop.ok()) {
    std::fprintf(stderr, "rmemd: %s\n", loop.status().ToString().c_str());
    return kRejected;
  }
  // SIGTERM / SIGINT (stop) and SIGUSR1 (firewall state) arrive on a
  // signalfd the loop watches.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGUSR1);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);
  Fd signals(signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals.valid()) {
    std::fprintf(stderr, "rmemd: signalfd: %s\n", std::strerror(errno));
    return kRejected;
  }
  const PlatformFirewalls* firewall_state = firewalls->get();  // owned by the service
  absl::StatusOr<std::unique_ptr<StateStore>> state = OpenState(state_choice);
  if (!state.ok()) {
    std::fprintf(stderr, "rmemd: refusing to start: %s\n",
                 std::string(state.status().message()).c_str());
    return kRejected;
  }
  const bool persistent = *state != nullptr;
  absl::StatusOr<std::unique_ptr<Service>> service = Service::Start(
      setup, *std::move(memory), *std::move(firewalls),
      Service::Options{.state = *std::move(state),
                       .reconnect_grace = state_choice.reconnect_grace},
      **loop);
  if (!service.ok()) {
    std::fprintf(stderr, "rmemd: refusing to start: %s\n",
                 std::string(service.status().message()).c_str());
    return kRejected;
  }
  if (!persistent) {
    std::printf("rmemd: state: in memory only (--no-state): a restart forgets every buffer\n");
  } else {
    const Broker& broker = (*service)->broker();
    std::printf("rmemd: state: %s%s: %zu buffers, %zu open offers\n", state_choice.path.c_str(),
                state_choice.reset ? " (reset)" : "", broker.ledger().buffer_count(),
                broker.ledger().txn_count());
    if (!(*service)->awaiting().empty()) {
      std::vector<std::string> names;
      for (VmId vm : (*service)->awaiting()) names.push_back(VmName(vm));
      std::printf("rmemd: state: restored; waiting up to %s for the VMMs of %s to reconnect\n",
                  absl::FormatDuration(state_choice.reconnect_grace).c_str(),
                  absl::StrJoin(names, ", ").c_str());
    }
  }
  uint64_t dumps = 0;
  absl::StatusOr<Watch> watch = (*loop)->Add(signals.get(), EPOLLIN, [&](uint32_t) {
    signalfd_siginfo info;
    if (read(signals.get(), &info, sizeof(info)) != sizeof(info)) return;
    if (info.ssi_signo == SIGUSR1) {
      ++dumps;
      std::printf("rmemd: firewall state #%llu, read from the models' registers:\n",
                  static_cast<unsigned long long>(dumps));
      for (const std::string& line : firewall_state->AccessMap()) {
        std::printf("rmemd:   %s\n", line.c_str());
      }
      std::printf("rmemd: firewall state #%llu end\n", static_cast<unsigned long long>(dumps));
      std::fflush(stdout);
      return;
    }
    std::printf("rmemd: %s: stopping\n", strsignal(static_cast<int>(info.ssi_signo)));
    (*loop)->Stop();
  });
  if (!watch.ok()) {
    std::fprintf(stderr, "rmemd: %s\n", watch.status().ToString().c_str());
    return kRejected;
  }
  for (const GuestConfig& g : setup.guests) {
    std::printf("rmemd: serving %s (vm %u) on %s\n", g.name.c_str(), g.id.value(),
                g.socket.c_str());
  }
  std::fflush(stdout);
  if (absl::Status s = (*loop)->Run(); !s.ok()) {
    std::fprintf(stderr, "rmemd: event loop failed: %s\n", s.ToString().c_str());
    return kRejected;
  }
  service->reset();  // ends every connection: each VM is torn down
  std::printf("rmemd: stopped\n");
  return 0;
}

int Main(const std::vector<std::string>& args) {
  FirmwareSource source;
  bool check = false;
  bool check_config = false;
  std::string config_path;
  std::string memory_choice = "/dev/rmem-carveout";
  StateChoice state_choice;
  bool state_given = false, no_state = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsageText, stdout);
      return 0;
    }
    if (a == "--check-firmware") {
      check = true;
    } else if (a == "--check-config") {
      check_config = true;
    } else if (a == "--memory") {
      if (i + 1 >= args.size()) return Usage("--memory needs DEVICE or 'standin'");
      memory_choice = args[++i];
    } else if (a == "--state") {
      if (i + 1 >= args.size() || args[i + 1].empty()) return Usage("--state needs a FILE");
      state_choice.path = args[++i];
      state_given = true;
    } else if (a == "--no-state") {
      no_state = true;
    } else if (a == "--reset-state") {
      state_choice.reset = true;
    } else if (a == "--reconnect-grace") {
      double seconds = 0;
      if (i + 1 >= args.size() || !absl::SimpleAtod(args[i + 1], &seconds) || seconds < 0 ||
          seconds > 86400) {
        return Usage("--reconnect-grace needs SECONDS (0 to 86400)");
      }
      ++i;
      state_choice.reconnect_grace = absl::Seconds(seconds);
    } else if (a == "--config") {
      if (i + 1 >= args.size()) return Usage("--config needs a FILE");
      config_path = args[++i];
    } else if (a == "--fdt" || a == "--transfer-list") {
      if (source.kind != FirmwareSource::Kind::kDefault) {
        return Usage("give one of --fdt and --transfer-list");
      }
      if (i + 1 >= args.size()) return Usage(a + " needs a FILE");
      source.kind =
          a == "--fdt" ? FirmwareSource::Kind::kFdt : FirmwareSource::Kind::kTransferList;
      source.path = args[++i];
    } else {
      return Usage("unknown argument '" + a + "'");
    }
  }
  if (no_state && (state_given || state_choice.reset)) {
    return Usage("--no-state cannot go with --state or --reset-state");
  }
  if (no_state) state_choice.path.clear();
  absl::StatusOr<firmware_handoff::PlatformResult> result = ReadFirmware(source);
  if (!result.ok()) {
    std::fprintf(stderr, "rmemd: %s\n", std::string(result.status().message()).c_str());
    return kUsage;
  }
  if (check) {
    std::printf("%s\n", firmware_handoff::ToJson(*result).c_str());
    return std::holds_alternative<firmware_handoff::HandoffError>(*result) ? kRejected : 0;
  }
  if (const auto* e = std::get_if<firmware_handoff::HandoffError>(&*result)) {
    std::fprintf(stderr, "rmemd: refusing to start: %s: %s: %s\n", Describe(source).c_str(),
                 firmware_handoff::ErrorKindName(e->kind), e->message.c_str());
    return kRejected;
  }
  const firmware_handoff::Platform& platform = std::get<firmware_handoff::Platform>(*result);
  if (check_config && config_path.empty()) return Usage("--check-config needs --config FILE");
  if (!check_config) PrintPlatform(source, platform);
  if (config_path.empty()) {
    std::printf("rmemd: no --config: nothing to serve; exiting\n");
    return 0;
  }
  absl::StatusOr<RmemdConfig> config = LoadConfig(config_path);
  if (!config.ok() && config.status().code() == absl::StatusCode::kNotFound) {
    std::fprintf(stderr, "rmemd: %s\n", std::string(config.status().message()).c_str());
    return kUsage;
  }
  absl::StatusOr<BrokerSetup> setup =
      config.ok() ? MakeBrokerSetup(platform, *config) : config.status();
  if (!setup.ok()) {
    std::fprintf(stderr, "rmemd: refusing to start: %s\n",
                 std::string(setup.status().message()).c_str());
    return kRejected;
  }
  if (check_config) {
    std::printf("rmemd: %s fits %s: %zu guests, %zu heaps\n", config_path.c_str(),
                Describe(source).c_str(), setup->guests.size(), setup->policy.heaps.size());
    return 0;
  }
  PrintSetup(*config, *setup);
  return Serve(platform, *setup, memory_choice, state_choice);
}

}  // namespace
}  // namespace rmem::rmemd

int main(int argc, char** argv) {
  return rmem::rmemd::Main(std::vector<std::string>(argv + 1, argv + argc));
}

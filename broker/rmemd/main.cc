// rmemd, the restricted-memory broker daemon: reads and validates what
// firmware handed over (carve-out contract v1, initiator binding), joins it
// with its configuration, and serves every configured guest a virtio-rmem
// device over vhost-user from one broker (docs/rmemd.md).
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/directories.h"
#include "base/event_loop.h"
#include "base/fd.h"
#include "base/log.h"
#include "broker/rights.h"
#include "broker/rmemd/config.h"
#include "broker/rmemd/control_commands.h"
#include "broker/rmemd/control_server.h"
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
    "              [--reconnect-grace SECONDS] [--control PATH | --no-control]\n"
    "              [--socket-path NAME=PATH]...]\n"
    "             [--log-level error|warn|info|debug]\n"
    "       rmemd --print-capabilities\n"
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
    "  --control PATH     the control socket rmemctl talks to (status, audit):\n"
    "                     overrides [broker] control (default /run/rmemd/control);\n"
    "                     created mode 0600, its directory 0700 if missing; only\n"
    "                     root and rmemd's own user may use it\n"
    "  --no-control       no control socket\n"
    "  --socket-path NAME=PATH\n"
    "                     serve guest NAME (a [[vm]] name) on PATH instead of its\n"
    "                     configured socket; repeatable\n"
    "  --log-level LEVEL  error, warn, info (default) or debug: the least severe\n"
    "                     messages logged (errors and warnings on stderr, the rest\n"
    "                     on stdout; debug adds the control clients and every\n"
    "                     guest request with its status)\n"
    "  --print-capabilities\n"
    "                     print the vhost-user back-end capabilities as JSON\n"
    "                     (QEMU docs/interop/vhost-user.rst, \"Backend program\n"
    "                     conventions\"; type \"rmem\": virtio-rmem has no type\n"
    "                     name there) and exit 0\n"
    "  --help             this text\n"
    "\n"
    "Otherwise rmemd lists the carve-outs and initiators; with --config it\n"
    "lists the guests and heaps and serves each guest a virtio-rmem device on\n"
    "its vhost-user socket until SIGTERM or SIGINT (exit 0), or refuses to\n"
    "start (exit 1) naming what is wrong. Exit 2: a usage error or a file that\n"
    "cannot be read. SIGUSR1 prints what each bus firewall lets every id do\n"
    "on the carve-outs, read from its registers.\n";

// The vhost-user back-end convention's capabilities: virtio-rmem is no type
// of QEMU's vhost-user.json, so the type is ours, with no features defined.
constexpr char kCapabilities[] = "{\"type\": \"rmem\", \"features\": []}\n";

int Usage(const std::string& why) {
  Log(LogLevel::kError, absl::StrCat(why, " (see --help)"));
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

// The listings are one log message each: a line, then a table.
void PrintPlatform(const FirmwareSource& source, const firmware_handoff::Platform& platform) {
  const size_t n = platform.carveouts.size();
  std::string text =
      absl::StrFormat("%zu carve-out%s from %s\n", n, n == 1 ? "" : "s", Describe(source));
  absl::StrAppendFormat(&text, "  %-18s %-12s %-16s %-6s %s", "base", "size", "use-case", "no-map",
                        "firewall");
  for (const firmware_handoff::HandoffCarveout& c : platform.carveouts) {
    const std::string firewall =
        c.firewall ? absl::StrFormat("%s #%u", c.firewall->node, c.firewall->index) : "-";
    absl::StrAppendFormat(&text, "\n  %-18s %-12s %-16s %-6s %s", c.base.ToString(),
                          absl::StrFormat("%u MiB", c.size >> 20), c.use_case,
                          c.no_map ? "yes" : "no", firewall);
  }
  Log(LogLevel::kInfo, text);
  const size_t m = platform.initiators.size();
  text = absl::StrFormat("%zu device initiator%s", m, m == 1 ? "" : "s");
  if (m > 0) {
    absl::StrAppendFormat(&text, "\n  %-32s %-14s %-10s %s", "device", "owner-vm", "max",
                          "firewall id");
  }
  for (const firmware_handoff::HandoffInitiator& i : platform.initiators) {
    std::vector<std::string> ids;
    for (const firmware_handoff::FirewallRef& f : i.firewalls) {
      ids.push_back(absl::StrFormat("%s #%u", f.node, f.index));
    }
    absl::StrAppendFormat(&text, "\n  %-32s %-14s %-10s %s", i.node, i.owner_vm,
                          MaxAccessName(i.max_access), absl::StrJoin(ids, ", "));
  }
  Log(LogLevel::kInfo, text);
}

void PrintSetup(const RmemdConfig& config, const BrokerSetup& setup) {
  std::string text = absl::StrFormat("%zu guest%s from %s\n", setup.guests.size(),
                                     setup.guests.size() == 1 ? "" : "s", config.source);
  absl::StrAppendFormat(&text, "  %-14s %-6s %-12s %-12s %s", "vm", "id", "quota", "region",
                        "vhost-user socket");
  auto mib = [](uint64_t bytes) {
    return bytes == kUnlimited ? std::string("unlimited") : absl::StrFormat("%u MiB", bytes >> 20);
  };
  for (const GuestConfig& g : setup.guests) {
    absl::StrAppendFormat(&text, "\n  %-14s %-6u %-12s %-12s %s", g.name, g.id.value(),
                          mib(g.quota_bytes), mib(g.region_bytes), g.socket);
  }
  Log(LogLevel::kInfo, text);
  text = absl::StrFormat("%zu heap%s", setup.policy.heaps.size(),
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
    absl::StrAppendFormat(&text, "\n  %-14s on %s%s: %s", h.name, absl::StrJoin(h.carveouts, ", "),
                          h.cpu_map_allowed ? "" : " (device-only)", absl::StrJoin(who, "; "));
  }
  Log(LogLevel::kInfo, text);
}

struct StateChoice {
  std::string path = "/run/rmemd/state.db";  // "" : --no-state
  bool reset = false;
  absl::Duration reconnect_grace = absl::Seconds(30);
};

constexpr char kDefaultStateDir[] = "/run/rmemd";

absl::StatusOr<std::unique_ptr<StateStore>> OpenState(const StateChoice& choice) {
  if (choice.path.empty()) return std::unique_ptr<StateStore>();
  if (choice.path.rfind(std::string(kDefaultStateDir) + "/", 0) == 0) {
    if (absl::Status s = MakeParentDirectories(choice.path, 0700); !s.ok()) {
      return absl::UnavailableError(absl::StrCat(s.message(), " for the state"));
    }
  }
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store =
      SqliteStateStore::Open(choice.path, SqliteStateStore::Options{.reset = choice.reset});
  if (!store.ok()) return store.status();
  return std::unique_ptr<StateStore>(*std::move(store));
}

void RefuseToStart(const absl::Status& why) {
  Log(LogLevel::kError, absl::StrCat("refusing to start: ", why.message()));
}

// Serves the guests until SIGTERM or SIGINT: exit 0 after an orderly stop
// (every connection ended, every VM torn down), 1 if it cannot start.
// `control`: the control socket's path ("": none).
int Serve(const firmware_handoff::Platform& platform, const BrokerSetup& setup,
          const std::string& memory_choice, const StateChoice& state_choice,
          const std::string& control) {
  absl::StatusOr<std::unique_ptr<CarveoutMemory>> memory =
      memory_choice == "standin" ? MakeMemfdCarveoutMemory(setup.carveouts)
                                 : OpenDeviceCarveoutMemory(memory_choice, setup.carveouts);
  if (!memory.ok()) {
    RefuseToStart(absl::Status(
        memory.status().code(),
        absl::StrCat(memory.status().message(),
                     "\n(load host_driver/rmem_carveout, or pass --memory standin for host "
                     "memory that is NOT restricted)")));
    return kRejected;
  }
  Log(LogLevel::kInfo, absl::StrCat("carve-out memory: ", (*memory)->Describe()));
  absl::StatusOr<std::unique_ptr<PlatformFirewalls>> firewalls =
      PlatformFirewalls::Create(platform, setup);
  if (!firewalls.ok()) {
    RefuseToStart(firewalls.status());
    return kRejected;
  }
  for (const std::string& line : (*firewalls)->Describe()) {
    Log(LogLevel::kInfo, absl::StrCat("firewall ", line));
  }
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  if (!loop.ok()) {
    Log(LogLevel::kError, loop.status().ToString());
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
    Log(LogLevel::kError, absl::StrCat("signalfd: ", std::strerror(errno)));
    return kRejected;
  }
  absl::StatusOr<std::unique_ptr<StateStore>> state = OpenState(state_choice);
  if (!state.ok()) {
    RefuseToStart(state.status());
    return kRejected;
  }
  const bool persistent = *state != nullptr;
  absl::StatusOr<std::unique_ptr<Service>> service =
      Service::Start(setup, *std::move(memory), *std::move(firewalls),
                     Service::Options{.state = *std::move(state),
                                      .state_path = state_choice.path,
                                      .reconnect_grace = state_choice.reconnect_grace},
                     **loop);
  if (!service.ok()) {
    RefuseToStart(service.status());
    return kRejected;
  }
  if (!persistent) {
    Log(LogLevel::kInfo, "state: in memory only (--no-state): a restart forgets every buffer");
  } else {
    const Broker& broker = (*service)->broker();
    Log(LogLevel::kInfo,
        absl::StrFormat("state: %s%s: %zu buffers, %zu open offers", state_choice.path,
                        state_choice.reset ? " (reset)" : "", broker.ledger().buffer_count(),
                        broker.ledger().txn_count()));
    if (!(*service)->awaiting().empty()) {
      std::vector<std::string> names;
      for (VmId vm : (*service)->awaiting()) names.push_back(VmName(vm));
      Log(LogLevel::kInfo,
          absl::StrCat("state: restored; waiting up to ",
                       absl::FormatDuration(state_choice.reconnect_grace), " for the VMMs of ",
                       absl::StrJoin(names, ", "), " to reconnect"));
    }
  }
  const Service* running = service->get();
  std::unique_ptr<ControlServer> control_server;
  if (!control.empty()) {
    absl::StatusOr<std::unique_ptr<ControlServer>> started = ControlServer::Start(
        **loop, control,
        [running](const Json& request) { return AnswerControlRequest(*running, request); });
    if (!started.ok()) {
      RefuseToStart(started.status());
      return kRejected;
    }
    control_server = *std::move(started);
  }
  uint64_t dumps = 0;
  absl::StatusOr<Watch> watch = (*loop)->Add(signals.get(), EPOLLIN, [&](uint32_t) {
    signalfd_siginfo info;
    if (read(signals.get(), &info, sizeof(info)) != sizeof(info)) return;
    if (info.ssi_signo == SIGUSR1) {
      ++dumps;
      Log(LogLevel::kInfo,
          absl::StrCat("firewall state #", dumps, ", read from the models' registers:"));
      for (const std::string& line : running->firewalls().AccessMap()) {
        Log(LogLevel::kInfo, absl::StrCat("  ", line));
      }
      Log(LogLevel::kInfo, absl::StrCat("firewall state #", dumps, " end"));
      return;
    }
    Log(LogLevel::kInfo, absl::StrCat(strsignal(static_cast<int>(info.ssi_signo)), ": stopping"));
    (*loop)->Stop();
  });
  if (!watch.ok()) {
    Log(LogLevel::kError, watch.status().ToString());
    return kRejected;
  }
  for (const GuestConfig& g : setup.guests) {
    Log(LogLevel::kInfo,
        absl::StrFormat("serving %s (vm %u) on %s", g.name, g.id.value(), g.socket));
  }
  if (control_server != nullptr) {
    Log(LogLevel::kInfo, absl::StrCat("control socket: ", control));
  }
  if (absl::Status s = (*loop)->Run(); !s.ok()) {
    Log(LogLevel::kError, absl::StrCat("event loop failed: ", s.ToString()));
    return kRejected;
  }
  control_server.reset();
  service->reset();  // ends every connection: each VM is torn down
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

// "NAME=PATH" of --socket-path.
bool SplitSocketPath(const std::string& arg, std::string* name, std::string* path) {
  const size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size()) return false;
  *name = arg.substr(0, eq);
  *path = arg.substr(eq + 1);
  return true;
}

int Main(const std::vector<std::string>& args) {
  FirmwareSource source;
  bool check = false;
  bool check_config = false;
  std::string config_path;
  std::string memory_choice = "/dev/rmem-carveout";
  StateChoice state_choice;
  bool state_given = false, no_state = false;
  std::optional<std::string> control;  // --control
  bool no_control = false;
  std::vector<std::pair<std::string, std::string>> socket_paths;  // --socket-path
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsageText, stdout);
      return 0;
    }
    if (a == "--print-capabilities") {
      std::fputs(kCapabilities, stdout);
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
    } else if (a == "--control") {
      if (i + 1 >= args.size() || args[i + 1].empty()) return Usage("--control needs a PATH");
      control = args[++i];
    } else if (a == "--no-control") {
      no_control = true;
    } else if (a == "--socket-path") {
      std::string name, path;
      if (i + 1 >= args.size() || !SplitSocketPath(args[i + 1], &name, &path)) {
        return Usage(
            absl::StrCat("--socket-path needs NAME=PATH (a [[vm]] name and a socket), not '",
                         i + 1 < args.size() ? args[i + 1] : "", "'"));
      }
      ++i;
      socket_paths.emplace_back(name, path);
    } else if (a == "--log-level") {
      const std::optional<LogLevel> level =
          i + 1 < args.size() ? ParseLogLevel(args[i + 1]) : std::nullopt;
      if (!level) return Usage("--log-level needs error, warn, info or debug");
      ++i;
      SetLogLevel(*level);
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
  if (no_control && control) return Usage("--no-control cannot go with --control");
  if (no_state) state_choice.path.clear();
  if (config_path.empty() && !socket_paths.empty()) {
    return Usage("--socket-path needs --config FILE");
  }
  absl::StatusOr<firmware_handoff::PlatformResult> result = ReadFirmware(source);
  if (!result.ok()) {
    Log(LogLevel::kError, std::string(result.status().message()));
    return kUsage;
  }
  if (check) {
    std::printf("%s\n", firmware_handoff::ToJson(*result).c_str());
    return std::holds_alternative<firmware_handoff::HandoffError>(*result) ? kRejected : 0;
  }
  if (const auto* e = std::get_if<firmware_handoff::HandoffError>(&*result)) {
    Log(LogLevel::kError, absl::StrCat("refusing to start: ", Describe(source), ": ",
                                       firmware_handoff::ErrorKindName(e->kind), ": ", e->message));
    return kRejected;
  }
  const firmware_handoff::Platform& platform = std::get<firmware_handoff::Platform>(*result);
  if (check_config && config_path.empty()) return Usage("--check-config needs --config FILE");
  if (!check_config) PrintPlatform(source, platform);
  if (config_path.empty()) {
    Log(LogLevel::kInfo, "no --config: nothing to serve; exiting");
    return 0;
  }
  absl::StatusOr<RmemdConfig> config = LoadConfig(config_path);
  if (!config.ok() && config.status().code() == absl::StatusCode::kNotFound) {
    Log(LogLevel::kError, std::string(config.status().message()));
    return kUsage;
  }
  if (config.ok()) {
    for (const std::pair<std::string, std::string>& moved : socket_paths) {
      const std::string& name = moved.first;
      const std::string& path = moved.second;
      auto it = std::find_if(config->guests.begin(), config->guests.end(),
                             [&](const GuestConfig& g) { return g.name == name; });
      if (it == config->guests.end()) {
        std::vector<std::string> names;
        for (const GuestConfig& g : config->guests) names.push_back(g.name);
        return Usage(absl::StrCat("--socket-path ", name, "=", path, ": ", config_path,
                                  " has no [[vm]] named '", name,
                                  "' (it has: ", absl::StrJoin(names, ", "), ")"));
      }
      it->socket = path;
    }
    if (control) config->control = *control;
    if (no_control) config->control.clear();
    for (const GuestConfig& g : config->guests) {
      const bool twice =
          std::count_if(config->guests.begin(), config->guests.end(),
                        [&](const GuestConfig& o) { return o.socket == g.socket; }) > 1;
      if (twice || g.socket == config->control) {
        return Usage(absl::StrCat("the socket of guest ", g.name, ", ", g.socket,
                                  ", is also the socket of ",
                                  twice ? "another guest" : "the control socket"));
      }
    }
  }
  absl::StatusOr<BrokerSetup> setup =
      config.ok() ? MakeBrokerSetup(platform, *config) : config.status();
  if (!setup.ok()) {
    RefuseToStart(setup.status());
    return kRejected;
  }
  if (check_config) {
    Log(LogLevel::kInfo,
        absl::StrFormat("%s fits %s: %zu guests, %zu heaps", config_path, Describe(source),
                        setup->guests.size(), setup->policy.heaps.size()));
    return 0;
  }
  PrintSetup(*config, *setup);
  return Serve(platform, *setup, memory_choice, state_choice, config->control);
}

}  // namespace
}  // namespace rmem::rmemd

int main(int argc, char** argv) {
  return rmem::rmemd::Main(std::vector<std::string>(argv + 1, argv + argc));
}

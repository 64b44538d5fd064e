// rmemctl: looks at a running (or stopped) rmemd. `audit` reads the audit
// log from rmemd's state database (read-only, beside the running rmemd):
// every grant, revoke and offer, who asked, which range, which rights,
// when. (Live state over rmemd's control socket comes with `status`.)
#include <time.h>

#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "broker/state/sqlite_state_store.h"

namespace rmem::rmemctl {
namespace {

constexpr int kFailed = 1;
constexpr int kUsage = 2;

constexpr char kUsageText[] =
    "usage: rmemctl [--state FILE] audit [--after SEQ] [--limit N] [--json]\n"
    "\n"
    "  audit            the audit log of rmemd's state database: every grant,\n"
    "                   revoke and offer (oldest first): sequence number, time\n"
    "                   (UTC), request, action, the VM whose request it was, the\n"
    "                   VM whose access changed, buffer, handle, host physical\n"
    "                   range, rights\n"
    "  --state FILE     rmemd's state database (default /run/rmemd/state.db)\n"
    "  --after SEQ      only entries after this sequence number\n"
    "  --limit N        at most N entries (default: all)\n"
    "  --json           one JSON array instead of a table\n"
    "  --help           this text\n"
    "\n"
    "Exit 0; 1 when the database cannot be read; 2 for a usage error.\n";

int Usage(const std::string& why) {
  std::fprintf(stderr, "rmemctl: %s (see --help)\n", why.c_str());
  return kUsage;
}

std::string Utc(int64_t ns) {
  const time_t s = static_cast<time_t>(ns / 1'000'000'000);
  tm t{};
  gmtime_r(&s, &t);
  char out[32];
  strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%S", &t);
  return absl::StrFormat("%s.%06dZ", out, static_cast<int>((ns % 1'000'000'000) / 1000));
}

std::string OrDash(uint64_t v) { return v == 0 ? "-" : Hex(v); }

int Audit(const std::string& path, uint64_t after, size_t limit, bool json) {
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::OpenReadOnly(path);
  if (!store.ok()) {
    std::fprintf(stderr, "rmemctl: %s\n", std::string(store.status().message()).c_str());
    return kFailed;
  }
  absl::StatusOr<std::vector<AuditEntry>> entries = (*store)->ReadAudit(after, limit);
  if (!entries.ok()) {
    std::fprintf(stderr, "rmemctl: %s\n", std::string(entries.status().message()).c_str());
    return kFailed;
  }
  if (json) {
    std::printf("[");
    for (size_t i = 0; i < entries->size(); ++i) {
      const AuditEntry& e = (*entries)[i];
      std::printf(
          "%s\n  {\"seq\": %" PRIu64 ", \"time\": \"%s\", \"time_ns\": %" PRId64
          ", \"op\": \"%s\", \"action\": \"%s\", \"actor_vm\": %u, \"vm\": %u, \"buffer\": %" PRIu64
          ", \"handle\": %" PRIu64 ", \"base\": %" PRIu64 ", \"size\": %" PRIu64
          ", \"rights\": \"%s\"}",
          i == 0 ? "" : ",", e.seq, Utc(e.time_ns).c_str(), e.time_ns, e.op.c_str(),
          AuditActionName(e.action), e.actor.value(), e.vm.value(), e.buffer.value(),
          e.handle.value(), e.pages.base().value(), e.pages.size_bytes(),
          e.rights.ToString().c_str());
    }
    std::printf("%s]\n", entries->empty() ? "" : "\n");
    return 0;
  }
  std::printf("%-8s %-27s %-15s %-7s %-6s %-6s %-20s %-20s %-31s %s\n", "seq", "time (UTC)",
              "request", "action", "by", "vm", "buffer", "handle", "range", "rights");
  for (const AuditEntry& e : *entries) {
    std::printf("%-8" PRIu64 " %-27s %-15s %-7s %-6u %-6u %-20s %-20s %-31s %s\n", e.seq,
                Utc(e.time_ns).c_str(), e.op.c_str(), AuditActionName(e.action), e.actor.value(),
                e.vm.value(), OrDash(e.buffer.value()).c_str(), OrDash(e.handle.value()).c_str(),
                e.pages.ToString().c_str(), e.rights.ToString().c_str());
  }
  std::printf("rmemctl: %zu entr%s from %s\n", entries->size(),
              entries->size() == 1 ? "y" : "ies", path.c_str());
  return 0;
}

int Main(const std::vector<std::string>& args) {
  std::string state = "/run/rmemd/state.db";
  std::string command;
  uint64_t after = 0, limit = UINT64_MAX;
  bool json = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* what) -> const std::string* {
      if (i + 1 >= args.size()) return nullptr;
      (void)what;
      return &args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsageText, stdout);
      return 0;
    } else if (a == "--state") {
      const std::string* v = value("FILE");
      if (v == nullptr) return Usage("--state needs a FILE");
      state = *v;
    } else if (a == "--after" || a == "--limit") {
      const std::string* v = value("N");
      uint64_t n = 0;
      if (v == nullptr || !absl::SimpleAtoi(*v, &n)) return Usage(a + " needs a number");
      (a == "--after" ? after : limit) = n;
    } else if (a == "--json") {
      json = true;
    } else if (a.rfind("-", 0) == 0) {
      return Usage("unknown option '" + a + "'");
    } else if (command.empty()) {
      command = a;
    } else {
      return Usage("unexpected argument '" + a + "'");
    }
  }
  if (command.empty()) return Usage("no command");
  if (command == "audit") {
    return Audit(state, after, limit > SIZE_MAX ? SIZE_MAX : static_cast<size_t>(limit), json);
  }
  return Usage("unknown command '" + command + "'");
}

}  // namespace
}  // namespace rmem::rmemctl

int main(int argc, char** argv) {
  return rmem::rmemctl::Main(std::vector<std::string>(argv + 1, argv + argc));
}

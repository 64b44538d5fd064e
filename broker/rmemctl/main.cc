// rmemctl: looks at a running (or stopped) rmemd. Through rmemd's control
// socket (broker/rmemd/control_protocol.h): `status`, everything rmemd
// holds now, and `audit`, its audit log. With --state FILE, `audit` reads
// the log from rmemd's state database instead (read-only; also while
// rmemd is down).
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "broker/rmemctl/control_client.h"
#include "broker/rmemctl/tables.h"
#include "broker/rmemd/control_protocol.h"
#include "broker/state/sqlite_state_store.h"

namespace rmem::rmemctl {
namespace {

using rmemd::Json;

constexpr int kFailed = 1;
constexpr int kUsage = 2;

constexpr char kUsageText[] =
    "usage: rmemctl [--control PATH] [--timeout SECONDS] status [--json]\n"
    "       rmemctl [--control PATH] [--timeout SECONDS] audit [--after SEQ] [--limit N]\n"
    "               [--json]\n"
    "       rmemctl --state FILE audit [--after SEQ] [--limit N] [--json]\n"
    "\n"
    "  status           what rmemd holds now: carve-outs, pools, heaps, guests (is\n"
    "                   their VMM connected, quota, bytes owned, mappings, requests),\n"
    "                   buffers, open offers, grants, what the bus firewalls let\n"
    "                   every id do (read from their registers), counters\n"
    "  audit            the audit log: every grant, revoke and offer (oldest\n"
    "                   first): sequence number, time (UTC), request, action, the\n"
    "                   VM whose request it was, the VM whose access changed,\n"
    "                   buffer, handle, host physical range, rights\n"
    "  --control PATH   rmemd's control socket (default /run/rmemd/control)\n"
    "  --state FILE     audit only: read rmemd's state database directly instead\n"
    "                   (read-only, also while rmemd is down)\n"
    "  --timeout SECONDS\n"
    "                   how long to wait for rmemd's answer (default 5)\n"
    "  --after SEQ      audit: only entries after this sequence number\n"
    "  --limit N        audit: at most N entries (default: all)\n"
    "  --json           print the JSON rmemd answered instead of tables: for\n"
    "                   status its status document, for audit the entries as\n"
    "                   one array\n"
    "  --help           this text\n"
    "\n"
    "Exit 0; 1 when rmemd cannot be asked (no socket, permission denied, no\n"
    "answer within the timeout), refuses (its error is printed) or the\n"
    "database cannot be read; 2 for a usage error.\n";

int Usage(const std::string& why) {
  std::fprintf(stderr, "rmemctl: %s (see --help)\n", why.c_str());
  return kUsage;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "rmemctl: %s\n", std::string(status.message()).c_str());
  return kFailed;
}

struct Choice {
  std::string control = rmemd::kDefaultControlPath;
  std::string state;  // --state: audit from the database
  absl::Duration timeout = absl::Seconds(5);
  uint64_t after = 0;
  uint64_t limit = UINT64_MAX;
  bool json = false;
};

// The audit entries as one JSON array, one entry per line.
void PrintAuditJson(const Json& entries) {
  std::string out = "[";
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string line = rmemd::ToLine(entries[i]);
    line.pop_back();
    absl::StrAppend(&out, i == 0 ? "" : ",", "\n  ", line);
  }
  absl::StrAppend(&out, entries.empty() ? "" : "\n", "]\n");
  std::fputs(out.c_str(), stdout);
}

int PrintAudit(const Json& entries, const std::string& from, bool json) {
  if (json) {
    PrintAuditJson(entries);
    return 0;
  }
  std::fputs(AuditTable(entries).c_str(), stdout);
  std::printf("rmemctl: %zu entr%s from %s\n", entries.size(), entries.size() == 1 ? "y" : "ies",
              from.c_str());
  return 0;
}

int AuditFromDatabase(const Choice& c) {
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::OpenReadOnly(c.state);
  if (!store.ok()) return Fail(store.status());
  absl::StatusOr<std::vector<AuditEntry>> entries =
      (*store)->ReadAudit(c.after, c.limit > SIZE_MAX ? SIZE_MAX : static_cast<size_t>(c.limit));
  if (!entries.ok()) return Fail(entries.status());
  Json list = Json::array();
  for (const AuditEntry& e : *entries) list.push_back(rmemd::AuditEntryJson(e));
  return PrintAudit(list, c.state, c.json);
}

// Pages through rmemd's audit log: kMaxAuditEntries per answer.
int AuditFromRmemd(const Choice& c) {
  absl::StatusOr<ControlClient> client = ControlClient::Connect(c.control, c.timeout);
  if (!client.ok()) return Fail(client.status());
  Json entries = Json::array();
  uint64_t after = c.after;
  while (entries.size() < c.limit) {
    const uint64_t want = std::min<uint64_t>(c.limit - entries.size(), rmemd::kMaxAuditEntries);
    absl::StatusOr<Json> answer =
        client->Ask({{"command", "audit"}, {"after", after}, {"limit", want}});
    if (!answer.ok()) return Fail(answer.status());
    const auto page = answer->find("entries");
    const auto more = answer->find("more");
    if (page == answer->end() || !page->is_array() || more == answer->end() ||
        !more->is_boolean()) {
      return Fail(absl::DataLossError("rmemd's audit answer has no \"entries\" and \"more\""));
    }
    for (const Json& e : *page) {
      const auto seq = e.is_object() ? e.find("seq") : e.end();
      if (seq == e.end() || !seq->is_number_unsigned() || seq->get<uint64_t>() <= after) {
        return Fail(absl::DataLossError("rmemd's audit entries are not in sequence"));
      }
      after = seq->get<uint64_t>();
      entries.push_back(e);
    }
    if (!more->get<bool>() || page->empty()) break;
  }
  return PrintAudit(entries, absl::StrCat("rmemd (", c.control, ")"), c.json);
}

int Status(const Choice& c) {
  absl::StatusOr<ControlClient> client = ControlClient::Connect(c.control, c.timeout);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<Json> answer = client->Ask({{"command", "status"}});
  if (!answer.ok()) return Fail(answer.status());
  const auto status = answer->find("status");
  if (status == answer->end() || !status->is_object()) {
    return Fail(absl::DataLossError("rmemd's status answer has no \"status\" object"));
  }
  if (c.json) {
    std::printf("%s\n", status->dump(2, ' ', false, Json::error_handler_t::replace).c_str());
  } else {
    std::fputs(StatusTable(*status).c_str(), stdout);
  }
  return 0;
}

int Main(const std::vector<std::string>& args) {
  Choice c;
  std::string command;
  bool control_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string* {
      if (i + 1 >= args.size() || args[i + 1].empty()) return nullptr;
      return &args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsageText, stdout);
      return 0;
    } else if (a == "--control") {
      const std::string* v = value();
      if (v == nullptr) return Usage("--control needs a PATH");
      c.control = *v;
      control_given = true;
    } else if (a == "--state") {
      const std::string* v = value();
      if (v == nullptr) return Usage("--state needs a FILE");
      c.state = *v;
    } else if (a == "--timeout") {
      const std::string* v = value();
      double seconds = 0;
      if (v == nullptr || !absl::SimpleAtod(*v, &seconds) || !(seconds > 0) || seconds > 3600) {
        return Usage("--timeout needs SECONDS (more than 0, at most 3600)");
      }
      c.timeout = absl::Seconds(seconds);
    } else if (a == "--after" || a == "--limit") {
      const std::string* v = value();
      uint64_t n = 0;
      if (v == nullptr || !absl::SimpleAtoi(*v, &n)) return Usage(a + " needs a number");
      (a == "--after" ? c.after : c.limit) = n;
    } else if (a == "--json") {
      c.json = true;
    } else if (a.rfind("-", 0) == 0) {
      return Usage("unknown option '" + a + "'");
    } else if (command.empty()) {
      command = a;
    } else {
      return Usage("unexpected argument '" + a + "'");
    }
  }
  if (command.empty()) return Usage("no command (status or audit)");
  if (!c.state.empty() && control_given) {
    return Usage("give one of --control (ask rmemd) and --state (read its database)");
  }
  if (command == "audit") {
    if (c.limit == 0) return Usage("--limit needs a number above 0");
    return c.state.empty() ? AuditFromRmemd(c) : AuditFromDatabase(c);
  }
  if (command == "status") {
    if (c.after != 0 || c.limit != UINT64_MAX) return Usage("--after and --limit are for audit");
    if (!c.state.empty()) {
      return Usage("status comes from the running rmemd, not its database: drop --state");
    }
    return Status(c);
  }
  return Usage("unknown command '" + command + "' (status or audit)");
}

}  // namespace
}  // namespace rmem::rmemctl

int main(int argc, char** argv) {
  return rmem::rmemctl::Main(std::vector<std::string>(argv + 1, argv + argc));
}

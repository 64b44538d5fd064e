#include "broker/rmemd/control_commands.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/rmemd/status.h"

namespace rmem::rmemd {
namespace {

constexpr char kCommands[] = "status, audit";

// An error naming the first field of `request` not in `known`.
std::optional<Json> UnknownField(const Json& request, const std::string& command,
                                 const std::vector<std::string>& known) {
  for (const auto& [key, value] : request.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      return ErrorAnswer(absl::StrCat("unknown field '", key, "' for command ", command,
                                      " (known: ", absl::StrJoin(known, ", "), ")"));
    }
  }
  return std::nullopt;
}

// The unsigned integer field `key` in [lo, hi], or `fallback` when absent.
std::variant<uint64_t, Json> Unsigned(const Json& request, const char* key, uint64_t lo,
                                      uint64_t hi, uint64_t fallback) {
  const auto it = request.find(key);
  if (it == request.end()) return fallback;
  if (!it->is_number_unsigned() || it->get<uint64_t>() < lo || it->get<uint64_t>() > hi) {
    // A number is shown; anything else by its type (a value may nest deep).
    return ErrorAnswer(absl::StrCat("'", key, "' must be an integer from ", lo, " to ", hi,
                                    ", not ", it->is_number() ? it->dump() : it->type_name()));
  }
  return it->get<uint64_t>();
}

Json Audit(const Service& service, const Json& request) {
  if (std::optional<Json> e = UnknownField(request, "audit", {"command", "after", "limit"})) {
    return *e;
  }
  const std::variant<uint64_t, Json> after = Unsigned(request, "after", 0, UINT64_MAX, 0);
  if (const Json* e = std::get_if<Json>(&after)) return *e;
  const std::variant<uint64_t, Json> limit =
      Unsigned(request, "limit", 1, kMaxAuditEntries, kMaxAuditEntries);
  if (const Json* e = std::get_if<Json>(&limit)) return *e;
  if (service.state() == nullptr) {
    return ErrorAnswer("rmemd runs with --no-state: it keeps no audit log");
  }
  const uint64_t n = std::get<uint64_t>(limit);
  // One more than asked: whether there are more to come.
  absl::StatusOr<std::vector<AuditEntry>> entries =
      service.state()->ReadAudit(std::get<uint64_t>(after), static_cast<size_t>(n + 1));
  if (!entries.ok()) {
    return ErrorAnswer(absl::StrCat("cannot read the audit log: ", entries.status().message()));
  }
  const bool more = entries->size() > n;
  if (more) entries->pop_back();
  Json list = Json::array();
  for (const AuditEntry& e : *entries) list.push_back(AuditEntryJson(e));
  return {{"ok", true}, {"entries", std::move(list)}, {"more", more}};
}

}  // namespace

Json AnswerControlRequest(const Service& service, const Json& request) {
  if (!request.is_object()) {
    return ErrorAnswer("a request must be a JSON object such as {\"command\":\"status\"}");
  }
  const auto command = request.find("command");
  if (command == request.end() || !command->is_string()) {
    return ErrorAnswer(absl::StrCat("a request needs \"command\": a string (", kCommands, ")"));
  }
  const std::string& name = command->get_ref<const std::string&>();
  if (name == "status") {
    if (std::optional<Json> e = UnknownField(request, "status", {"command"})) return *e;
    return {{"ok", true}, {"status", StatusDocument(service)}};
  }
  if (name == "audit") return Audit(service, request);
  return ErrorAnswer(absl::StrCat("unknown command '", name, "' (known: ", kCommands, ")"));
}

}  // namespace rmem::rmemd

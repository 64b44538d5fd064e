#include "broker/rmemd/control_protocol.h"

#include <time.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"

namespace rmem::rmemd {

Json ErrorAnswer(absl::string_view message) {
  return {{"ok", false}, {"error", std::string(message)}};
}

std::string ToLine(const Json& value) {
  std::string line = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

std::string UtcTime(int64_t ns) {
  const time_t s = static_cast<time_t>(ns / 1'000'000'000);
  tm t{};
  gmtime_r(&s, &t);
  char out[32];
  strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%S", &t);
  return absl::StrFormat("%s.%06dZ", out, static_cast<int>((ns % 1'000'000'000) / 1000));
}

Json AuditEntryJson(const AuditEntry& e) {
  return {{"seq", e.seq},
          {"time", UtcTime(e.time_ns)},
          {"time_ns", e.time_ns},
          {"op", e.op},
          {"action", AuditActionName(e.action)},
          {"actor_vm", e.actor.value()},
          {"vm", e.vm.value()},
          {"buffer", e.buffer.value()},
          {"handle", e.handle.value()},
          {"base", e.pages.base().value()},
          {"size", e.pages.size_bytes()},
          {"rights", e.rights.ToString()}};
}

}  // namespace rmem::rmemd

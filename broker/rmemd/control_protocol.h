// rmemd's control socket protocol (docs/rmemd.md, "Control socket"), shared
// by rmemd (control_server.h, control_commands.h) and rmemctl.
//
// A Unix stream socket. The client writes requests and rmemd answers each
// one, in order; every request and every answer is one JSON object on one
// line (ended by '\n'):
//
//   {"command":"status"}                      -> {"ok":true,"status":{...}}  (status.h)
//   {"command":"audit","after":SEQ,"limit":N} -> {"ok":true,"entries":[...],"more":BOOL}
//   anything refused                          -> {"ok":false,"error":"<what was wrong>"}
//
// "after" (default 0) and "limit" (1 to kMaxAuditEntries, default that) are
// optional; "more" says entries after the last one returned exist (ask
// again with "after" = its "seq"). A request over kMaxRequestBytes ends the
// connection after its error answer.
//
// nlohmann's JSON is used without exceptions (JSON_NOEXCEPTION, set by the
// build): parse with allow_exceptions = false, check a value's type before
// reading it, and write with ToLine (which never throws on bad UTF-8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "absl/strings/string_view.h"
#include "broker/state/state_store.h"

namespace rmem::rmemd {

// Objects keep their keys in the order written (answers read top-down).
using Json = nlohmann::ordered_json;

inline constexpr char kDefaultControlPath[] = "/run/rmemd/control";
// A request line longer than this (without its '\n') is refused.
inline constexpr size_t kMaxRequestBytes = 64 * 1024;
// The most audit entries one answer holds.
inline constexpr uint64_t kMaxAuditEntries = 1000;

// {"ok":false,"error":message}
Json ErrorAnswer(absl::string_view message);

// `value` as one protocol line: compact JSON and '\n'. Bytes in strings that
// are not UTF-8 (names from firmware) are replaced by U+FFFD.
std::string ToLine(const Json& value);

// One audit entry, as `audit` answers it and `rmemctl --state FILE audit
// --json` prints it: {"seq", "time" (UTC, ISO 8601, microseconds),
// "time_ns", "op", "action", "actor_vm", "vm", "buffer", "handle", "base",
// "size", "rights"} (buffer and handle 0 where there is none).
Json AuditEntryJson(const AuditEntry& e);

// "2026-11-26T15:50:08.123456Z" for nanoseconds since the epoch.
std::string UtcTime(int64_t ns);

}  // namespace rmem::rmemd

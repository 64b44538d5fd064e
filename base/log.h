// rmemd's log: every message of the daemon and of the libraries it runs
// (the vhost-user back-end, the guest devices) goes through Log, one line
// "rmemd: <message>" per call; a message of several lines has its first
// line prefixed, the others (tables) as they are. Errors and warnings go
// to stderr, info and debug to stdout, each line flushed at once (rmemd
// runs under a supervisor that timestamps lines as they come).
//
// The level (rmemd's --log-level) drops messages below it; default info.
// Safe from any thread (one stdio call per message).
#pragma once

#include <optional>

#include "absl/strings/string_view.h"

namespace rmem {

enum class LogLevel : int { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

// "error", "warn", "info", "debug"; nullopt for anything else.
std::optional<LogLevel> ParseLogLevel(absl::string_view name);
void SetLogLevel(LogLevel level);
// Whether a message at `level` is written (to skip building costly ones).
bool LogEnabled(LogLevel level);

void Log(LogLevel level, absl::string_view message);

}  // namespace rmem

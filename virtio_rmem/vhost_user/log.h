// Where the back-end's log lines go: one line per event, to rmemd's log
// (base/log.h) at info level unless the program says otherwise (the fuzzers
// and benchmarks, which would otherwise print a line per input, discard
// them). Loop thread only.
#pragma once

#include "absl/strings/string_view.h"

namespace rmem::virtio_rmem {

using LogSink = void (*)(absl::string_view line);

// nullptr: back to stderr.
void SetLogSink(LogSink sink);

// Writes `line` (no newline) to the sink.
void Log(absl::string_view line);

}  // namespace rmem::virtio_rmem

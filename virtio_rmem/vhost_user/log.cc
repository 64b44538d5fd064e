#include "virtio_rmem/vhost_user/log.h"

#include <cstdio>

namespace rmem::virtio_rmem {
namespace {

LogSink g_sink = nullptr;

}  // namespace

void SetLogSink(LogSink sink) { g_sink = sink; }

void Log(absl::string_view line) {
  if (g_sink != nullptr) {
    g_sink(line);
    return;
  }
  std::fprintf(stderr, "rmemd: %.*s\n", static_cast<int>(line.size()), line.data());
}

}  // namespace rmem::virtio_rmem

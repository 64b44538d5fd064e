#include "virtio_rmem/vhost_user/log.h"

#include "base/log.h"

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
  ::rmem::Log(LogLevel::kInfo, line);
}

}  // namespace rmem::virtio_rmem

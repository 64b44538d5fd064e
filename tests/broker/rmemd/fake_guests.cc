// TEST ONLY: three guests of the example configuration for tests that run
// the real rmemd binary (rmemd_serve_test.py), played the way
// service_guest.h plays them: rmem-vmm's own vhost-user front-end and
// shared memory windows, a fake driver per queue.
//
// usage: rmemd_fake_guests DECRYPT_SOCKET DISPLAY_SOCKET INFOTAINMENT_SOCKET
//
// Connects decrypt, display and infotainment to their sockets;
// decrypt allocates 1 MiB of secure-video and shares it read-only with
// display, which retrieves it. Then prints one JSON line
//   {"buffer": ID, "handle": H, "decrypt_offset": O, "display_offset": O}
// and keeps every guest connected until its stdin closes; then hangs up
// and exits 0. Exit 1 (saying why on stderr) if any step fails.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "tests/broker/rmemd/service_guest.h"

namespace rmem::rmemd {
namespace {

int Fail(const std::string& why) {
  std::fprintf(stderr, "rmemd_fake_guests: %s\n", why.c_str());
  return 1;
}

int Main(int argc, char** argv) {
  if (argc != 4) {
    return Fail("usage: rmemd_fake_guests DECRYPT_SOCKET DISPLAY_SOCKET INFOTAINMENT_SOCKET");
  }
  Guest decrypt("decrypt", argv[1]);
  Guest display("display", argv[2]);
  Guest info("infotainment", argv[3]);
  for (Guest* g : {&decrypt, &display, &info}) {
    if (absl::Status s = g->Connect(); !s.ok()) return Fail(s.ToString());
  }
  const std::vector<uint8_t> alloc = TryAlloc(decrypt, 1 << 20, kHeapVideo);
  if (StatusOf(alloc) != VIRTIO_RMEM_S_OK || alloc.size() != sizeof(virtio_rmem_resp_alloc)) {
    return Fail("decrypt's ALLOC failed");
  }
  const auto a = virtio_rmem::ReadWire<virtio_rmem_resp_alloc>(alloc);
  const std::optional<SharedAndRetrieved> shared = ShareAndRetrieve(
      decrypt, a.buffer, display, kDisplay, VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  if (!shared) return Fail("decrypt's SHARE or display's RETRIEVE failed");
  std::printf(
      "{\"buffer\": %llu, \"handle\": %llu, \"decrypt_offset\": %llu, "
      "\"display_offset\": %llu}\n",
      static_cast<unsigned long long>(a.buffer), static_cast<unsigned long long>(shared->handle),
      static_cast<unsigned long long>(a.shm_offset),
      static_cast<unsigned long long>(shared->retrieved.shm_offset));
  std::fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  return 0;
}

}  // namespace
}  // namespace rmem::rmemd

int main(int argc, char** argv) { return rmem::rmemd::Main(argc, argv); }

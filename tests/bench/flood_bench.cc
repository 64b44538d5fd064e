// What one guest's request flood costs the others, measured against the
// floor in the same run. rmemd's service runs as in
// tests/broker/rmemd/service_test.cc (tests/broker/rmemd/service_guest.h:
// the example configuration, every guest over vhost-user on one event loop,
// guests played by rmem-vmm's front-end and a FakeDriver):
//   - decrypt's request round trip (GET_HEAP: post, kick, wait for the used
//     entry), median and p99, (a) with the other guests idle and (b) while
//     infotainment keeps its request queue full (1024 entries: 512 requests
//     in flight) from another thread;
//   - the flooder's own throughput, during (b) and alone;
//   - the floor: a bare round trip of the same sizes over a socketpair
//     between two threads.
// The back-end serves at most kMaxChainsPerIteration chains of one ring per
// loop iteration before the other guests' turn
// (virtio_rmem/vhost_user/limits.h), so (b) should stay within a bounded
// multiple of (a), whatever the flooder does.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "tests/broker/rmemd/service_guest.h"
#include "virtio_rmem/uapi/virtio_rmem.h"
#include "virtio_rmem/vhost_user/limits.h"
#include "virtio_rmem/vhost_user/log.h"

namespace rmem::rmemd {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint16_t kFloodQueueSize = 1024;  // the back-end's largest

// Round-trip times in ns, sorted.
struct Samples {
  std::vector<double> ns;
  double Median() const { return ns.empty() ? 0 : ns[ns.size() / 2]; }
  double P99() const {
    return ns.empty() ? 0 : ns[std::min(ns.size() - 1, (ns.size() * 99 + 99) / 100 - 1)];
  }
};

Samples Sorted(std::vector<double> ns) {
  std::sort(ns.begin(), ns.end());
  return {std::move(ns)};
}

// The floor: `n` round trips of a GET_HEAP request's and response's sizes
// over a Unix socketpair, to an echoing thread.
Samples BareSocketRoundTrips(int n) {
  constexpr size_t kReq = sizeof(virtio_rmem_req_get_heap),
                   kResp = sizeof(virtio_rmem_resp_get_heap);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  Fd a(sv[0]), b(sv[1]);
  std::thread echo([&b] {
    uint8_t req[kReq], resp[kResp] = {};
    while (recv(b.get(), req, kReq, MSG_WAITALL) == static_cast<ssize_t>(kReq)) {
      if (send(b.get(), resp, kResp, MSG_NOSIGNAL) != static_cast<ssize_t>(kResp)) break;
    }
  });
  uint8_t req[kReq] = {}, resp[kResp];
  std::vector<double> ns;
  ns.reserve(n);
  for (int i = 0; i < n; ++i) {
    const Clock::time_point t0 = Clock::now();
    if (send(a.get(), req, kReq, MSG_NOSIGNAL) != static_cast<ssize_t>(kReq)) std::abort();
    if (recv(a.get(), resp, kResp, MSG_WAITALL) != static_cast<ssize_t>(kResp)) std::abort();
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
  }
  shutdown(a.get(), SHUT_RDWR);
  echo.join();
  return Sorted(std::move(ns));
}

// `n` GET_HEAP round trips of `g`, one after another; exits if one is not
// answered OK.
Samples RoundTrips(Guest& g, int n) {
  const std::vector<uint8_t> request = GetHeapRequest(kHeapVideo);
  std::vector<double> ns;
  ns.reserve(n);
  for (int i = 0; i < n; ++i) {
    const Clock::time_point t0 = Clock::now();
    const std::vector<uint8_t> response = g.Request(request);
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    if (StatusOf(response) != VIRTIO_RMEM_S_OK) {
      std::fprintf(stderr, "flood_bench: %s: GET_HEAP %d not answered OK\n", g.name().c_str(), i);
      std::exit(1);
    }
  }
  return Sorted(std::move(ns));
}

// The flood's answers per second over [start, end].
struct Rate {
  uint64_t answered = 0;
  double seconds = 0;
  double PerSecond() const { return seconds > 0 ? answered / seconds : 0; }
};

void WaitUntilNothingInFlight(Guest& g) {
  if (!g.WaitForAnswered(g.posted())) {
    std::fprintf(stderr, "flood_bench: %s: requests in flight not answered\n", g.name().c_str());
    std::exit(1);
  }
}

void Usage(FILE* to) {
  std::fprintf(to,
               "usage: flood_bench [--quick] [--config=PATH]\n"
               "  Runs rmemd's service in this process and measures decrypt's GET_HEAP round\n"
               "  trip with the other guests idle and while infotainment keeps its queue\n"
               "  full, beside a bare socketpair round trip measured in the same run.\n"
               "  --quick        500 round trips per row instead of 5000\n"
               "  --config=PATH  the configuration (default: %s)\n",
               RMEMD_EXAMPLE_CONFIG);
}

void PrintRow(const char* what, const Samples& s, const Samples& floor) {
  std::printf("  %-42s %10.1f %10.1f %9.1fx %9.1fx\n", what, s.Median() / 1000, s.P99() / 1000,
              s.Median() / floor.Median(), s.P99() / floor.P99());
}

int Main(int argc, char** argv) {
  std::string config = RMEMD_EXAMPLE_CONFIG;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      Usage(stdout);
      return 0;
    } else if (arg == "--quick") {
      quick = true;
    } else if (arg.rfind("--config=", 0) == 0) {
      config = arg.substr(9);
    } else if (arg == "--config" && i + 1 < argc) {
      config = argv[++i];
    } else {
      Usage(stderr);
      return 2;
    }
  }
  const int n = quick ? 500 : 5000;
  const int warmup = n / 10;
  const absl::Duration alone = quick ? absl::Milliseconds(200) : absl::Seconds(1);
  // Connections come and go at the end: no log line for that.
  virtio_rmem::SetLogSink([](absl::string_view) {});

  absl::StatusOr<std::unique_ptr<InProcessService>> rmemd = InProcessService::Start(config);
  if (!rmemd.ok()) {
    std::fprintf(stderr, "flood_bench: %s\n", rmemd.status().ToString().c_str());
    return 1;
  }
  Guest decrypt("decrypt", (*rmemd)->socket("decrypt"));
  Guest display("display", (*rmemd)->socket("display"));
  Guest info("infotainment", (*rmemd)->socket("infotainment"), kFloodQueueSize);
  for (Guest* g : {&decrypt, &display, &info}) {
    if (absl::Status s = g->Connect(); !s.ok()) {
      std::fprintf(stderr, "flood_bench: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  const std::vector<uint8_t> flood_request = GetHeapRequest(kHeapUi);

  const Samples floor = BareSocketRoundTrips(n);
  RoundTrips(decrypt, warmup);
  const Samples idle = RoundTrips(decrypt, n);

  Samples flooded;
  Rate during;
  {
    Flooder flood(info, flood_request);
    if (!flood.WaitForAnswered(info.max_in_flight())) {
      std::fprintf(stderr, "flood_bench: the flood did not start\n");
      return 1;
    }
    RoundTrips(decrypt, warmup);
    const uint64_t before = flood.answered();
    const absl::Time t0 = absl::Now();
    flooded = RoundTrips(decrypt, n);
    during = {flood.answered() - before, absl::ToDoubleSeconds(absl::Now() - t0)};
    flood.Stop();
  }
  WaitUntilNothingInFlight(info);

  Rate by_itself;
  {
    Flooder flood(info, flood_request);
    if (!flood.WaitForAnswered(info.max_in_flight())) return 1;
    const uint64_t before = flood.answered();
    const absl::Time t0 = absl::Now();
    absl::SleepFor(alone);
    by_itself = {flood.answered() - before, absl::ToDoubleSeconds(absl::Now() - t0)};
    flood.Stop();
  }
  WaitUntilNothingInFlight(info);

  std::printf("flood_bench: rmemd's service in one process, %s\n", config.c_str());
  std::printf("  the back-end serves at most %d chains of one ring per loop iteration\n\n",
              virtio_rmem::kMaxChainsPerIteration);
  std::printf("decrypt's GET_HEAP round trip, %d requests one after another per row (us):\n", n);
  std::printf("  %-42s %10s %10s %10s %10s\n", "", "median", "p99", "med/floor", "p99/floor");
  PrintRow("floor: bare socketpair round trip", floor, floor);
  PrintRow("(a) other guests idle", idle, floor);
  PrintRow("(b) infotainment flooding its queue", flooded, floor);
  std::printf("  %-42s %10.2fx %9.2fx\n", "ratio (b)/(a)", flooded.Median() / idle.Median(),
              flooded.P99() / idle.P99());
  std::printf("\ninfotainment's flood (GET_HEAP, %d requests in flight, re-posted as answered):\n",
              info.max_in_flight());
  std::printf("  %-42s %10.0f requests/s (%llu in %.2f s)\n", "during (b)", during.PerSecond(),
              static_cast<unsigned long long>(during.answered), during.seconds);
  std::printf("  %-42s %10.0f requests/s (%llu in %.2f s)\n", "alone, the others idle",
              by_itself.PerSecond(), static_cast<unsigned long long>(by_itself.answered),
              by_itself.seconds);
  std::printf("  %-42s %10.1f flood requests answered\n", "per decrypt request during (b)",
              static_cast<double>(during.answered) / n);
  if (during.answered < static_cast<uint64_t>(n) * virtio_rmem::kMaxChainsPerIteration / 2) {
    // The flooder thread did not keep its queue full (a busy machine: on
    // two cores it competes with the loop and decrypt): (b) understates
    // what a full queue costs decrypt.
    std::printf(
        "  note: under half an iteration's share per decrypt request: the flood fell "
        "short; run again on a quieter machine\n");
  }
  return 0;
}

}  // namespace
}  // namespace rmem::rmemd

int main(int argc, char** argv) { return rmem::rmemd::Main(argc, argv); }

// isolation_soak: the isolation harness over a long random workload (one
// million operations by default), printing how many operations ran and how
// many invariant checks were made. Exits 1 on the first violation, printing
// the seed and step that reproduce it.
//
//   isolation_soak [--ops N] [--seed S] [--sequence-length L] [--firewall F]
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>

#include "tests/broker/oracle/isolation_harness.h"

namespace {

void Usage() {
  std::printf(
      "usage: isolation_soak [--ops N] [--seed S] [--sequence-length L] [--firewall F]\n"
      "  Runs N random broker operations (default 1000000) in sequences of L\n"
      "  (default 20000; every VM is torn down at the end of each), checking the\n"
      "  isolation invariant after every operation. F is the firewall the broker\n"
      "  programs: fake, tzc400, tzc400-scarce, block (register-level models), or\n"
      "  all (default: each sequence takes the next).\n");
}

bool ParseU64(const char* s, uint64_t& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtoull(s, &end, 0);
  return errno == 0 && end != s && *end == '\0';
}

}  // namespace

int main(int argc, char** argv) {
  using rmem::testing::FirewallUnderTest;
  constexpr FirewallUnderTest kAll[] = {FirewallUnderTest::kFake, FirewallUnderTest::kTzc400,
                                        FirewallUnderTest::kTzc400Scarce,
                                        FirewallUnderTest::kBlockController};
  uint64_t ops = 1000000, seed = 1, length = 20000;
  std::string firewall = "all";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--firewall" && i + 1 < argc) {
      firewall = argv[++i];
      bool known = firewall == "all";
      for (FirewallUnderTest f : kAll) known |= firewall == FirewallUnderTestName(f);
      if (!known) {
        std::fprintf(stderr, "isolation_soak: unknown firewall '%s'\n", firewall.c_str());
        Usage();
        return 2;
      }
      continue;
    }
    uint64_t* target = arg == "--ops"               ? &ops
                       : arg == "--seed"            ? &seed
                       : arg == "--sequence-length" ? &length
                                                    : nullptr;
    if (arg == "--help" || arg == "-h") {
      Usage();
      return 0;
    }
    if (target == nullptr || i + 1 >= argc || !ParseU64(argv[++i], *target) || *target == 0) {
      std::fprintf(stderr, "isolation_soak: bad argument '%s'\n", arg.c_str());
      Usage();
      return 2;
    }
  }

  using rmem::testing::HarnessStats;
  using rmem::testing::IsolationHarness;
  HarnessStats total;
  const auto start = std::chrono::steady_clock::now();
  uint64_t done = 0, sequence = 0, last_report = 0;
  while (done < ops) {
    const uint64_t sequence_seed = seed * 1000003 + sequence;
    FirewallUnderTest kind = kAll[sequence % std::size(kAll)];
    for (FirewallUnderTest f : kAll) {
      if (firewall == FirewallUnderTestName(f)) kind = f;
    }
    IsolationHarness harness(rmem::testing::SmallPlatform(), sequence_seed, kind);
    uint64_t x = sequence_seed * 0x9e3779b97f4a7c15ULL | 1;
    const uint64_t n = std::min(length, ops - done);
    for (uint64_t i = 0; i < n; ++i) {
      const std::string violation = harness.Step(rmem::testing::NextWord(x));
      if (!violation.empty()) {
        std::printf("VIOLATION (seed %" PRIu64 ", sequence %" PRIu64 ", step %" PRIu64
                    ", firewall %s): %s\n",
                    seed, sequence, i, FirewallUnderTestName(kind), violation.c_str());
        return 1;
      }
    }
    if (const std::string v = harness.TeardownAll(); !v.empty()) {
      std::printf("VIOLATION (seed %" PRIu64 ", sequence %" PRIu64 "): %s\n", seed, sequence,
                  v.c_str());
      return 1;
    }
    total.Add(harness.stats());
    done += n;
    ++sequence;
    if (done - last_report >= 100000 || done == ops) {
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("  %" PRIu64 " / %" PRIu64 " operations, %.1f s\n", done, ops, s);
      std::fflush(stdout);
      last_report = done;
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("isolation soak: %" PRIu64 " operations in %" PRIu64
              " sequences, %.1f s (%.0f ops/s)\n",
              total.ops, sequence, secs, static_cast<double>(total.ops) / secs);
  std::printf("  accepted %" PRIu64 ", rejected %" PRIu64 " (injected backend failures %" PRIu64
              ")\n",
              total.accepted, total.ops - total.accepted, total.injected_failures);
  std::printf("  refused while every TZC-400 grant region was in use: %" PRIu64 "\n",
              total.region_refusals);
  std::printf("  checks: %" PRIu64 " total = %" PRIu64
              " access (party x page x read/write) + %" PRIu64 " transient + %" PRIu64
              " scrub + %" PRIu64 " event + %" PRIu64 " state\n",
              total.total_checks(), total.access_checks, total.transient_checks, total.scrub_checks,
              total.event_checks, total.state_checks);
  std::printf("  outcomes:\n");
  for (const auto& [op, count] : total.by_op) {
    std::printf("    %-36s %10" PRIu64 "\n", op.c_str(), count);
  }
  std::printf("  violations: 0\n");
  return 0;
}

// Firewall benchmarks: the drivers programming the register-level models
// for a video workload -- triple-buffered 8 MiB frames in a 64 MiB
// carve-out, the decoder holding read-write on all three, the display
// controller retrieving (read) and relinquishing each frame in turn -- and
// buffers coming and going (a decoder grant on a fresh range, then its
// revoke). Google Benchmark prints time per update and counters:
//   writes/update   register writes the driver made per Grant or Revoke
//   updates/s       Grant + Revoke calls per second
// against the floor of one bare register write to the same model
// (BM_*_BareWrite); a summary with the ratios follows the table.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "broker/backend/firewall/block_controller_model.h"
#include "broker/backend/firewall/block_firewall.h"
#include "broker/backend/firewall/tzc400_firewall.h"
#include "broker/backend/firewall/tzc400_model.h"
#include "broker/backend/firewall/tzc400_registers.h"
#include "broker/check.h"

namespace rmem::bench {
namespace {

constexpr uint64_t kBase = 0x70000000, kSize = 64 << 20, kFrame = 8 << 20;
const InitiatorId kDecoder(1), kDisplay(2);
const absl::flat_hash_map<InitiatorId, uint32_t> kIds = {{kDecoder, 4}, {kDisplay, 5}};

PageRange Range(uint64_t base, uint64_t size) {
  return *PageRange::FromBytes(PhysAddr(base), size);
}
PageRange Frame(int i) { return Range(kBase + i * kFrame, kFrame); }

// A driver over its model, with the decoder on three frames.
struct Setup {
  std::unique_ptr<FirewallModel> model;
  std::unique_ptr<Firewall> driver;
};

Setup Tzc() {
  Setup s;
  auto model = std::make_unique<Tzc400Model>();
  auto driver = Tzc400Firewall::Create("tzc", model.get(), {{"video", Range(kBase, kSize)}}, 1,
                                       kIds);
  RMEM_CHECK_OK(driver);
  s.model = std::move(model);
  s.driver = *std::move(driver);
  return s;
}

Setup Block(uint64_t block_size) {
  Setup s;
  auto model = std::make_unique<BlockControllerModel>(BlockControllerModel::Options{
      .window_base = kBase, .window_size = kSize, .block_size = block_size});
  auto driver = BlockFirewall::Create(model.get(), {Range(kBase, kSize)}, kIds);
  RMEM_CHECK_OK(driver);
  s.model = std::move(model);
  s.driver = *std::move(driver);
  return s;
}

Setup Make(int64_t kind) { return kind == 0 ? Tzc() : Block(kind == 1 ? 64 << 10 : 4 << 10); }
const char* KindName(int64_t kind) {
  return kind == 0 ? "tzc400" : kind == 1 ? "block 64 KiB" : "block 4 KiB";
}

// The display retrieves frame i (read) and relinquishes it, round robin,
// while the decoder holds all three.
void BM_VideoFrameCycle(benchmark::State& state) {
  Setup s = Make(state.range(0));
  for (int i = 0; i < 3; ++i) RMEM_CHECK_OK(s.driver->Grant(kDecoder, Frame(i), Access::kReadWrite));
  const uint64_t writes_before = s.model->writes();
  uint64_t updates = 0;
  int frame = 0;
  for (auto _ : state) {
    RMEM_CHECK_OK(s.driver->Grant(kDisplay, Frame(frame), Access::kRead));
    s.driver->Revoke(kDisplay, Frame(frame));
    frame = (frame + 1) % 3;
    updates += 2;
  }
  state.SetLabel(KindName(state.range(0)));
  state.counters["writes/update"] =
      static_cast<double>(s.model->writes() - writes_before) / static_cast<double>(updates);
  state.counters["updates/s"] =
      benchmark::Counter(static_cast<double>(updates), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_VideoFrameCycle)->Arg(0)->Arg(1)->Arg(2);

// A frame buffer allocated and freed: the decoder's grant on a fresh range
// (a new region on the TZC-400), then its revoke.
void BM_FrameAllocFree(benchmark::State& state) {
  Setup s = Make(state.range(0));
  const uint64_t writes_before = s.model->writes();
  uint64_t updates = 0;
  int frame = 0;
  for (auto _ : state) {
    RMEM_CHECK_OK(s.driver->Grant(kDecoder, Frame(frame), Access::kReadWrite));
    s.driver->Revoke(kDecoder, Frame(frame));
    frame = (frame + 1) % 8;
    updates += 2;
  }
  state.SetLabel(KindName(state.range(0)));
  state.counters["writes/update"] =
      static_cast<double>(s.model->writes() - writes_before) / static_cast<double>(updates);
  state.counters["updates/s"] =
      benchmark::Counter(static_cast<double>(updates), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FrameAllocFree)->Arg(0)->Arg(1)->Arg(2);

// The floor: one bare register write (and read back) to the model.
void BM_BareWrite(benchmark::State& state) {
  Setup s = Make(state.range(0));
  const uint32_t offset = state.range(0) == 0 ? tzc400::RegionIdAccess(8) : 0x100;
  uint32_t v = 0;
  for (auto _ : state) {
    s.model->Write32(offset, v);
    benchmark::DoNotOptimize(s.model->Read32(offset));
    v ^= 1;
  }
  state.SetLabel(KindName(state.range(0)));
}
BENCHMARK(BM_BareWrite)->Arg(0)->Arg(1)->Arg(2);

// The summary: per kind, median time per update (timed one by one) and per
// bare write, their ratio, and writes per update in the steady state.
void Summary() {
  std::printf("\nvideo workload (3 x 8 MiB frames; display retrieve + relinquish), 20000 updates:\n");
  std::printf("  %-14s %14s %14s %10s %16s\n", "firewall", "ns/update", "ns/bare write", "ratio",
              "writes/update");
  for (int64_t kind = 0; kind < 3; ++kind) {
    Setup s = Make(kind);
    for (int i = 0; i < 3; ++i) {
      RMEM_CHECK_OK(s.driver->Grant(kDecoder, Frame(i), Access::kReadWrite));
    }
    constexpr int kUpdates = 20000;
    const uint64_t w0 = s.model->writes();
    auto t0 = std::chrono::steady_clock::now();
    for (int n = 0; n < kUpdates / 2; ++n) {
      RMEM_CHECK_OK(s.driver->Grant(kDisplay, Frame(n % 3), Access::kRead));
      s.driver->Revoke(kDisplay, Frame(n % 3));
    }
    const double per_update =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
        kUpdates;
    const double writes = static_cast<double>(s.model->writes() - w0) / kUpdates;
    constexpr int kWrites = 200000;
    t0 = std::chrono::steady_clock::now();
    for (int n = 0; n < kWrites; ++n) {
      s.model->Write32(kind == 0 ? tzc400::RegionIdAccess(8) : 0x100, n & 1);
      benchmark::DoNotOptimize(s.model->Read32(kind == 0 ? tzc400::RegionIdAccess(8) : 0x100));
    }
    const double per_write =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
        kWrites;
    std::printf("  %-14s %14.0f %14.1f %9.1fx %16.1f\n", KindName(kind), per_update, per_write,
                per_update / per_write, writes);
  }
  std::printf("(TZC-400: O(1) writes per update; block controller: one write per block of the "
              "range)\n");
}

}  // namespace
}  // namespace rmem::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  rmem::bench::Summary();
  return 0;
}

// Firewall benchmarks: the drivers programming the register-level models
// for a video workload -- triple-buffered 8 MiB frames in a 64 MiB
// carve-out, the decoder holding read-write on all three, the display
// controller retrieving (read) and relinquishing each frame in turn -- and
// buffers coming and going (a decoder grant on a fresh range, then its
// revoke). Google Benchmark prints time per update and counters:
//   writes/update   register writes the driver made per Grant or Revoke
//   updates/s       Grant + Revoke calls per second
// against the floor of one bare register write to the same model
// (BM_BareWrite); a summary with the ratios follows the table.
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

// A driver over its model.
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

// One workload: `who` is granted `access` on the next of `frames` frames
// and revoked again (two updates), round robin.
struct Cycle {
  InitiatorId who;
  Access access;
  int frames;
  bool decoder_holds_frames;  // the decoder holds read-write on every frame
};
// The display retrieves (read) and relinquishes each frame in turn while
// the decoder holds all three.
constexpr Cycle kVideo{kDisplay, Access::kRead, 3, true};
// A frame buffer allocated and freed: the decoder's grant on a fresh range
// (a new region on the TZC-400), then its revoke.
constexpr Cycle kAllocFree{kDecoder, Access::kReadWrite, 8, false};

Setup Prepared(int64_t kind, const Cycle& c) {
  Setup s = Make(kind);
  for (int i = 0; c.decoder_holds_frames && i < c.frames; ++i) {
    RMEM_CHECK_OK(s.driver->Grant(kDecoder, Frame(i), Access::kReadWrite));
  }
  return s;
}

// Two updates: grant and revoke on the next frame.
void Step(Setup& s, const Cycle& c, int& frame) {
  RMEM_CHECK_OK(s.driver->Grant(c.who, Frame(frame), c.access));
  s.driver->Revoke(c.who, Frame(frame));
  frame = (frame + 1) % c.frames;
}

// The floor: one bare register write, read back, to a register no range
// depends on (a disabled TZC-400 region's ids; a block's word).
uint32_t BareWriteOffset(int64_t kind) { return kind == 0 ? tzc400::RegionIdAccess(8) : 0x100; }
void BareWrite(FirewallModel& model, uint32_t offset, uint32_t value) {
  model.Write32(offset, value);
  benchmark::DoNotOptimize(model.Read32(offset));
}

void BM_Cycle(benchmark::State& state, const Cycle& c) {
  Setup s = Prepared(state.range(0), c);
  const uint64_t writes_before = s.model->writes();
  uint64_t updates = 0;
  int frame = 0;
  for (auto _ : state) {
    Step(s, c, frame);
    updates += 2;
  }
  state.SetLabel(KindName(state.range(0)));
  state.counters["writes/update"] =
      static_cast<double>(s.model->writes() - writes_before) / static_cast<double>(updates);
  state.counters["updates/s"] =
      benchmark::Counter(static_cast<double>(updates), benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_Cycle, VideoFrameCycle, kVideo)->Arg(0)->Arg(1)->Arg(2);
BENCHMARK_CAPTURE(BM_Cycle, FrameAllocFree, kAllocFree)->Arg(0)->Arg(1)->Arg(2);

void BM_BareWrite(benchmark::State& state) {
  Setup s = Make(state.range(0));
  const uint32_t offset = BareWriteOffset(state.range(0));
  uint32_t v = 0;
  for (auto _ : state) {
    BareWrite(*s.model, offset, v);
    v ^= 1;
  }
  state.SetLabel(KindName(state.range(0)));
}
BENCHMARK(BM_BareWrite)->Arg(0)->Arg(1)->Arg(2);

// The summary: per kind, the average time per update of the video workload
// and per bare write over a long timed run, their ratio, and writes per
// update in the steady state.
void Summary() {
  constexpr int kUpdates = 20000, kWrites = 200000;
  std::printf("\nvideo workload (3 x 8 MiB frames; display retrieve + relinquish), %d updates:\n",
              kUpdates);
  std::printf("  %-14s %14s %14s %10s %16s\n", "firewall", "ns/update", "ns/bare write", "ratio",
              "writes/update");
  for (int64_t kind = 0; kind < 3; ++kind) {
    Setup s = Prepared(kind, kVideo);
    const uint64_t w0 = s.model->writes();
    int frame = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int n = 0; n < kUpdates / 2; ++n) Step(s, kVideo, frame);
    const double per_update =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
        kUpdates;
    const double writes = static_cast<double>(s.model->writes() - w0) / kUpdates;
    const uint32_t offset = BareWriteOffset(kind);
    t0 = std::chrono::steady_clock::now();
    for (int n = 0; n < kWrites; ++n) BareWrite(*s.model, offset, n & 1);
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

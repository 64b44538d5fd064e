// The property-test platform; see test_platform.h.
#include "tests/broker/oracle/test_platform.h"

namespace rmem::testing {
namespace {

constexpr uint64_t KiB = 1024;
Rights R(uint8_t bits) { return Rights::Of(bits); }
constexpr uint8_t kR = Rights::kRead, kW = Rights::kWrite, kC = Rights::kCpuMap;

}  // namespace

TestPlatform SmallPlatform() {
  TestPlatform p;
  p.carveouts = {
      {"video@80000000", PhysAddr(0x80000000), 96 * 4 * KiB, "secure-video", 64 * KiB},
      {"secure@90000000", PhysAddr(0x90000000), 64 * 4 * KiB, "secure-video", 16 * KiB},
  };
  p.policy.vms = {
      {VmId(1), "decrypt", 384 * KiB},
      {VmId(2), "display", 128 * KiB},
      {VmId(3), "infotainment", 64 * KiB},
      {VmId(4), "camera", kUnlimited},
  };
  p.policy.initiators = {
      {InitiatorId(10), "video-decoder", VmId(1)},
      {InitiatorId(11), "display-controller", VmId(2), Access::kRead},  // scans out only
      {InitiatorId(12), "isp", VmId(4)},
      {InitiatorId(13), "rogue-dma", kHostVm},  // owned by nobody: never granted
  };
  p.policy.heaps = {
      {"secure-video",
       {"video@80000000", "secure@90000000"},
       /*cpu_map_allowed=*/true,
       /*owner_may_revoke=*/false,
       /*quota_bytes=*/320 * KiB,
       {
           {VmId(1), true, R(kR | kW | kC), kUnlimited},
           {VmId(2), false, R(kR | kC), kUnlimited},
           {VmId(4), true, R(kR | kW | kC), 64 * KiB},
       }},
      {"device-only",
       {"secure@90000000"},
       /*cpu_map_allowed=*/false,
       /*owner_may_revoke=*/true,
       kUnlimited,
       {
           {VmId(1), true, R(kR | kW), kUnlimited},
           {VmId(2), true, R(kR), 32 * KiB},
           {VmId(4), false, R(kR | kW), kUnlimited},
       }},
      {"general",
       {"video@80000000"},
       /*cpu_map_allowed=*/true,
       /*owner_may_revoke=*/true,
       kUnlimited,
       {
           {VmId(1), true, R(kR | kW | kC), kUnlimited},
           {VmId(2), true, R(kR | kW | kC), kUnlimited},
           {VmId(3), true, R(kR | kW | kC), 32 * KiB},
           {VmId(4), true, R(kR | kC), kUnlimited},
       }},
  };
  return p;
}

}  // namespace rmem::testing

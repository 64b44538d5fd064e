// Reads the generated tree back with libfdt, as the guest kernel will.
#include "vmm/arch/arm64/device_tree.h"

extern "C" {
#include <libfdt.h>
}

#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "vmm/arch/arm64/memory_map.h"

namespace rmem::vmm::arm64 {
namespace {

class DeviceTreeTest : public ::testing::Test {
 protected:
  void Build(const DeviceTreeSpec& spec) {
    absl::StatusOr<std::vector<uint8_t>> dtb = BuildDeviceTree(spec);
    ASSERT_TRUE(dtb.ok()) << dtb.status();
    dtb_ = std::move(*dtb);
    ASSERT_EQ(fdt_check_header(dtb_.data()), 0);
  }
  int Node(const char* path) { return fdt_path_offset(dtb_.data(), path); }
  std::string Str(const char* path, const char* prop) {
    const char* v = static_cast<const char*>(fdt_getprop(dtb_.data(), Node(path), prop, nullptr));
    return v == nullptr ? "<missing>" : v;
  }
  std::vector<uint64_t> U64s(const char* path, const char* prop) {
    int len = 0;
    // Properties are only 4-byte aligned: copy each cell pair out.
    const auto* v = static_cast<const uint8_t*>(fdt_getprop(dtb_.data(), Node(path), prop, &len));
    std::vector<uint64_t> out;
    for (int i = 0; v != nullptr && i < len / 8; ++i) {
      fdt64_t cell;
      std::memcpy(&cell, v + 8 * i, sizeof(cell));
      out.push_back(fdt64_to_cpu(cell));
    }
    return out;
  }
  std::vector<uint32_t> U32s(const char* path, const char* prop) {
    int len = 0;
    const auto* v = static_cast<const fdt32_t*>(fdt_getprop(dtb_.data(), Node(path), prop, &len));
    std::vector<uint32_t> out;
    for (int i = 0; v != nullptr && i < len / 4; ++i) out.push_back(fdt32_to_cpu(v[i]));
    return out;
  }
  std::vector<uint8_t> dtb_;
};

DeviceTreeSpec Spec() {
  return DeviceTreeSpec{.ram_base = GuestAddr(kRamBase), .ram_size = 256 << 20, .cpus = 2,
                        .bootargs = "console=ttyS0 quiet", .initrd = GuestAddr(0x4f000000),
                        .initrd_size = 0x1234, .virtio = {}};
}

TEST_F(DeviceTreeTest, DescribesMemoryChosenAndCpus) {
  Build(Spec());
  EXPECT_EQ(Str("/", "compatible"), "linux,dummy-virt");
  EXPECT_EQ(U64s("/memory@40000000", "reg"), (std::vector<uint64_t>{kRamBase, 256 << 20}));
  EXPECT_EQ(Str("/chosen", "bootargs"), "console=ttyS0 quiet");
  EXPECT_EQ(Str("/chosen", "stdout-path"), "/uart@9000000");
  EXPECT_EQ(U64s("/chosen", "linux,initrd-start"), (std::vector<uint64_t>{0x4f000000}));
  EXPECT_EQ(U64s("/chosen", "linux,initrd-end"), (std::vector<uint64_t>{0x4f001234}));
  EXPECT_GE(Node("/cpus/cpu@0"), 0);
  EXPECT_GE(Node("/cpus/cpu@1"), 0);
  EXPECT_LT(Node("/cpus/cpu@2"), 0);
  EXPECT_EQ(Str("/cpus/cpu@1", "enable-method"), "psci");
  EXPECT_EQ(Str("/psci", "method"), "hvc");
}

TEST_F(DeviceTreeTest, GicRedistributorsScaleWithCpusAndDevicesUseIt) {
  Build(Spec());
  EXPECT_EQ(U64s("/intc@8000000", "reg"),
            (std::vector<uint64_t>{kGicDistBase, kGicDistSize, kGicRedistBase,
                                   2 * kGicRedistSizePerCpu}));
  const uint32_t gic = fdt_get_phandle(dtb_.data(), Node("/intc@8000000"));
  EXPECT_NE(gic, 0u);
  EXPECT_EQ(U32s("/", "interrupt-parent"), (std::vector<uint32_t>{gic}));
  EXPECT_EQ(U32s("/uart@9000000", "interrupts"), (std::vector<uint32_t>{0, kUartSpi, 4}));
  EXPECT_EQ(U32s("/timer", "interrupts").size(), 12u);
}

TEST_F(DeviceTreeTest, NoInitrdMeansNoInitrdProperties) {
  DeviceTreeSpec s = Spec();
  s.initrd_size = 0;
  Build(s);
  EXPECT_TRUE(U64s("/chosen", "linux,initrd-start").empty());
}

TEST_F(DeviceTreeTest, VirtioMmioNodes) {
  DeviceTreeSpec s = Spec();
  s.virtio = {{GuestAddr(kVirtioMmioBase), kVirtioMmioStride, kVirtioMmioFirstSpi},
              {GuestAddr(kVirtioMmioBase + kVirtioMmioStride), kVirtioMmioStride,
               kVirtioMmioFirstSpi + 1}};
  Build(s);
  EXPECT_EQ(Str("/virtio_mmio@a000200", "compatible"), "virtio,mmio");
  EXPECT_EQ(U64s("/virtio_mmio@a000200", "reg"),
            (std::vector<uint64_t>{kVirtioMmioBase + kVirtioMmioStride, kVirtioMmioStride}));
  EXPECT_EQ(U32s("/virtio_mmio@a000200", "interrupts"),
            (std::vector<uint32_t>{0, kVirtioMmioFirstSpi + 1, 4}));
}

TEST_F(DeviceTreeTest, RejectsCpuCountsOutOfRange) {
  DeviceTreeSpec s = Spec();
  s.cpus = 0;
  EXPECT_EQ(BuildDeviceTree(s).status().code(), absl::StatusCode::kInvalidArgument);
  s.cpus = kMaxCpus + 1;
  EXPECT_EQ(BuildDeviceTree(s).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DeviceTreeTest, OversizedBootargsFailCleanly) {
  DeviceTreeSpec s = Spec();
  s.bootargs = std::string(3 << 20, 'x');
  const absl::Status st = BuildDeviceTree(s).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  EXPECT_NE(st.message().find("bootargs"), absl::string_view::npos) << st;
}

}  // namespace
}  // namespace rmem::vmm::arm64

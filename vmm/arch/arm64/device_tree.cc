#include "vmm/arch/arm64/device_tree.h"

extern "C" {
#include <libfdt.h>
}

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "vmm/arch/arm64/boot_layout.h"
#include "vmm/arch/arm64/memory_map.h"

namespace rmem::vmm::arm64 {
namespace {

constexpr uint32_t kGicPhandle = 1;
// GIC interrupt specifier cells: type (0 SPI, 1 PPI), number, flags.
constexpr uint32_t kSpi = 0;
constexpr uint32_t kPpi = 1;
constexpr uint32_t kLevelHigh = 4;

// Sequential-write libfdt with errors carried to the end: the first failure
// wins and later calls are skipped, so the builder reads top to bottom.
class Writer {
 public:
  explicit Writer(size_t capacity) : buf_(capacity) {
    Do(fdt_create(buf_.data(), static_cast<int>(buf_.size())), "create");
    Do(fdt_finish_reservemap(buf_.data()), "reserve map");
  }
  void Begin(const std::string& name) { Do(fdt_begin_node(buf_.data(), name.c_str()), name); }
  void End() { Do(fdt_end_node(buf_.data()), "end node"); }
  void Str(const char* prop, const std::string& v) {
    Do(fdt_property_string(buf_.data(), prop, v.c_str()), prop);
  }
  // A string list: "a\0b\0".
  void Strs(const char* prop, std::initializer_list<const char*> vs) {
    std::string packed;
    for (const char* v : vs) packed.append(v).push_back('\0');
    Do(fdt_property(buf_.data(), prop, packed.data(), static_cast<int>(packed.size())), prop);
  }
  void U32(const char* prop, uint32_t v) { Do(fdt_property_u32(buf_.data(), prop, v), prop); }
  void U64(const char* prop, uint64_t v) { Do(fdt_property_u64(buf_.data(), prop, v), prop); }
  void Cells(const char* prop, std::initializer_list<uint32_t> cells) {
    std::vector<fdt32_t> be;
    for (uint32_t c : cells) be.push_back(cpu_to_fdt32(c));
    Do(fdt_property(buf_.data(), prop, be.data(), static_cast<int>(be.size() * 4)), prop);
  }
  // reg with #address-cells = #size-cells = 2.
  void Reg(std::initializer_list<std::pair<uint64_t, uint64_t>> ranges) {
    std::vector<fdt64_t> be;
    for (auto [a, s] : ranges) {
      be.push_back(cpu_to_fdt64(a));
      be.push_back(cpu_to_fdt64(s));
    }
    Do(fdt_property(buf_.data(), "reg", be.data(), static_cast<int>(be.size() * 8)), "reg");
  }
  void Empty(const char* prop) { Do(fdt_property(buf_.data(), prop, nullptr, 0), prop); }

  absl::StatusOr<std::vector<uint8_t>> Finish() {
    Do(fdt_finish(buf_.data()), "finish");
    if (err_ != 0) {
      return absl::InternalError(
          absl::StrCat("building the device tree at ", where_, ": ", fdt_strerror(err_)));
    }
    buf_.resize(fdt_totalsize(buf_.data()));
    return std::move(buf_);
  }

 private:
  void Do(int rc, const std::string& where) {
    if (err_ == 0 && rc < 0) {
      err_ = rc;
      where_ = where;
    }
  }
  std::vector<uint8_t> buf_;
  int err_ = 0;
  std::string where_;
};

std::string NodeName(const char* kind, uint64_t addr) { return absl::StrFormat("%s@%x", kind, addr); }

}  // namespace

absl::StatusOr<std::vector<uint8_t>> BuildDeviceTree(const DeviceTreeSpec& spec) {
  if (spec.cpus < 1 || spec.cpus > kMaxCpus) {
    return absl::InvalidArgumentError(
        absl::StrCat("a guest has 1 to ", kMaxCpus, " vCPUs, not ", spec.cpus));
  }
  Writer w(kMaxDtbSize);
  w.Begin("");
  w.Str("compatible", "linux,dummy-virt");
  w.U32("#address-cells", 2);
  w.U32("#size-cells", 2);
  w.U32("interrupt-parent", kGicPhandle);

  w.Begin("chosen");
  w.Str("bootargs", spec.bootargs);
  w.Str("stdout-path", absl::StrCat("/", NodeName("uart", kUartBase)));
  if (spec.initrd_size != 0) {
    w.U64("linux,initrd-start", spec.initrd.value());
    w.U64("linux,initrd-end", spec.initrd.value() + spec.initrd_size);
  }
  w.End();

  w.Begin(NodeName("memory", spec.ram_base.value()));
  w.Str("device_type", "memory");
  w.Reg({{spec.ram_base.value(), spec.ram_size}});
  w.End();

  w.Begin("cpus");
  w.U32("#address-cells", 1);
  w.U32("#size-cells", 0);
  for (int i = 0; i < spec.cpus; ++i) {
    w.Begin(NodeName("cpu", i));
    w.Str("device_type", "cpu");
    w.Str("compatible", "arm,arm-v8");
    w.Str("enable-method", "psci");
    w.U32("reg", static_cast<uint32_t>(i));  // KVM's default MPIDR: Aff0 = vCPU index (< 16)
    w.End();
  }
  w.End();

  w.Begin("psci");
  w.Strs("compatible", {"arm,psci-1.0", "arm,psci-0.2"});
  w.Str("method", "hvc");
  w.End();

  w.Begin(NodeName("intc", kGicDistBase));
  w.Str("compatible", "arm,gic-v3");
  w.U32("#interrupt-cells", 3);
  w.Empty("interrupt-controller");
  w.Reg({{kGicDistBase, kGicDistSize},
         {kGicRedistBase, kGicRedistSizePerCpu * static_cast<uint64_t>(spec.cpus)}});
  w.U32("phandle", kGicPhandle);
  w.End();

  w.Begin("timer");
  w.Str("compatible", "arm,armv8-timer");
  w.Cells("interrupts", {kPpi, kTimerPpis[0], kLevelHigh, kPpi, kTimerPpis[1], kLevelHigh, kPpi,
                         kTimerPpis[2], kLevelHigh, kPpi, kTimerPpis[3], kLevelHigh});
  w.Empty("always-on");
  w.End();

  w.Begin(NodeName("uart", kUartBase));
  w.Str("compatible", "ns16550a");
  w.Reg({{kUartBase, 0x1000}});
  w.U32("clock-frequency", 1843200);
  w.Cells("interrupts", {kSpi, kUartSpi, kLevelHigh});
  w.End();

  for (const VirtioMmioNode& v : spec.virtio) {
    w.Begin(NodeName("virtio_mmio", v.base.value()));
    w.Str("compatible", "virtio,mmio");
    w.Reg({{v.base.value(), v.size}});
    w.Cells("interrupts", {kSpi, v.spi, kLevelHigh});
    w.Empty("dma-coherent");
    w.End();
  }

  w.End();
  return w.Finish();
}

}  // namespace rmem::vmm::arm64

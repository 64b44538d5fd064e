// Contract section 3: carve-outs from a flattened device tree, with libfdt.
// The blob is copied into an aligned FdtTree first, then checked in the
// contract's order; the first failure is the answer.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "firmware_handoff/fdt_tree.h"
#include "firmware_handoff/handoff.h"

namespace rmem::firmware_handoff {
namespace {

constexpr uint64_t k4K = 4096;

HandoffError Error(ErrorKind kind, std::string message) { return {kind, std::move(message)}; }

// [first, last] inclusive, so that a range may end exactly at 2^64.
struct Span {
  uint64_t first;
  uint64_t last;
};

// A cells property given as "#address-cells" etc.: present and 1 or 2, or
// absent (use `fallback`); anything else is nullopt.
std::optional<uint32_t> RootCells(const FdtTree& t, const char* name, uint32_t fallback) {
  std::optional<std::span<const uint8_t>> p = t.Prop(0, name);
  if (!p) return fallback;
  if (p->size() != 4) return std::nullopt;
  const uint32_t v = FdtTree::Be32(p->data());
  if (v != 1 && v != 2) return std::nullopt;
  return v;
}

struct Cells {
  uint32_t address;
  uint32_t size;
};

// Union of the root-level memory nodes' reg ranges, merged, sorted.
std::vector<Span> MemoryRanges(const FdtTree& t, Cells root) {
  std::vector<Span> ranges;
  const size_t tuple = 4 * (root.address + root.size);
  int node;
  fdt_for_each_subnode(node, t.fdt(), 0) {
    if (t.String(node, "device_type") != "memory") continue;
    std::optional<std::span<const uint8_t>> reg = t.Prop(node, "reg");
    if (!reg) continue;
    for (size_t off = 0; off + tuple <= reg->size(); off += tuple) {
      const uint64_t base = FdtTree::Read(reg->data() + off, root.address);
      const uint64_t size = FdtTree::Read(reg->data() + off + 4 * root.address, root.size);
      if (size == 0) continue;
      const uint64_t room = ~base;  // last addressable offset from base
      ranges.push_back({base, size - 1 > room ? ~uint64_t{0} : base + (size - 1)});
    }
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Span& a, const Span& b) { return a.first < b.first; });
  std::vector<Span> merged;
  for (const Span& r : ranges) {
    if (!merged.empty() &&
        (merged.back().last == ~uint64_t{0} || r.first <= merged.back().last + 1)) {
      merged.back().last = std::max(merged.back().last, r.last);
    } else {
      merged.push_back(r);
    }
  }
  return merged;
}

// One carve-out node, section 3.6 in order; the carve-out or the error.
std::variant<HandoffCarveout, HandoffError> ReadCarveout(const FdtTree& t, int node, Cells cells) {
  const std::string path = t.Path(node);
  auto bad = [&](ErrorKind kind, absl::string_view why) {
    return Error(kind, absl::StrCat(path, ": ", why));
  };
  std::optional<std::span<const uint8_t>> reg = t.Prop(node, "reg");
  if (!reg) {
    return bad(ErrorKind::kRmemMissingReg,
               "no reg (the dynamic size/alloc-ranges form is not allowed for carve-outs)");
  }
  const size_t tuple = 4 * (cells.address + cells.size);
  if (reg->size() != tuple) {
    return bad(ErrorKind::kRmemBadReg,
               absl::StrCat("reg is ", reg->size(), " bytes; want exactly one (address, size) "
                            "tuple of ", tuple, " bytes (#address-cells ", cells.address,
                            ", #size-cells ", cells.size, ")"));
  }
  HandoffCarveout c;
  c.node = path;
  const uint64_t base = FdtTree::Read(reg->data(), cells.address);
  c.size = FdtTree::Read(reg->data() + 4 * cells.address, cells.size);
  c.base = PhysAddr(base);
  if (c.size == 0) return bad(ErrorKind::kRmemZeroSize, "size is 0");
  if (base % k4K != 0 || c.size % k4K != 0) {
    return bad(ErrorKind::kRmemUnaligned,
               absl::StrCat("base ", Hex(base), " and size ", Hex(c.size),
                            " must be multiples of 4 KiB"));
  }
  if (base != 0 && c.size > 0 - base) {  // base + size > 2^64
    return bad(ErrorKind::kRmemRangeOverflow,
               absl::StrCat("base ", Hex(base), " + size ", Hex(c.size), " runs past 2^64"));
  }
  std::optional<std::string> use = t.String(node, "rmem,use-case");
  if (!use) {
    return bad(ErrorKind::kRmemMissingUseCase,
               "rmem,use-case must be one non-empty NUL-terminated string");
  }
  c.use_case = std::move(*use);
  if (std::optional<std::span<const uint8_t>> fw = t.Prop(node, "rmem,firewall")) {
    if (fw->size() != 8) {
      return bad(ErrorKind::kRmemBadFirewall,
                 absl::StrCat("rmem,firewall is ", fw->size(),
                              " bytes; want <phandle index> (8 bytes)"));
    }
    const uint32_t phandle = FdtTree::Be32(fw->data());
    const int target = t.NodeByPhandle(phandle);
    if (target < 0) {
      return bad(ErrorKind::kRmemBadFirewall,
                 absl::StrCat("rmem,firewall phandle ", Hex(phandle), " names no node"));
    }
    if (t.Cell(target, "#access-controller-cells") != 1u) {
      return bad(ErrorKind::kRmemBadFirewall,
                 absl::StrCat("rmem,firewall target ", t.Path(target),
                              " has no #access-controller-cells = <1>"));
    }
    c.firewall = FirewallRef{.node = t.Path(target), .index = FdtTree::Be32(fw->data() + 4)};
  }
  c.no_map = t.Prop(node, "no-map").has_value();
  return c;
}

}  // namespace

HandoffResult ParseFdt(std::span<const uint8_t> blob) {
  // 3.1, 3.2: the blob itself.
  if (blob.size() < 4 || FdtTree::Be32(blob.data()) != FDT_MAGIC) {
    return Error(ErrorKind::kFdtBadMagic,
                 blob.size() < 4 ? absl::StrCat("device tree of ", blob.size(), " bytes has no magic")
                                 : absl::StrCat("device tree magic is ", Hex(FdtTree::Be32(blob.data())),
                                                ", want 0xd00dfeed"));
  }
  const FdtTree t(blob);
  // libfdt 1.6.1's fdt_check_full walks a pre-17 tree's structure block
  // without knowing its size and reads past the buffer (found by fuzzing,
  // tests/fuzz/regressions/): only version 17 trees, which dtc writes, are read.
  if (blob.size() < sizeof(fdt_header) || fdt_version(t.fdt()) < 17) {
    return Error(ErrorKind::kFdtCorrupt,
                 absl::StrCat("device tree header of ", blob.size(),
                              " bytes is short or older than version 17"));
  }
  if (const int err = fdt_check_full(t.fdt(), t.size()); err != 0) {
    return Error(ErrorKind::kFdtCorrupt,
                 absl::StrCat("device tree of ", blob.size(), " bytes is corrupt: ", fdt_strerror(err)));
  }
  // 3.3: the root's cells.
  const std::optional<uint32_t> ac = RootCells(t, "#address-cells", 2);
  const std::optional<uint32_t> sc = RootCells(t, "#size-cells", 1);
  if (!ac || !sc) {
    return Error(ErrorKind::kRmemBadCells, "/: #address-cells and #size-cells must be 1 or 2");
  }
  const Cells root{*ac, *sc};
  // 3.4: /reserved-memory.
  const int resmem = fdt_path_offset(t.fdt(), "/reserved-memory");
  if (resmem == -FDT_ERR_NOTFOUND) return std::vector<HandoffCarveout>{};
  if (resmem < 0) {
    return Error(ErrorKind::kFdtCorrupt,
                 absl::StrCat("looking up /reserved-memory: ", fdt_strerror(resmem)));
  }
  std::optional<std::span<const uint8_t>> ranges = t.Prop(resmem, "ranges");
  if (t.Cell(resmem, "#address-cells") != root.address ||
      t.Cell(resmem, "#size-cells") != root.size || !ranges || !ranges->empty()) {
    return Error(ErrorKind::kRmemBadCells,
                 absl::StrCat("/reserved-memory must have #address-cells = <", root.address,
                              ">, #size-cells = <", root.size,
                              "> (the root's) and an empty ranges"));
  }
  // 3.5, 3.6: the carve-outs, in node order.
  std::vector<HandoffCarveout> carveouts;
  int node;
  fdt_for_each_subnode(node, t.fdt(), resmem) {
    int len = 0;
    const void* compat = fdt_getprop(t.fdt(), node, "compatible", &len);
    if (compat == nullptr || fdt_stringlist_contains(static_cast<const char*>(compat), len,
                                                     "rmem,carveout") == 0) {
      continue;
    }
    std::variant<HandoffCarveout, HandoffError> c = ReadCarveout(t, node, root);
    if (auto* e = std::get_if<HandoffError>(&c)) return std::move(*e);
    carveouts.push_back(std::move(std::get<HandoffCarveout>(c)));
  }
  // 3.7: inside memory.
  const std::vector<Span> memory = MemoryRanges(t, root);
  for (const HandoffCarveout& c : carveouts) {
    const Span s{c.base.value(), c.base.value() + (c.size - 1)};
    const bool inside = std::any_of(memory.begin(), memory.end(), [&](const Span& m) {
      return s.first >= m.first && s.last <= m.last;
    });
    if (!inside) {
      return Error(ErrorKind::kRmemOutsideMemory,
                   absl::StrCat(c.node, ": [", c.base.ToString(), ", +", Hex(c.size),
                                ") is not inside the memory nodes' ranges"));
    }
  }
  // 3.8: no overlaps (touching is fine).
  std::sort(carveouts.begin(), carveouts.end(),
            [](const HandoffCarveout& a, const HandoffCarveout& b) { return a.base < b.base; });
  for (size_t i = 1; i < carveouts.size(); ++i) {
    const HandoffCarveout& a = carveouts[i - 1];
    const HandoffCarveout& b = carveouts[i];
    if (b.base.value() <= a.base.value() + (a.size - 1)) {
      return Error(ErrorKind::kRmemOverlap, absl::StrCat(a.node, " and ", b.node, " overlap"));
    }
  }
  return carveouts;
}

}  // namespace rmem::firmware_handoff

// Contract section 3: carve-outs from a flattened device tree, with libfdt.
// The blob is copied into an 8-byte aligned buffer first (libfdt wants
// alignment; a transfer-list entry's data need not have it), then checked in
// the contract's order; the first failure is the answer.
#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "firmware_handoff/handoff.h"

extern "C" {
#include <libfdt.h>
}

namespace rmem::firmware_handoff {
namespace {

constexpr uint64_t k4K = 4096;

HandoffError Error(ErrorKind kind, std::string message) { return {kind, std::move(message)}; }

// [first, last] inclusive, so that a range may end exactly at 2^64.
struct Span {
  uint64_t first;
  uint64_t last;
};

class Tree {
 public:
  // size / 8 + 1 words: room for every byte, and no overflow to reason about.
  explicit Tree(std::span<const uint8_t> blob) : words_(blob.size() / 8 + 1), size_(blob.size()) {
    std::copy(blob.begin(), blob.end(), reinterpret_cast<uint8_t*>(words_.data()));
  }
  const void* fdt() const { return words_.data(); }
  size_t size() const { return size_; }

  std::string Path(int node) const {
    char buf[512];
    if (fdt_get_path(fdt(), node, buf, sizeof(buf)) != 0) return "<unknown node>";
    return buf;
  }
  // A property's bytes; nullopt if absent.
  std::optional<std::span<const uint8_t>> Prop(int node, const char* name) const {
    int len = 0;
    const void* p = fdt_getprop(fdt(), node, name, &len);
    if (p == nullptr || len < 0) return std::nullopt;
    return std::span<const uint8_t>(static_cast<const uint8_t*>(p), static_cast<size_t>(len));
  }
  // A one-cell property's value; nullopt if absent or not 4 bytes.
  std::optional<uint32_t> Cell(int node, const char* name) const {
    std::optional<std::span<const uint8_t>> p = Prop(node, name);
    if (!p || p->size() != 4) return std::nullopt;
    return Be32(p->data());
  }

  static uint32_t Be32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  }
  // `cells` (1 or 2) big-endian cells as one number.
  static uint64_t Read(const uint8_t* p, uint32_t cells) {
    uint64_t v = 0;
    for (uint32_t i = 0; i < cells; ++i) v = (v << 32) | Be32(p + 4 * i);
    return v;
  }

 private:
  std::vector<uint64_t> words_;
  size_t size_ = 0;
};

// A cells property given as "#address-cells" etc.: present and 1 or 2, or
// absent (use `fallback`); anything else is nullopt.
std::optional<uint32_t> RootCells(const Tree& t, const char* name, uint32_t fallback) {
  std::optional<std::span<const uint8_t>> p = t.Prop(0, name);
  if (!p) return fallback;
  if (p->size() != 4) return std::nullopt;
  const uint32_t v = Tree::Be32(p->data());
  if (v != 1 && v != 2) return std::nullopt;
  return v;
}

bool IsSingleString(std::span<const uint8_t> p) {
  if (p.size() < 2 || p.back() != 0 || p.front() == 0) return false;
  return std::find(p.begin(), p.end() - 1, 0) == p.end() - 1;
}

struct Cells {
  uint32_t address;
  uint32_t size;
};

// Union of the root-level memory nodes' reg ranges, merged, sorted.
std::vector<Span> MemoryRanges(const Tree& t, Cells root) {
  std::vector<Span> ranges;
  const size_t tuple = 4 * (root.address + root.size);
  int node;
  fdt_for_each_subnode(node, t.fdt(), 0) {
    std::optional<std::span<const uint8_t>> type = t.Prop(node, "device_type");
    if (!type || !IsSingleString(*type) ||
        std::strcmp(reinterpret_cast<const char*>(type->data()), "memory") != 0) {
      continue;
    }
    std::optional<std::span<const uint8_t>> reg = t.Prop(node, "reg");
    if (!reg) continue;
    for (size_t off = 0; off + tuple <= reg->size(); off += tuple) {
      const uint64_t base = Tree::Read(reg->data() + off, root.address);
      const uint64_t size = Tree::Read(reg->data() + off + 4 * root.address, root.size);
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
std::variant<HandoffCarveout, HandoffError> ReadCarveout(const Tree& t, int node, Cells cells) {
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
  const uint64_t base = Tree::Read(reg->data(), cells.address);
  c.size = Tree::Read(reg->data() + 4 * cells.address, cells.size);
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
  std::optional<std::span<const uint8_t>> use = t.Prop(node, "rmem,use-case");
  if (!use || !IsSingleString(*use)) {
    return bad(ErrorKind::kRmemMissingUseCase,
               "rmem,use-case must be one non-empty NUL-terminated string");
  }
  c.use_case = reinterpret_cast<const char*>(use->data());
  if (std::optional<std::span<const uint8_t>> fw = t.Prop(node, "rmem,firewall")) {
    if (fw->size() != 8) {
      return bad(ErrorKind::kRmemBadFirewall,
                 absl::StrCat("rmem,firewall is ", fw->size(),
                              " bytes; want <phandle index> (8 bytes)"));
    }
    const uint32_t phandle = Tree::Be32(fw->data());
    const int target = phandle == 0 || phandle == ~uint32_t{0}
                           ? -FDT_ERR_BADPHANDLE
                           : fdt_node_offset_by_phandle(t.fdt(), phandle);
    if (target < 0) {
      return bad(ErrorKind::kRmemBadFirewall,
                 absl::StrCat("rmem,firewall phandle ", Hex(phandle), " names no node"));
    }
    if (t.Cell(target, "#access-controller-cells") != 1u) {
      return bad(ErrorKind::kRmemBadFirewall,
                 absl::StrCat("rmem,firewall target ", t.Path(target),
                              " has no #access-controller-cells = <1>"));
    }
    c.firewall = FirewallRef{.node = t.Path(target), .index = Tree::Be32(fw->data() + 4)};
  }
  c.no_map = t.Prop(node, "no-map").has_value();
  return c;
}

}  // namespace

HandoffResult ParseFdt(std::span<const uint8_t> blob) {
  // 3.1, 3.2: the blob itself.
  if (blob.size() < 4 || Tree::Be32(blob.data()) != FDT_MAGIC) {
    return Error(ErrorKind::kFdtBadMagic,
                 blob.size() < 4 ? absl::StrCat("device tree of ", blob.size(), " bytes has no magic")
                                 : absl::StrCat("device tree magic is ", Hex(Tree::Be32(blob.data())),
                                                ", want 0xd00dfeed"));
  }
  const Tree t(blob);
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

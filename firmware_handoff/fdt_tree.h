// Internal to firmware_handoff/: a device tree blob copied into an 8-byte
// aligned buffer (libfdt wants alignment; a transfer-list entry's data need
// not have it) and the few typed reads the readers share. Callers check the
// blob with fdt_check_full() (ParseFdt does) before walking it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

extern "C" {
#include <libfdt.h>
}

namespace rmem::firmware_handoff {

class FdtTree {
 public:
  // size / 8 + 1 words: room for every byte, and no overflow to reason about.
  explicit FdtTree(std::span<const uint8_t> blob)
      : words_(blob.size() / 8 + 1), size_(blob.size()) {
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
  // A property holding one non-empty NUL-terminated string; nullopt otherwise.
  std::optional<std::string> String(int node, const char* name) const {
    std::optional<std::span<const uint8_t>> p = Prop(node, name);
    if (!p || !IsSingleString(*p)) return std::nullopt;
    return std::string(reinterpret_cast<const char*>(p->data()));
  }
  // The node a phandle names, or a negative libfdt error (0 and ~0 name none).
  int NodeByPhandle(uint32_t phandle) const {
    if (phandle == 0 || phandle == ~uint32_t{0}) return -FDT_ERR_BADPHANDLE;
    return fdt_node_offset_by_phandle(fdt(), phandle);
  }

  static bool IsSingleString(std::span<const uint8_t> p) {
    if (p.size() < 2 || p.back() != 0 || p.front() == 0) return false;
    return std::find(p.begin(), p.end() - 1, 0) == p.end() - 1;
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

}  // namespace rmem::firmware_handoff

// Our device-initiator binding (docs/bindings/rmem-initiator.yaml): any
// enabled node with `rmem,owner-vm` (or `rmem,max-access`) is a DMA master
// that the named VM owns, known to its bus firewall by
// `access-controllers = <&controller id>`. Read after the carve-out contract
// passed, on the same checked tree, so the contract's verdicts never change.
#include <set>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "firmware_handoff/fdt_tree.h"
#include "firmware_handoff/handoff.h"

namespace rmem::firmware_handoff {
namespace {

constexpr size_t kMaxVmName = 32;

// The names rmemd's configuration accepts for VMs: 1 to 32 of [A-Za-z0-9._-].
bool IsVmName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxVmName) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Linux's of_device_is_available(): no status, "okay" or "ok".
bool Enabled(const FdtTree& t, int node) {
  if (!t.Prop(node, "status")) return true;
  const std::optional<std::string> status = t.String(node, "status");
  return status == "okay" || status == "ok";
}

std::optional<Access> ParseAccess(absl::string_view s) {
  if (s == "read") return Access::kRead;
  if (s == "write") return Access::kWrite;
  if (s == "read-write") return Access::kReadWrite;
  return std::nullopt;
}

std::variant<HandoffInitiator, HandoffError> ReadInitiator(const FdtTree& t, int node) {
  HandoffInitiator i;
  i.node = t.Path(node);
  auto bad = [&](absl::string_view why) {
    return HandoffError{ErrorKind::kRmemBadInitiator, absl::StrCat(i.node, ": ", why)};
  };
  std::optional<std::string> owner = t.String(node, "rmem,owner-vm");
  if (!owner || !IsVmName(*owner)) {
    return bad(
        absl::StrCat("rmem,owner-vm must be one VM name (1 to ", kMaxVmName,
                     " of A-Z a-z 0-9 . _ -)", t.Prop(node, "rmem,owner-vm") ? "" : "; it is missing"));
  }
  i.owner_vm = std::move(*owner);
  std::optional<std::span<const uint8_t>> ac = t.Prop(node, "access-controllers");
  if (!ac || ac->empty() || ac->size() % 8 != 0) {
    return bad(ac ? absl::StrCat("access-controllers is ", ac->size(),
                                 " bytes; want <&controller id> entries (8 bytes each)")
                  : "no access-controllers = <&controller id>: the firewall cannot tell "
                    "this initiator apart");
  }
  for (size_t off = 0; off < ac->size(); off += 8) {
    const uint32_t phandle = FdtTree::Be32(ac->data() + off);
    const int target = t.NodeByPhandle(phandle);
    if (target < 0) {
      return bad(absl::StrCat("access-controllers phandle ", Hex(phandle), " names no node"));
    }
    if (t.Cell(target, "#access-controller-cells") != 1u) {
      return bad(absl::StrCat("access-controllers target ", t.Path(target),
                              " has no #access-controller-cells = <1>"));
    }
    FirewallRef ref{.node = t.Path(target), .index = FdtTree::Be32(ac->data() + off + 4)};
    for (const FirewallRef& earlier : i.firewalls) {
      if (earlier.node == ref.node) {
        return bad(absl::StrCat("access-controllers names ", ref.node,
                                " twice; an initiator has one id per controller"));
      }
    }
    i.firewalls.push_back(std::move(ref));
  }
  if (t.Prop(node, "rmem,max-access")) {
    const std::optional<std::string> s = t.String(node, "rmem,max-access");
    const std::optional<Access> access = s ? ParseAccess(*s) : std::nullopt;
    if (!access) return bad("rmem,max-access must be \"read\", \"write\" or \"read-write\"");
    i.max_access = *access;
  }
  return i;
}

// Every enabled initiator node in tree order, or the first bad one; then no
// two may share a firewall identity (the firewall could not tell them apart).
std::variant<std::vector<HandoffInitiator>, HandoffError> ReadInitiators(const FdtTree& t) {
  std::vector<HandoffInitiator> initiators;
  for (int node = 0; node >= 0; node = fdt_next_node(t.fdt(), node, nullptr)) {
    if (!t.Prop(node, "rmem,owner-vm") && !t.Prop(node, "rmem,max-access")) continue;
    if (!Enabled(t, node)) continue;
    std::variant<HandoffInitiator, HandoffError> i = ReadInitiator(t, node);
    if (auto* e = std::get_if<HandoffError>(&i)) return std::move(*e);
    initiators.push_back(std::move(std::get<HandoffInitiator>(i)));
  }
  absl::flat_hash_map<std::pair<std::string, uint32_t>, size_t> seen;
  for (size_t b = 0; b < initiators.size(); ++b) {
    for (const FirewallRef& fw : initiators[b].firewalls) {
      const auto [it, fresh] = seen.try_emplace(std::make_pair(fw.node, fw.index), b);
      if (!fresh) {
        return HandoffError{ErrorKind::kRmemBadInitiator,
                            absl::StrCat(initiators[it->second].node, " and ", initiators[b].node,
                                         " both use id ", fw.index, " at ", fw.node,
                                         ": the firewall could not tell them apart")};
      }
    }
  }
  return initiators;
}

// The controllers the carve-outs and initiators name (both resolved by
// phandle already, so each node exists).
std::vector<HandoffController> ReadControllers(const FdtTree& t,
                                               const std::vector<HandoffCarveout>& carveouts,
                                               const std::vector<HandoffInitiator>& initiators) {
  std::set<std::string> paths;
  for (const HandoffCarveout& c : carveouts) {
    if (c.firewall) paths.insert(c.firewall->node);
  }
  for (const HandoffInitiator& i : initiators) {
    for (const FirewallRef& f : i.firewalls) paths.insert(f.node);
  }
  std::vector<HandoffController> out;
  for (const std::string& path : paths) {
    HandoffController c{.node = path};
    const int node = fdt_path_offset(t.fdt(), path.c_str());
    if (node >= 0) {
      if (std::optional<std::span<const uint8_t>> p = t.Prop(node, "compatible")) {
        size_t start = 0;
        for (size_t k = 0; k < p->size(); ++k) {
          if ((*p)[k] != 0) continue;
          if (k > start) c.compatible.emplace_back(reinterpret_cast<const char*>(p->data()) + start);
          start = k + 1;
        }
      }
      c.block_size = t.Cell(node, "rmem,block-size");
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

PlatformResult ReadPlatformFromFdt(std::span<const uint8_t> blob) {
  HandoffResult carveouts = ParseFdt(blob);
  if (auto* e = std::get_if<HandoffError>(&carveouts)) return std::move(*e);
  std::variant<std::vector<HandoffInitiator>, HandoffError> initiators =
      ReadInitiators(FdtTree(blob));  // ParseFdt checked the tree
  if (auto* e = std::get_if<HandoffError>(&initiators)) return std::move(*e);
  Platform platform{
      .carveouts = std::move(std::get<std::vector<HandoffCarveout>>(carveouts)),
      .initiators = std::move(std::get<std::vector<HandoffInitiator>>(initiators)),
  };
  platform.controllers = ReadControllers(FdtTree(blob), platform.carveouts, platform.initiators);
  return platform;
}

}  // namespace rmem::firmware_handoff

#include "broker/rmemctl/tables.h"

#include <cinttypes>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "broker/types.h"

namespace rmem::rmemctl {
namespace {

using rmemd::Json;

// Lenient reads of rmemd's JSON (never abort on an unexpected shape).
const Json& Field(const Json& object, const char* key) {
  static const Json kMissing;
  if (!object.is_object()) return kMissing;
  const auto it = object.find(key);
  return it == object.end() ? kMissing : *it;
}
std::string Text(const Json& v) {
  if (v.is_string()) return v.get_ref<const std::string&>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_number_unsigned()) return absl::StrCat(v.get<uint64_t>());
  return "?";
}
std::string Text(const Json& object, const char* key) { return Text(Field(object, key)); }
bool Number(const Json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;
  *out = v.get<uint64_t>();
  return true;
}
std::string HexOf(const Json& object, const char* key, bool zero_is_dash = false) {
  uint64_t v = 0;
  if (!Number(Field(object, key), &v)) return "?";
  return zero_is_dash && v == 0 ? "-" : Hex(v);
}
// "64 MiB", "12 KiB", "4097 B"; null: "unlimited".
std::string Size(const Json& v) {
  if (v.is_null()) return "unlimited";
  uint64_t b = 0;
  if (!Number(v, &b)) return "?";
  if (b != 0 && b % (uint64_t{1} << 30) == 0) return absl::StrCat(b >> 30, " GiB");
  if (b != 0 && b % (uint64_t{1} << 20) == 0) return absl::StrCat(b >> 20, " MiB");
  if (b != 0 && b % (uint64_t{1} << 10) == 0) return absl::StrCat(b >> 10, " KiB");
  return absl::StrCat(b, " B");
}
std::string Size(const Json& object, const char* key) { return Size(Field(object, key)); }
const Json& List(const Json& object, const char* key) {
  static const Json kEmpty = Json::array();
  const Json& v = Field(object, key);
  return v.is_array() ? v : kEmpty;
}
std::string Names(const Json& list) {
  std::vector<std::string> out;
  if (list.is_array()) {
    for (const Json& v : list) out.push_back(Text(v));
  }
  return out.empty() ? "-" : absl::StrJoin(out, ", ");
}

// "decrypt (1)" for a VM id, from the guests of the document.
class VmNames {
 public:
  explicit VmNames(const Json& status) {
    for (const Json& g : List(status, "guests")) {
      uint64_t id = 0;
      if (Number(Field(g, "id"), &id)) names_[id] = Text(g, "name");
    }
  }
  std::string operator()(const Json& id) const {
    uint64_t v = 0;
    if (!Number(id, &v)) return "?";
    auto it = names_.find(v);
    return it == names_.end() ? absl::StrCat("vm ", v) : absl::StrCat(it->second, " (", v, ")");
  }

 private:
  std::map<uint64_t, std::string> names_;
};

std::string ByStatus(const Json& counts) {
  std::vector<std::string> out;
  if (counts.is_object()) {
    for (const auto& [status, n] : counts.items())
      out.push_back(absl::StrCat(status, " ", Text(n)));
  }
  return out.empty() ? "none" : absl::StrJoin(out, ", ");
}

}  // namespace

std::string StatusTable(const Json& status) {
  const VmNames vm(status);
  std::string out;
  const Json& rmemd = Field(status, "rmemd");
  absl::StrAppend(
      &out, "rmemd (pid ", Text(rmemd, "pid"), "): carve-out memory ", Text(rmemd, "memory"),
      "; state ", Field(rmemd, "state").is_null() ? "in memory only" : Text(rmemd, "state"),
      Field(rmemd, "state_behind").is_boolean() && Field(rmemd, "state_behind").get<bool>()
          ? " (a teardown is not recorded yet)"
          : "",
      "\n");

  absl::StrAppend(&out, "\ncarve-outs\n");
  absl::StrAppendFormat(&out, "  %-24s %-14s %-12s %-9s %-18s %s\n", "name", "use-case", "base",
                        "size", "heaps", "firewall");
  for (const Json& c : List(status, "carveouts")) {
    const Json& fw = Field(c, "firewall");
    absl::StrAppendFormat(
        &out, "  %-24s %-14s %-12s %-9s %-18s %s\n", Text(c, "name"), Text(c, "use_case"),
        HexOf(c, "base"), Size(c, "size"), Names(Field(c, "heaps")),
        fw.is_null() ? "none (NOT guarded)"
                     : absl::StrCat(Text(fw, "controller"), " #", Text(fw, "index")));
  }

  absl::StrAppend(&out, "\npools (fragmentation = 1 - largest free run / free)\n");
  absl::StrAppendFormat(&out, "  %-24s %-9s %-9s %-9s %-13s %-6s %s\n", "carve-out", "total",
                        "free", "used", "largest free", "runs", "fragmentation");
  for (const Json& p : List(status, "pools")) {
    const Json& f = Field(p, "fragmentation");
    absl::StrAppendFormat(&out, "  %-24s %-9s %-9s %-9s %-13s %-6s %s\n", Text(p, "carveout"),
                          Size(p, "total"), Size(p, "free"), Size(p, "used"),
                          Size(p, "largest_free_run"), Text(p, "free_runs"),
                          f.is_number() ? absl::StrFormat("%.3f", f.get<double>()) : "?");
  }

  absl::StrAppend(&out, "\nheaps\n");
  absl::StrAppendFormat(&out, "  %-16s %-26s %-10s %-9s %-9s %s\n", "name", "carve-outs", "quota",
                        "owned", "free", "policy");
  for (const Json& h : List(status, "heaps")) {
    std::vector<std::string> policy;
    if (Field(h, "cpu_map").is_boolean() && !Field(h, "cpu_map").get<bool>()) {
      policy.push_back("device-only");
    }
    if (Field(h, "owner_may_revoke").is_boolean() && Field(h, "owner_may_revoke").get<bool>()) {
      policy.push_back("owner may revoke");
    }
    absl::StrAppendFormat(&out, "  %-16s %-26s %-10s %-9s %-9s %s\n", Text(h, "name"),
                          Names(Field(h, "carveouts")), Size(h, "quota"), Size(h, "owned"),
                          Size(h, "free"), policy.empty() ? "-" : absl::StrJoin(policy, ", "));
  }

  absl::StrAppend(&out, "\nguests\n");
  absl::StrAppendFormat(&out, "  %-4s %-14s %-10s %-9s %-10s %-9s %-9s %-9s %s\n", "id", "name",
                        "VMM", "connects", "quota", "owned", "mappings", "requests", "refused");
  for (const Json& g : List(status, "guests")) {
    const bool up = Field(g, "vmm_connected").is_boolean() && Field(g, "vmm_connected").get<bool>();
    absl::StrAppendFormat(&out, "  %-4s %-14s %-10s %-9s %-10s %-9s %-9s %-9s %s\n", Text(g, "id"),
                          Text(g, "name"), up ? "connected" : "-", Text(g, "vmm_connects"),
                          Size(g, "quota"), Size(g, "owned"), Text(g, "mappings"),
                          Text(g, "requests"), ByStatus(Field(g, "refused")));
  }
  for (const Json& g : List(status, "guests")) {
    absl::StrAppend(&out, "  ", Text(g, "name"), ": socket ", Text(g, "socket"), "\n");
  }

  absl::StrAppend(&out, "\nbuffers\n");
  absl::StrAppendFormat(&out, "  %-20s %-14s %-12s %-9s %-18s %-9s %s\n", "id", "heap", "base",
                        "size", "owner", "state", "held by");
  for (const Json& b : List(status, "buffers")) {
    std::vector<std::string> holders;
    for (const Json& h : List(b, "holders")) {
      holders.push_back(absl::StrCat(vm(Field(h, "vm")), " ", Text(h, "rights")));
    }
    absl::StrAppendFormat(&out, "  %-20s %-14s %-12s %-9s %-18s %-9s %s\n", HexOf(b, "id"),
                          Text(b, "heap"), HexOf(b, "base"), Size(b, "size"), vm(Field(b, "owner")),
                          Text(b, "state"),
                          holders.empty() ? "nobody" : absl::StrJoin(holders, "; "));
  }

  absl::StrAppend(&out, "\noffers\n");
  absl::StrAppendFormat(&out, "  %-20s %-9s %-20s %-18s %s\n", "handle", "kind", "buffer", "from",
                        "to");
  for (const Json& o : List(status, "offers")) {
    std::vector<std::string> to;
    for (const Json& r : List(o, "to")) {
      to.push_back(
          absl::StrCat(vm(Field(r, "vm")), " ", Text(r, "rights"), " (", Text(r, "state"), ")"));
    }
    absl::StrAppendFormat(&out, "  %-20s %-9s %-20s %-18s %s\n", HexOf(o, "handle"),
                          Text(o, "kind"), HexOf(o, "buffer"), vm(Field(o, "from")),
                          absl::StrJoin(to, "; "));
  }

  absl::StrAppend(&out, "\ngrants\n");
  absl::StrAppendFormat(&out, "  %-20s %-18s %-9s %-20s %s\n", "buffer", "vm", "as", "rights",
                        "mapped at (region offset)");
  for (const Json& g : List(status, "grants")) {
    absl::StrAppendFormat(
        &out, "  %-20s %-18s %-9s %-20s %s\n", HexOf(g, "buffer"), vm(Field(g, "vm")),
        Text(g, "as"), Text(g, "rights"),
        Field(g, "region_offset").is_null() ? "not mapped" : HexOf(g, "region_offset"));
  }

  absl::StrAppend(&out, "\nfirewall (read from the models' registers)\n");
  for (const Json& r : List(status, "firewall")) {
    std::vector<std::string> who;
    for (const Json& a : List(r, "access")) {
      who.push_back(absl::StrCat(Text(a, "id"), " ", Text(a, "access")));
    }
    uint64_t base = 0, size = 0;
    const bool known = Number(Field(r, "base"), &base) && Number(Field(r, "size"), &size);
    absl::StrAppend(&out, "  ", Text(r, "controller"), " ",
                    known ? absl::StrFormat("[%s, %s)", Hex(base), Hex(base + size)) : "?", ": ",
                    absl::StrJoin(who, ", "), "\n");
  }
  if (List(status, "firewall").empty()) absl::StrAppend(&out, "  no id may access anything\n");

  const Json& counters = Field(status, "counters");
  absl::StrAppend(&out, "\ncounters: requests served ", Text(counters, "requests_served"),
                  ", refused: ", ByStatus(Field(counters, "requests_refused")), ", unanswerable ",
                  Text(counters, "requests_unanswerable"), ", scrubbed ",
                  Size(counters, "bytes_scrubbed"), "\n");
  return out;
}

std::string AuditTable(const Json& entries) {
  std::string out =
      absl::StrFormat("%-8s %-27s %-15s %-7s %-6s %-6s %-20s %-20s %-31s %s\n", "seq", "time (UTC)",
                      "request", "action", "by", "vm", "buffer", "handle", "range", "rights");
  if (!entries.is_array()) return out;
  for (const Json& e : entries) {
    uint64_t base = 0, size = 0;
    const bool known = Number(Field(e, "base"), &base) && Number(Field(e, "size"), &size);
    absl::StrAppendFormat(
        &out, "%-8s %-27s %-15s %-7s %-6s %-6s %-20s %-20s %-31s %s\n", Text(e, "seq"),
        Text(e, "time"), Text(e, "op"), Text(e, "action"), Text(e, "actor_vm"), Text(e, "vm"),
        HexOf(e, "buffer", true), HexOf(e, "handle", true),
        known ? absl::StrFormat("[%s, %s)", Hex(base), Hex(base + size)) : "?", Text(e, "rights"));
  }
  return out;
}

}  // namespace rmem::rmemctl

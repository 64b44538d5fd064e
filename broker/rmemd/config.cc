// The configuration file, read with toml++ (header-only, no exceptions):
// every table is checked for unknown keys, every value for its type, and
// each error names the file and line.
#include "broker/rmemd/config.h"

#include <cctype>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#include <toml++/toml.h>

namespace rmem::rmemd {
namespace {

class Reader {
 public:
  explicit Reader(absl::string_view source) : source_(source) {}

  absl::Status Error(const toml::node& at, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ":", at.source().begin.line, ": ", what));
  }
  absl::Status Error(const toml::table& at, absl::string_view what) const {
    return Error(static_cast<const toml::node&>(at), what);
  }

  // Every key of `table` is in `allowed`.
  absl::Status OnlyKeys(const toml::table& table, absl::string_view where,
                        std::initializer_list<std::string_view> allowed) const {
    for (auto&& [key, node] : table) {
      bool known = false;
      for (std::string_view a : allowed) known = known || key.str() == a;
      if (!known) {
        std::vector<std::string> names(allowed.begin(), allowed.end());
        return Error(node, absl::StrCat("unknown key '", std::string(key.str()), "' in ", where,
                                        " (known: ", absl::StrJoin(names, ", "), ")"));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> String(const toml::table& t, std::string_view key,
                                     absl::string_view where, bool required = true,
                                     std::string fallback = "") const {
    const toml::node* n = t.get(key);
    if (n == nullptr) {
      if (!required) return fallback;
      return Error(t, absl::StrCat(where, " needs '", std::string(key), "'"));
    }
    if (!n->is_string() || n->as_string()->get().empty()) {
      return Error(*n, absl::StrCat("'", std::string(key), "' in ", where, " must be a non-empty string"));
    }
    return n->as_string()->get();
  }

  absl::StatusOr<bool> Bool(const toml::table& t, std::string_view key, absl::string_view where,
                            bool fallback) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return fallback;
    if (!n->is_boolean()) {
      return Error(*n, absl::StrCat("'", std::string(key), "' in ", where, " must be true or false"));
    }
    return n->as_boolean()->get();
  }

  // An integer in [lo, hi].
  absl::StatusOr<int64_t> Int(const toml::table& t, std::string_view key, absl::string_view where,
                              int64_t lo, int64_t hi, std::optional<int64_t> fallback) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) {
      if (fallback) return *fallback;
      return Error(t, absl::StrCat(where, " needs '", std::string(key), "'"));
    }
    if (!n->is_integer() || n->as_integer()->get() < lo || n->as_integer()->get() > hi) {
      return Error(*n, absl::StrCat("'", std::string(key), "' in ", where, " must be an integer from ", lo,
                                    " to ", hi));
    }
    return n->as_integer()->get();
  }

  // A byte count: an integer or a string like "256 MiB".
  absl::StatusOr<uint64_t> Bytes(const toml::table& t, std::string_view key,
                                 absl::string_view where, uint64_t fallback) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return fallback;
    std::optional<uint64_t> v;
    if (n->is_integer() && n->as_integer()->get() >= 0) {
      v = static_cast<uint64_t>(n->as_integer()->get());
    } else if (n->is_string()) {
      v = ParseBytes(n->as_string()->get());
    }
    if (!v) {
      return Error(*n, absl::StrCat("'", std::string(key), "' in ", where,
                                    " must be a byte count such as 4096 or \"256 MiB\""));
    }
    return *v;
  }

  // An array of tables (`[[name]]`); empty when absent.
  absl::StatusOr<std::vector<const toml::table*>> Tables(const toml::table& t,
                                                         std::string_view key) const {
    std::vector<const toml::table*> out;
    const toml::node* n = t.get(key);
    if (n == nullptr) return out;
    const toml::array* a = n->as_array();
    if (a == nullptr) return Error(*n, absl::StrCat("'", std::string(key), "' must be written [[", std::string(key), "]]"));
    for (const toml::node& e : *a) {
      if (!e.is_table()) return Error(e, absl::StrCat("each '", std::string(key), "' must be a table"));
      out.push_back(e.as_table());
    }
    return out;
  }

 private:
  std::string source_;
};

absl::StatusOr<Rights> ParseRights(const Reader& r, const toml::table& t, absl::string_view where) {
  const toml::node* n = t.get("rights");
  if (n == nullptr) return r.Error(t, absl::StrCat(where, " needs 'rights'"));
  const toml::array* a = n->as_array();
  if (a == nullptr || a->empty()) {
    return r.Error(*n, absl::StrCat("'rights' in ", where,
                                    " must be a list such as [\"read\", \"cpu-map\"]"));
  }
  uint8_t bits = 0;
  for (const toml::node& e : *a) {
    const std::string s = e.is_string() ? e.as_string()->get() : "";
    if (s == "read") {
      bits |= Rights::kRead;
    } else if (s == "write") {
      bits |= Rights::kWrite;
    } else if (s == "cpu-map") {
      bits |= Rights::kCpuMap;
    } else {
      return r.Error(e, absl::StrCat("'rights' in ", where,
                                     ": each right is \"read\", \"write\" or \"cpu-map\""));
    }
  }
  return Rights::Of(bits);
}

#define RMEM_ASSIGN(lhs, expr)            \
  do {                                    \
    auto value_ = (expr);                 \
    if (!value_.ok()) return value_.status(); \
    lhs = *std::move(value_);             \
  } while (false)

}  // namespace

std::optional<uint64_t> ParseBytes(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  uint64_t number = 0;
  if (digits == 0 || !absl::SimpleAtoi(text.substr(0, digits), &number)) return std::nullopt;
  const absl::string_view unit = absl::StripAsciiWhitespace(text.substr(digits));
  uint64_t scale = 1;
  if (unit == "KiB") {
    scale = uint64_t{1} << 10;
  } else if (unit == "MiB") {
    scale = uint64_t{1} << 20;
  } else if (unit == "GiB") {
    scale = uint64_t{1} << 30;
  } else if (!unit.empty() && unit != "B") {
    return std::nullopt;
  }
  return CheckedMul(number, scale);
}

absl::StatusOr<RmemdConfig> ParseConfig(absl::string_view text, absl::string_view source) {
  toml::parse_result parsed = toml::parse(std::string_view(text.data(), text.size()),
                                          std::string_view(source.data(), source.size()));
  if (!parsed) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":",
                                                   parsed.error().source().begin.line, ": ",
                                                   std::string(parsed.error().description())));
  }
  const toml::table& root = parsed.table();
  const Reader r(source);
  RmemdConfig config;
  config.source = std::string(source);
  if (absl::Status s = r.OnlyKeys(root, "the file", {"broker", "vm", "heap"}); !s.ok()) return s;

  if (const toml::node* b = root.get("broker")) {
    if (!b->is_table()) return r.Error(*b, "'broker' must be a table: [broker]");
    const toml::table& broker = *b->as_table();
    if (absl::Status s = r.OnlyKeys(broker, "[broker]", {"max_receivers", "control"}); !s.ok()) {
      return s;
    }
    RMEM_ASSIGN(config.max_receivers, r.Int(broker, "max_receivers", "[broker]", 1, 64, 8));
    RMEM_ASSIGN(config.control,
                r.String(broker, "control", "[broker]", /*required=*/false, kDefaultControlPath));
  }

  std::vector<const toml::table*> vms;
  RMEM_ASSIGN(vms, r.Tables(root, "vm"));
  if (vms.empty()) return r.Error(root, "no [[vm]]: rmemd needs at least one guest to serve");
  absl::flat_hash_set<std::string> names, sockets;
  absl::flat_hash_set<uint32_t> ids;
  for (size_t i = 0; i < vms.size(); ++i) {
    const toml::table& t = *vms[i];
    const std::string where = absl::StrCat("[[vm]] #", i + 1);
    if (absl::Status s = r.OnlyKeys(t, where, {"name", "id", "socket", "quota", "region"});
        !s.ok()) {
      return s;
    }
    GuestConfig g;
    RMEM_ASSIGN(g.name, r.String(t, "name", where));
    const std::string named = absl::StrCat("[[vm]] '", g.name, "'");
    int64_t id = 0;
    RMEM_ASSIGN(id, r.Int(t, "id", named, 1, UINT32_MAX, std::nullopt));
    g.id = VmId(static_cast<uint32_t>(id));
    RMEM_ASSIGN(g.socket, r.String(t, "socket", named));
    RMEM_ASSIGN(g.quota_bytes, r.Bytes(t, "quota", named, kUnlimited));
    RMEM_ASSIGN(g.region_bytes, r.Bytes(t, "region", named, kDefaultRegionSize));
    if (g.region_bytes == 0 || g.region_bytes % kPageSize != 0) {
      return r.Error(*t.get("region"), absl::StrCat("'region' in ", named,
                                                    " must be a non-zero multiple of 4 KiB"));
    }
    if (!names.insert(g.name).second) return r.Error(t, absl::StrCat("two VMs named '", g.name, "'"));
    if (!ids.insert(g.id.value()).second) {
      return r.Error(t, absl::StrCat(named, ": id ", id, " is already used"));
    }
    if (!sockets.insert(g.socket).second || g.socket == config.control) {
      return r.Error(t, absl::StrCat(named, ": socket ", g.socket, " is already used",
                                     g.socket == config.control ? " (by [broker] control)" : ""));
    }
    config.guests.push_back(std::move(g));
  }

  std::vector<const toml::table*> heaps;
  RMEM_ASSIGN(heaps, r.Tables(root, "heap"));
  if (heaps.empty()) return r.Error(root, "no [[heap]]: guests would have nothing to allocate");
  absl::flat_hash_set<std::string> heap_names;
  for (size_t i = 0; i < heaps.size(); ++i) {
    const toml::table& t = *heaps[i];
    const std::string where = absl::StrCat("[[heap]] #", i + 1);
    if (absl::Status s = r.OnlyKeys(t, where,
                                    {"name", "carveouts", "cpu_map", "owner_may_revoke", "quota",
                                     "max_align", "vm"});
        !s.ok()) {
      return s;
    }
    HeapFileConfig h;
    RMEM_ASSIGN(h.name, r.String(t, "name", where));
    const std::string named = absl::StrCat("[[heap]] '", h.name, "'");
    if (!heap_names.insert(h.name).second) {
      return r.Error(t, absl::StrCat("two heaps named '", h.name, "'"));
    }
    const toml::node* c = t.get("carveouts");
    const toml::array* uses = c != nullptr ? c->as_array() : nullptr;
    if (uses == nullptr || uses->empty()) {
      return r.Error(c != nullptr ? *c : static_cast<const toml::node&>(t),
                     absl::StrCat(named, " needs 'carveouts': a list of carve-out use-cases "
                                         "(rmem,use-case), e.g. [\"secure-video\"]"));
    }
    for (const toml::node& u : *uses) {
      if (!u.is_string() || u.as_string()->get().empty()) {
        return r.Error(u, absl::StrCat("'carveouts' in ", named, " must list non-empty strings"));
      }
      h.use_cases.push_back(u.as_string()->get());
    }
    RMEM_ASSIGN(h.cpu_map, r.Bool(t, "cpu_map", named, true));
    RMEM_ASSIGN(h.owner_may_revoke, r.Bool(t, "owner_may_revoke", named, false));
    RMEM_ASSIGN(h.quota_bytes, r.Bytes(t, "quota", named, kUnlimited));
    RMEM_ASSIGN(h.max_align, r.Bytes(t, "max_align", named, kDefaultMaxAlign));
    if (!IsPowerOfTwo(h.max_align) || h.max_align < kPageSize) {
      return r.Error(*t.get("max_align"), absl::StrCat("'max_align' in ", named,
                                                       " must be a power of two of at least 4 KiB"));
    }
    std::vector<const toml::table*> access;
    RMEM_ASSIGN(access, r.Tables(t, "vm"));
    for (size_t j = 0; j < access.size(); ++j) {
      const toml::table& a = *access[j];
      const std::string awhere = absl::StrCat(named, " [[heap.vm]] #", j + 1);
      if (absl::Status s = r.OnlyKeys(a, awhere, {"name", "allocate", "rights", "quota"});
          !s.ok()) {
        return s;
      }
      HeapGuestConfig hg;
      RMEM_ASSIGN(hg.vm, r.String(a, "name", awhere));
      if (!names.contains(hg.vm)) {
        return r.Error(a, absl::StrCat(awhere, " names VM '", hg.vm, "', which no [[vm]] defines"));
      }
      RMEM_ASSIGN(hg.allocate, r.Bool(a, "allocate", awhere, false));
      RMEM_ASSIGN(hg.rights, ParseRights(r, a, awhere));
      RMEM_ASSIGN(hg.quota_bytes, r.Bytes(a, "quota", awhere, kUnlimited));
      h.guests.push_back(std::move(hg));
    }
    config.heaps.push_back(std::move(h));
  }
  return config;
}

absl::StatusOr<RmemdConfig> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read the configuration ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

}  // namespace rmem::rmemd

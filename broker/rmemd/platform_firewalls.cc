// The platform's firewalls: a driver per controller, grants routed by
// carve-out. See platform_firewalls.h.
#include "broker/rmemd/platform_firewalls.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/backend/firewall/block_controller_model.h"
#include "broker/backend/firewall/block_firewall.h"
#include "broker/backend/firewall/tzc400_firewall.h"
#include "broker/backend/firewall/tzc400_model.h"
#include "broker/check.h"

namespace rmem::rmemd {

namespace {
constexpr char kTzc400[] = "arm,tzc-400";
constexpr char kBlockModel[] = "rmem,block-firewall-model";
constexpr uint32_t kDefaultBlockSize = 64 * 1024;

bool Has(const std::vector<std::string>& list, const char* s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}
}  // namespace

struct PlatformFirewalls::Controller {
  std::string node;
  std::string what;  // "TZC-400 MODEL ..." for the log
  std::unique_ptr<FirewallModel> model;
  std::unique_ptr<Firewall> driver;
  absl::flat_hash_map<InitiatorId, uint32_t> ids;
  // Grants to initiators this controller cannot identify: nothing to program.
  absl::flat_hash_map<InitiatorId, std::vector<PageRange>> unreachable;
};

PlatformFirewalls::PlatformFirewalls() = default;
PlatformFirewalls::~PlatformFirewalls() = default;

absl::StatusOr<std::unique_ptr<PlatformFirewalls>> PlatformFirewalls::Create(
    const firmware_handoff::Platform& platform, const BrokerSetup& setup) {
  RMEM_CHECK(platform.carveouts.size() == setup.carveouts.size());
  RMEM_CHECK(platform.initiators.size() == setup.policy.initiators.size());
  std::unique_ptr<PlatformFirewalls> fw(new PlatformFirewalls());
  for (const firmware_handoff::HandoffController& hc : platform.controllers) {
    auto c = std::make_unique<Controller>();
    c->node = hc.node;
    for (size_t i = 0; i < platform.initiators.size(); ++i) {
      for (const firmware_handoff::FirewallRef& ref : platform.initiators[i].firewalls) {
        if (ref.node == hc.node) c->ids.emplace(setup.policy.initiators[i].id, ref.index);
      }
    }
    std::vector<size_t> guarded;  // carve-out indices
    for (size_t i = 0; i < platform.carveouts.size(); ++i) {
      const auto& ref = platform.carveouts[i].firewall;
      if (ref && ref->node == hc.node) guarded.push_back(i);
    }
    std::vector<std::string> names;
    for (size_t i : guarded) names.push_back(setup.carveouts[i].name);
    auto pages = [&](size_t i) {
      return *PageRange::FromBytes(setup.carveouts[i].base, setup.carveouts[i].size);
    };
    if (Has(hc.compatible, kTzc400)) {
      auto model = std::make_unique<Tzc400Model>();
      // Every carve-out behind it names the first region rmemd may use.
      std::vector<Tzc400Firewall::Guarded> behind;
      uint32_t first = 0;
      for (size_t i : guarded) {
        const uint32_t index = platform.carveouts[i].firewall->index;
        if (first != 0 && index != first) {
          return absl::InvalidArgumentError(absl::StrCat(
              "firewall ", hc.node, ": its carve-outs name regions ", first, " and ", index,
              " as the first rmemd may use (rmem,firewall); a TZC-400's carve-outs all name the "
              "same one"));
        }
        first = index;
        behind.push_back({setup.carveouts[i].name, pages(i)});
      }
      if (first == 0) first = 1;  // initiators only: every region is rmemd's
      absl::StatusOr<std::unique_ptr<Tzc400Firewall>> driver =
          Tzc400Firewall::Create(hc.node, model.get(), std::move(behind), first, c->ids);
      if (!driver.ok()) return driver.status();
      c->what = absl::StrCat("TZC-400 MODEL, guarding ",
                             names.empty() ? "nothing" : absl::StrJoin(names, ", "), "; regions ",
                             first, " to 8 are rmemd's: ", (*driver)->grant_region_count(),
                             " grant regions");
      c->model = std::move(model);
      c->driver = *std::move(driver);
    } else if (Has(hc.compatible, kBlockModel)) {
      const uint64_t block = hc.block_size.value_or(kDefaultBlockSize);
      uint64_t lo = UINT64_MAX, hi = 0;
      std::vector<PageRange> ranges;
      for (size_t i : guarded) {
        ranges.push_back(pages(i));
        lo = std::min(lo, ranges.back().base().value());
        hi = std::max(hi, ranges.back().end().addr().value());
      }
      if (ranges.empty()) lo = hi = 0;
      if (block < kPageSize || (block & (block - 1)) != 0 || lo % block != 0 || hi % block != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "firewall ", hc.node, ": rmem,block-size ", block,
            " must be a power of two of at least 4096 that its carve-outs start and end on"));
      }
      auto model = std::make_unique<BlockControllerModel>(BlockControllerModel::Options{
          .window_base = lo, .window_size = std::max<uint64_t>(hi - lo, block),
          .block_size = block});
      absl::StatusOr<std::unique_ptr<BlockFirewall>> driver =
          BlockFirewall::Create(model.get(), ranges, c->ids);
      if (!driver.ok()) {
        return absl::Status(driver.status().code(),
                            absl::StrCat("firewall ", hc.node, ": ", driver.status().message()));
      }
      c->what = absl::StrCat("block-granular controller MODEL (", block / 1024,
                             " KiB blocks), guarding ",
                             names.empty() ? "nothing" : absl::StrJoin(names, ", "));
      c->model = std::move(model);
      c->driver = *std::move(driver);
    } else {
      return absl::FailedPreconditionError(absl::StrCat(
          "firewall ", hc.node, " (compatible ",
          hc.compatible.empty() ? "none" : absl::StrJoin(hc.compatible, ", "),
          ") has no driver in rmemd (it knows ", kTzc400, " and ", kBlockModel, ")",
          names.empty() ? "" : absl::StrCat(": carve-outs ", absl::StrJoin(names, ", "),
                                            " would be unguarded")));
    }
    for (size_t i : guarded) {
      fw->carveouts_.push_back({pages(i), c.get(), platform.carveouts[i].firewall->index});
    }
    fw->controllers_.push_back(std::move(c));
  }
  for (size_t i = 0; i < platform.carveouts.size(); ++i) {
    if (!platform.carveouts[i].firewall) {
      fw->carveouts_.push_back(
          {*PageRange::FromBytes(setup.carveouts[i].base, setup.carveouts[i].size), nullptr, 0});
    }
  }
  return fw;
}

absl::StatusOr<PlatformFirewalls::Controller*> PlatformFirewalls::Route(PageRange pages) const {
  for (const GuardedCarveout& g : carveouts_) {
    if (g.pages.Contains(pages)) return g.controller;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(pages.ToString(), " is not inside one carve-out"));
}

absl::Status PlatformFirewalls::Grant(InitiatorId initiator, PageRange pages, Access access) {
  absl::StatusOr<Controller*> c = Route(pages);
  if (!c.ok()) return c.status();
  if (*c == nullptr) return unguarded_.Grant(initiator, pages, access);
  if (!(*c)->ids.contains(initiator)) {
    (*c)->unreachable[initiator].push_back(pages);
    return absl::OkStatus();
  }
  return (*c)->driver->Grant(initiator, pages, access);
}

void PlatformFirewalls::Revoke(InitiatorId initiator, PageRange pages) {
  absl::StatusOr<Controller*> c = Route(pages);
  RMEM_CHECK(c.ok() && "revoke outside every carve-out");
  if (*c == nullptr) return unguarded_.Revoke(initiator, pages);
  if (!(*c)->ids.contains(initiator)) {
    std::vector<PageRange>& list = (*c)->unreachable[initiator];
    auto it = std::find(list.begin(), list.end(), pages);
    RMEM_CHECK(it != list.end() && "revoke of a grant never made");
    list.erase(it);
    return;
  }
  (*c)->driver->Revoke(initiator, pages);
}

std::vector<std::string> PlatformFirewalls::Describe() const {
  std::vector<std::string> out;
  for (const auto& c : controllers_) {
    out.push_back(absl::StrCat(c->node, ": ", c->what,
                               " (this machine has no such hardware: rmemd programs the model's "
                               "registers as it would the hardware's, and DMA masters are NOT "
                               "restricted)"));
  }
  std::vector<std::string> unguarded;
  for (const GuardedCarveout& g : carveouts_) {
    if (g.controller == nullptr) unguarded.push_back(g.pages.ToString());
  }
  if (!unguarded.empty()) {
    out.push_back(absl::StrCat("carve-outs ", absl::StrJoin(unguarded, ", "),
                               " have no rmem,firewall: device-initiator grants there are "
                               "recorded, NOT enforced"));
  }
  return out;
}

std::vector<PlatformFirewalls::AccessRun> PlatformFirewalls::AccessRuns() const {
  constexpr uint32_t kIds = 16;
  std::vector<AccessRun> out;
  for (const GuardedCarveout& g : carveouts_) {
    if (g.controller == nullptr || g.controller->model == nullptr) continue;
    const FirewallModel& hw = *g.controller->model;
    auto access_at = [&](uint64_t address) {
      std::vector<std::pair<uint32_t, Access>> ids;
      for (uint32_t id = 0; id < kIds; ++id) {
        Access a = Access::kNone;
        if (hw.Permits({.address = address, .write = false, .id = id})) a = a | Access::kRead;
        if (hw.Permits({.address = address, .write = true, .id = id})) a = a | Access::kWrite;
        if (a != Access::kNone) ids.emplace_back(id, a);
      }
      return ids;
    };
    auto flush = [&](uint64_t from, uint64_t to, std::vector<std::pair<uint32_t, Access>> ids) {
      if (ids.empty()) return;
      out.push_back(AccessRun{.controller = g.controller->node,
                              .pages = *PageRange::FromBytes(PhysAddr(from), to - from),
                              .ids = std::move(ids)});
    };
    uint64_t run_start = g.pages.base().value();
    std::vector<std::pair<uint32_t, Access>> run = access_at(run_start);
    for (uint64_t p = g.pages.first().value() + 1; p < g.pages.end().value(); ++p) {
      const uint64_t address = Pfn(p).addr().value();
      std::vector<std::pair<uint32_t, Access>> here = access_at(address);
      if (here == run) continue;
      flush(run_start, address, std::move(run));
      run_start = address;
      run = std::move(here);
    }
    flush(run_start, g.pages.end().addr().value(), std::move(run));
  }
  return out;
}

std::vector<std::string> PlatformFirewalls::AccessMap() const {
  std::vector<std::string> out;
  for (const AccessRun& r : AccessRuns()) {
    std::vector<std::string> who;
    for (const auto& [id, access] : r.ids) who.push_back(absl::StrCat(id, " ", AccessName(access)));
    out.push_back(
        absl::StrCat(r.controller, " ", r.pages.ToString(), ": ", absl::StrJoin(who, ", ")));
  }
  return out;
}

std::optional<PlatformFirewalls::Guard> PlatformFirewalls::GuardOf(PageRange carveout) const {
  for (const GuardedCarveout& g : carveouts_) {
    if (g.pages == carveout && g.controller != nullptr) {
      return Guard{.controller = g.controller->node, .index = g.index};
    }
  }
  return std::nullopt;
}

FirewallModel* PlatformFirewalls::model(const std::string& node) const {
  for (const auto& c : controllers_) {
    if (c->node == node) return c->model.get();
  }
  return nullptr;
}

}  // namespace rmem::rmemd

// The TZC-400 driver: probe, one grant region per granted range. See
// tzc400_firewall.h.
#include "broker/backend/firewall/tzc400_firewall.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "broker/backend/firewall/tzc400_registers.h"
#include "broker/check.h"

namespace rmem {
namespace {

using namespace tzc400;  // NOLINT: the register map reads better unqualified

uint64_t Low(uint64_t v) { return v & 0xffffffffu; }
uint64_t High(uint64_t v) { return v >> 32; }
// The inclusive top byte a region needs to cover `pages`.
uint64_t TopOf(PageRange pages) { return pages.end().addr().value() - 1; }

uint16_t ReadIds(uint32_t id_access) { return static_cast<uint16_t>(id_access >> kIdReadShift); }
uint16_t WriteIds(uint32_t id_access) { return static_cast<uint16_t>(id_access >> kIdWriteShift); }

}  // namespace

absl::StatusOr<std::unique_ptr<Tzc400Firewall>> Tzc400Firewall::Create(
    std::string name, RegisterBus* bus, std::vector<Guarded> carveouts, uint32_t first_region,
    absl::flat_hash_map<InitiatorId, uint32_t> ids) {
  RMEM_CHECK(bus != nullptr);
  for (const auto& [ini, nsaid] : ids) {
    if (nsaid >= kNsaids) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": initiator ", ini.value(), " has NSAID ",
                                                     nsaid, "; a TZC-400 has NSAIDs 0 to 15"));
    }
  }
  auto fw = std::unique_ptr<Tzc400Firewall>(
      new Tzc400Firewall(std::move(name), bus, std::move(carveouts), std::move(ids)));
  if (absl::Status s = fw->Probe(first_region); !s.ok()) return s;
  return fw;
}

uint32_t Tzc400Firewall::Read(uint32_t offset) { return bus_->Read32(offset); }

void Tzc400Firewall::Write(uint32_t offset, uint32_t value) {
  ++writes_;
  bus_->Write32(offset, value);
}

bool Tzc400Firewall::WriteChecked(uint32_t offset, uint32_t value) {
  Write(offset, value);
  return Read(offset) == value;
}

bool Tzc400Firewall::WriteRange(uint32_t region, PageRange pages) {
  // base[11:0] reads as zero and top[11:0] as ones: page-aligned values
  // read back exactly.
  const uint64_t base = pages.base().value(), top = TopOf(pages);
  return WriteChecked(RegionBaseLow(region), static_cast<uint32_t>(Low(base))) &&
         WriteChecked(RegionBaseHigh(region), static_cast<uint32_t>(High(base))) &&
         WriteChecked(RegionTopLow(region), static_cast<uint32_t>(Low(top))) &&
         WriteChecked(RegionTopHigh(region), static_cast<uint32_t>(High(top)));
}

absl::Status Tzc400Firewall::Probe(uint32_t first_region) {
  const uint32_t part = (Read(kPid0) & 0xff) | ((Read(kPid1) & 0xf) << 8);
  if (part != kPartNumber) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: not a TZC-400 (peripheral part number %#x, expected %#x)", name_, part, kPartNumber));
  }
  const uint32_t build = Read(kBuildConfig);
  const uint32_t regions = ((build >> kBuildNoOfRegionsShift) & kBuildNoOfRegionsMask) + 1;
  const uint32_t filters = ((build >> kBuildNoOfFiltersShift) & kBuildNoOfFiltersMask) + 1;
  const uint32_t address_width = ((build >> kBuildAddressWidthShift) & kBuildAddressWidthMask) + 1;
  filter_mask_ = (1u << filters) - 1;
  const uint64_t limit = address_width >= 64 ? ~uint64_t{0} : (uint64_t{1} << address_width) - 1;
  if (first_region == 0 || first_region >= regions) {
    return absl::InvalidArgumentError(absl::StrCat(
        name_, ": the carve-outs name region ", first_region,
        " as the first rmemd may use; this TZC-400 has regions 1 to ", regions - 1));
  }
  for (const Guarded& g : carveouts_) {
    if (g.pages.empty() || TopOf(g.pages) > limit) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": carve-out ", g.name, " ",
                                                     g.pages.ToString(), " lies beyond the ",
                                                     address_width, "-bit address space"));
    }
  }

  // Region 0 decides wherever no region matches -- every carve-out page
  // that is not granted: it must let no NSAID in.
  const uint32_t background = Read(RegionIdAccess(0));
  if (background != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: region 0 lets NSAIDs in (id access %#x): every carve-out page rmemd has not granted "
        "would be open to them; firmware must close region 0 to non-secure masters and give "
        "normal memory regions below %u",
        name_, background, first_region));
  }
  secure_bits_ = Read(RegionAttributes(0)) & (kAttrSecureReadEnable | kAttrSecureWriteEnable);

  for (uint32_t r = 1; r < regions; ++r) {
    const bool enabled = (Read(RegionAttributes(r)) & filter_mask_) != 0;
    if (r >= first_region) {
      // Ours. One left enabled by an earlier run grants nothing now.
      if (enabled && !WriteChecked(RegionAttributes(r), 0)) {
        return absl::InternalError(absl::StrCat(name_, ": region ", r, " would not disable"));
      }
      grant_regions_.push_back(Slot{.region = r});
      continue;
    }
    if (!enabled) continue;
    // Firmware's: it must stay clear of the carve-outs.
    const uint64_t base = (uint64_t{Read(RegionBaseHigh(r))} << 32) | Read(RegionBaseLow(r));
    const uint64_t top = (uint64_t{Read(RegionTopHigh(r))} << 32) | Read(RegionTopLow(r));
    for (const Guarded& g : carveouts_) {
      if (base <= TopOf(g.pages) && g.pages.base().value() <= top) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "%s: firmware's region %u [%#x, %#x] overlaps carve-out %s %s: the carve-out must "
            "be left to region 0 (closed) and rmemd's regions %u and up",
            name_, r, base, top, g.name, g.pages.ToString(), first_region));
      }
    }
  }
  // Faults interrupt and fail the access; every filter's gate opens once
  // the carve-outs are known closed.
  Write(kAction, kActionHighDecerr);
  Write(kGateKeeper, filter_mask_ << kGateOpenRequestShift);
  const uint32_t open = (Read(kGateKeeper) >> kGateOpenStatusShift) & filter_mask_;
  if (open != filter_mask_) {
    return absl::InternalError(absl::StrFormat("%s: filters' gates did not open (status %#x)",
                                               name_, open));
  }
  return absl::OkStatus();
}

bool Tzc400Firewall::InOneCarveout(PageRange pages) const {
  for (const Guarded& g : carveouts_) {
    if (g.pages.Contains(pages)) return true;
  }
  return false;
}

std::string Tzc400Firewall::Where(PageRange pages) const {
  return absl::StrCat(name_, " (TZC-400), ", pages.ToString());
}

uint32_t Tzc400Firewall::IdAccessOf(const Slot& slot) const {
  uint16_t read = 0, write = 0;
  for (const GrantRecord& g : slot.grants) {
    const uint16_t bit = static_cast<uint16_t>(1u << ids_.at(g.initiator));
    if (Covers(g.access, Access::kRead)) read |= bit;
    if (Covers(g.access, Access::kWrite)) write |= bit;
  }
  return IdAccess(read, write);
}

absl::Status Tzc400Firewall::Grant(InitiatorId initiator, PageRange pages, Access access) {
  RMEM_CHECK(access != Access::kNone && !pages.empty());
  if (!ids_.contains(initiator)) {
    return absl::NotFoundError(
        absl::StrCat(Where(pages), ": initiator ", initiator.value(), " has no NSAID here"));
  }
  if (!InOneCarveout(pages)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(pages), ": not inside one carve-out this controller guards"));
  }
  Slot* slot = nullptr;
  Slot* free_slot = nullptr;
  for (Slot& s : grant_regions_) {
    if (!s.pages) {
      if (free_slot == nullptr) free_slot = &s;
    } else if (*s.pages == pages) {
      slot = &s;
    } else if (s.pages->Overlaps(pages)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          Where(pages), ": overlaps region ", s.region, "'s ", s.pages->ToString(),
          " without being equal to it; a region per range cannot express that without widening"
          " someone's rights"));
    }
  }

  if (slot != nullptr) {
    // Another initiator on a live range: one write of the id bitmaps.
    const uint32_t before = IdAccessOf(*slot);
    slot->grants.push_back({initiator, access});
    const uint32_t after = IdAccessOf(*slot);
    if (after != before && !WriteChecked(RegionIdAccess(slot->region), after)) {
      // Back to exactly what it was, or rmemd cannot vouch for the range.
      slot->grants.pop_back();
      RMEM_CHECK(WriteChecked(RegionIdAccess(slot->region), before) &&
                 "a TZC-400 region's id access is neither the old nor the new value");
      return absl::InternalError(absl::StrCat(Where(pages), ": region ", slot->region,
                                              " did not take its id access"));
    }
    return absl::OkStatus();
  }

  if (free_slot == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        Where(pages), ": all ", grant_regions_.size(),
        " grant regions are in use (one per buffer that device initiators may reach); "
        "free or relinquish a buffer, or use a block-granular firewall for many buffers"));
  }
  // A fresh region: range and ids while disabled, read back, then enable.
  // Its range leaves region 0, so it carries region 0's Secure-world bits:
  // the Secure world's view does not change.
  Slot& s = *free_slot;
  s.grants = {{initiator, access}};
  if (!WriteRange(s.region, pages) || !WriteChecked(RegionIdAccess(s.region), IdAccessOf(s)) ||
      !WriteChecked(RegionAttributes(s.region), secure_bits_ | filter_mask_)) {
    // The region must end disabled, or rmemd cannot vouch for the range.
    RMEM_CHECK(WriteChecked(RegionAttributes(s.region), 0) &&
               "a TZC-400 region that did not take its values would not disable");
    Write(RegionIdAccess(s.region), IdAccess(0, 0));
    s.grants.clear();
    return absl::InternalError(
        absl::StrCat(Where(pages), ": region ", s.region, " did not take its values"));
  }
  s.pages = pages;
  return absl::OkStatus();
}

void Tzc400Firewall::Revoke(InitiatorId initiator, PageRange pages) {
  auto slot = std::find_if(grant_regions_.begin(), grant_regions_.end(),
                           [&](const Slot& s) { return s.pages && *s.pages == pages; });
  RMEM_CHECK(slot != grant_regions_.end() && "revoke of a range never granted");
  auto g = std::find_if(slot->grants.begin(), slot->grants.end(),
                        [&](const GrantRecord& r) { return r.initiator == initiator; });
  RMEM_CHECK(g != slot->grants.end() && "revoke of a grant never made");
  const uint32_t before = IdAccessOf(*slot);
  slot->grants.erase(g);
  if (slot->grants.empty()) {
    // The range falls back to region 0: nobody.
    RMEM_CHECK(WriteChecked(RegionAttributes(slot->region), 0) &&
               "a TZC-400 region would not disable: cannot take access back");
    slot->pages.reset();
    return;
  }
  const uint32_t after = IdAccessOf(*slot);
  if (after != before) {
    RMEM_CHECK(WriteChecked(RegionIdAccess(slot->region), after) &&
               "a TZC-400 region would not narrow: cannot take access back");
  }
}

std::vector<Tzc400Firewall::RegionView> Tzc400Firewall::regions() const {
  std::vector<RegionView> out;
  for (const Slot& s : grant_regions_) {
    if (!s.pages) continue;
    const uint32_t ids = IdAccessOf(s);
    out.push_back({s.region, *s.pages, ReadIds(ids), WriteIds(ids), s.grants.size()});
  }
  return out;
}

}  // namespace rmem

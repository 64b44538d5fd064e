// BlockFirewall: geometry discovery, probe, and grant/revoke as per-block
// permission words (check, plan, write with read-back, commit).
#include "broker/backend/firewall/block_firewall.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/check.h"
#include "broker/types.h"

namespace rmem {

namespace bc = block_controller;

namespace {

// "64 KiB", "2 MiB".
std::string SizeName(uint64_t bytes) {
  if (bytes % (uint64_t{1} << 20) == 0) return absl::StrCat(bytes >> 20, " MiB");
  return absl::StrCat(bytes >> 10, " KiB");
}

}  // namespace

absl::StatusOr<BlockFirewall::Geometry> BlockFirewall::ReadGeometry(RegisterBus* bus) {
  const uint32_t config = bus->Read32(bc::kConfig);
  const uint32_t revision = (config >> bc::kConfigRevisionShift) & bc::kConfigRevisionMask;
  if (revision != bc::kMapRevision) {
    return absl::UnimplementedError(absl::StrCat("block firewall: register map revision ",
                                                 revision, " (driver knows revision ",
                                                 bc::kMapRevision, ")"));
  }
  Geometry g;
  g.block_shift = (config >> bc::kConfigBlockShiftShift) & bc::kConfigBlockShiftMask;
  g.domains = (config >> bc::kConfigDomainsShift) & bc::kConfigDomainsMask;
  g.block_count = bus->Read32(bc::kBlockCount);
  g.window_base = uint64_t{bus->Read32(bc::kWindowBaseLow)} |
                  (uint64_t{bus->Read32(bc::kWindowBaseHigh)} << 32);
  if (g.block_shift < bc::kMinBlockShift || g.block_shift >= 64) {
    return absl::FailedPreconditionError(
        absl::StrCat("block firewall: CONFIG reports log2(block size) ", g.block_shift));
  }
  if (g.domains == 0 || g.domains > bc::kDomains) {
    return absl::FailedPreconditionError(
        absl::StrCat("block firewall: CONFIG reports ", g.domains, " domains"));
  }
  if (g.block_count == 0 || g.block_count > bc::kMaxBlocks) {
    return absl::FailedPreconditionError(
        absl::StrCat("block firewall: BLOCK_COUNT reports ", g.block_count, " blocks"));
  }
  const uint64_t block_size = uint64_t{1} << g.block_shift;
  const std::optional<uint64_t> size = CheckedMul(g.block_count, block_size);
  const std::optional<uint64_t> end = size ? CheckedAdd(g.window_base, *size) : std::nullopt;
  if (g.window_base % block_size != 0 || !end) {
    return absl::FailedPreconditionError(
        absl::StrCat("block firewall: window at ", Hex(g.window_base), " of ", g.block_count,
                     " blocks of ", SizeName(block_size), " is not addressable"));
  }
  return g;
}

absl::StatusOr<std::unique_ptr<BlockFirewall>> BlockFirewall::Create(
    RegisterBus* bus, std::vector<PageRange> guarded,
    absl::flat_hash_map<InitiatorId, uint32_t> domains) {
  absl::StatusOr<Geometry> g = ReadGeometry(bus);
  if (!g.ok()) return g.status();
  const uint64_t block_size = uint64_t{1} << g->block_shift;
  const uint64_t block_pages = block_size >> kPageShift;
  const uint64_t window_end = g->window_base + (uint64_t{g->block_count} << g->block_shift);
  // Compared in page frames: a range's end address may not fit in 64 bits.
  const uint64_t window_first_pfn = g->window_base >> kPageShift;
  const uint64_t window_end_pfn = window_end >> kPageShift;

  std::sort(guarded.begin(), guarded.end(),
            [](const PageRange& a, const PageRange& b) { return a.first() < b.first(); });
  for (size_t i = 0; i < guarded.size(); ++i) {
    const PageRange& r = guarded[i];
    const uint64_t first = r.first().value(), end = r.end().value();
    if (r.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("block firewall: guarded range ", r.ToString(), " is empty"));
    }
    if (first < window_first_pfn || end > window_end_pfn) {
      return absl::InvalidArgumentError(absl::StrCat(
          "block firewall: guarded range ", r.ToString(), " is outside the controller's window ",
          absl::StrFormat("[%#x, %#x)", g->window_base, window_end)));
    }
    if (first % block_pages != 0 || end % block_pages != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("block firewall: guarded range ", r.ToString(),
                       " does not start and end on ", SizeName(block_size), " block boundaries"));
    }
    if (i > 0 && guarded[i - 1].Overlaps(r)) {
      return absl::InvalidArgumentError(absl::StrCat("block firewall: guarded ranges ",
                                                     guarded[i - 1].ToString(), " and ",
                                                     r.ToString(), " overlap"));
    }
  }
  absl::flat_hash_map<uint32_t, InitiatorId> owner_of_domain;
  for (const auto& [initiator, domain] : domains) {
    if (domain >= g->domains) {
      return absl::InvalidArgumentError(
          absl::StrCat("block firewall: initiator ", Hex(initiator.value()), " has domain ",
                       domain, "; the controller has ", g->domains));
    }
    auto [it, inserted] = owner_of_domain.emplace(domain, initiator);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          "block firewall: initiators ", Hex(it->second.value()), " and ",
          Hex(initiator.value()), " share domain ", domain));
    }
  }

  std::unique_ptr<BlockFirewall> firewall(
      new BlockFirewall(bus, *g, std::move(guarded), std::move(domains)));
  absl::Status probed = firewall->Probe();
  if (!probed.ok()) return probed;
  return firewall;
}

BlockFirewall::BlockFirewall(RegisterBus* bus, const Geometry& geometry,
                             std::vector<PageRange> guarded,
                             absl::flat_hash_map<InitiatorId, uint32_t> domains)
    : bus_(bus),
      window_base_(geometry.window_base),
      block_shift_(geometry.block_shift),
      guarded_(std::move(guarded)),
      domains_(std::move(domains)),
      words_(geometry.block_count, 0),
      refs_(geometry.block_count, BitRefs{}) {}

absl::Status BlockFirewall::Probe() {
  // Blocks first, then enable: an enabled controller never sees a guarded
  // block with firmware's leftover permissions.
  for (const PageRange& r : guarded_) {
    const uint32_t first = BlockOf(r), n = BlocksIn(r);
    for (uint32_t b = first; b < first + n; ++b) {
      if (!WriteBlock(b, 0)) {
        return absl::InternalError(
            absl::StrCat("block firewall: probe could not clear block ", b, " (",
                         Hex(window_base_ + (uint64_t{b} << block_shift_)), ")"));
      }
    }
  }
  const uint32_t ctrl = bc::kCtrlEnable | bc::kCtrlFaultIrq | bc::kCtrlFaultErr;
  Write(bc::kCtrl, ctrl);
  if ((bus_->Read32(bc::kCtrl) & ctrl) != ctrl) {
    return absl::InternalError("block firewall: probe could not enable the controller");
  }
  return absl::OkStatus();
}

void BlockFirewall::Write(uint32_t offset, uint32_t value) {
  ++register_writes_;
  bus_->Write32(offset, value);
}

bool BlockFirewall::WriteBlock(uint32_t block, uint32_t word) {
  Write(bc::BlockPerm(block), word);
  return bus_->Read32(bc::BlockPerm(block)) == word;
}

absl::Status BlockFirewall::Apply(const std::vector<BlockWrite>& plan) {
  for (size_t i = 0; i < plan.size(); ++i) {
    if (WriteBlock(plan[i].block, plan[i].new_word)) continue;
    for (size_t j = i + 1; j-- > 0;) {
      // A restore that does not take leaves a block wider than any grant:
      // we cannot report it, and must not run on with it.
      RMEM_CHECK(WriteBlock(plan[j].block, plan[j].old_word));
    }
    return absl::InternalError(
        absl::StrCat("block firewall: the write to block ", plan[i].block, " (",
                     Hex(window_base_ + (uint64_t{plan[i].block} << block_shift_)),
                     ") did not take; rolled back"));
  }
  return absl::OkStatus();
}

uint32_t BlockFirewall::BlockOf(PageRange pages) const {
  return static_cast<uint32_t>((pages.base().value() - window_base_) >> block_shift_);
}

uint32_t BlockFirewall::BlocksIn(PageRange pages) const {
  return static_cast<uint32_t>(pages.size_bytes() >> block_shift_);
}

bool BlockFirewall::OnBlockBoundaries(PageRange pages) const {
  const uint64_t block_pages = block_size() >> kPageShift;
  return pages.first().value() % block_pages == 0 && pages.end().value() % block_pages == 0;
}

bool BlockFirewall::IsGuarded(PageRange pages) const {
  return std::any_of(guarded_.begin(), guarded_.end(),
                     [&](const PageRange& r) { return r.Contains(pages); });
}

uint32_t BlockFirewall::Bits(uint32_t domain, Access access) {
  uint32_t bits = 0;
  if (Covers(access, Access::kRead)) bits |= bc::ReadBit(domain);
  if (Covers(access, Access::kWrite)) bits |= bc::WriteBit(domain);
  return bits;
}

absl::Status BlockFirewall::Grant(InitiatorId initiator, PageRange pages, Access access) {
  RMEM_CHECK(access != Access::kNone);
  auto domain = domains_.find(initiator);
  if (domain == domains_.end()) {
    return absl::NotFoundError(absl::StrCat("block firewall: initiator ",
                                            Hex(initiator.value()), " has no domain here"));
  }
  if (pages.empty() || !IsGuarded(pages)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block firewall: pages ", pages.ToString(), " are not inside one guarded range"));
  }
  if (!OnBlockBoundaries(pages)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "block firewall: pages ", pages.ToString(), " do not start and end on ",
        SizeName(block_size()), " block boundaries; granting the whole blocks would widen "
        "initiator ", Hex(initiator.value()), "'s rights beyond them"));
  }

  const uint32_t bits = Bits(domain->second, access);
  const uint32_t first = BlockOf(pages), n = BlocksIn(pages);
  std::vector<BlockWrite> plan;
  for (uint32_t b = first; b < first + n; ++b) {
    if ((words_[b] | bits) != words_[b]) plan.push_back({b, words_[b], words_[b] | bits});
  }
  if (absl::Status s = Apply(plan); !s.ok()) return s;

  // Commit: cannot fail.
  for (uint32_t b = first; b < first + n; ++b) {
    for (uint32_t bit = 0; bit < 32; ++bit) {
      if (bits & (1u << bit)) ++refs_[b][bit];
    }
  }
  for (const BlockWrite& w : plan) words_[w.block] = w.new_word;
  grants_[initiator].push_back({pages, access});
  return absl::OkStatus();
}

void BlockFirewall::Revoke(InitiatorId initiator, PageRange pages) {
  auto list = grants_.find(initiator);
  RMEM_CHECK(list != grants_.end());
  auto grant = std::find_if(list->second.begin(), list->second.end(),
                            [&](const LiveGrant& g) { return g.pages == pages; });
  RMEM_CHECK(grant != list->second.end() && "revoke of a grant never made");
  const uint32_t bits = Bits(domains_.at(initiator), grant->access);
  list->second.erase(grant);
  if (list->second.empty()) grants_.erase(list);

  const uint32_t first = BlockOf(pages), n = BlocksIn(pages);
  std::vector<BlockWrite> plan;
  for (uint32_t b = first; b < first + n; ++b) {
    uint32_t word = words_[b];
    for (uint32_t bit = 0; bit < 32; ++bit) {
      if ((bits & (1u << bit)) == 0) continue;
      RMEM_CHECK(refs_[b][bit] > 0);
      if (--refs_[b][bit] == 0) word &= ~(1u << bit);
    }
    if (word != words_[b]) plan.push_back({b, words_[b], word});
  }
  for (const BlockWrite& w : plan) {
    if (WriteBlock(w.block, w.new_word)) continue;
    // A permission that will not go away is a hardware fault. Revoke cannot
    // report it, and running on would fail open: stop.
    std::fprintf(stderr, "block firewall: revoke of %s from initiator %s: block %u did not narrow\n",
                 pages.ToString().c_str(), Hex(initiator.value()).c_str(), w.block);
    RMEM_CHECK(false && "block firewall revoke write did not take");
  }
  for (const BlockWrite& w : plan) words_[w.block] = w.new_word;
}

}  // namespace rmem

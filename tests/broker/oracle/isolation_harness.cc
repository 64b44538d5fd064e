// The isolation harness; see isolation_harness.h.
#include "tests/broker/oracle/isolation_harness.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/backend/firewall/block_controller_model.h"
#include "broker/backend/firewall/block_firewall.h"
#include "broker/backend/firewall/tzc400_firewall.h"
#include "broker/backend/firewall/tzc400_model.h"
#include "broker/check.h"
#include "broker/state/sqlite_state_store.h"

namespace rmem::testing {
namespace {

// A party standing for whatever firmware left in the carve-outs.
const Party kFirmware = Party{Party::Kind::kInitiator, 0xffffffff};

constexpr uint64_t kSizes[8] = {0,         1, 4096, 3 * 4096 + 1, 32768, 65536, uint64_t{1} << 40,
                                UINT64_MAX};
constexpr uint64_t kAligns[8] = {0, 4096, 8192, 16384, 65536, 131072, 3, uint64_t{1} << 63};

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Hands out the bits of an operation word, then of its hash.
class Bits {
 public:
  explicit Bits(uint64_t word) : words_{word, SplitMix(word)} {}
  uint64_t Take(int n) {
    if (used_ + n > 64) {
      ++index_;
      used_ = 0;
      if (index_ >= 2) words_[index_ % 2] = SplitMix(words_[(index_ + 1) % 2]);
    }
    const uint64_t v = (words_[index_ % 2] >> used_) & ((uint64_t{1} << n) - 1);
    used_ += n;
    return v;
  }

 private:
  uint64_t words_[2];
  int index_ = 0;
  int used_ = 0;
};

enum class Kind {
  kAlloc,
  kShare,
  kLend,
  kDonate,
  kRetrieve,
  kRelinquish,
  kReclaim,
  kFree,
  kTeardown
};
// Weights out of 64, so that buffers live long enough to be shared,
// retrieved and reclaimed, and teardowns are rare.
constexpr std::pair<Kind, int> kWeights[] = {
    {Kind::kAlloc, 13},  {Kind::kShare, 8},     {Kind::kLend, 5},
    {Kind::kDonate, 3},  {Kind::kRetrieve, 11}, {Kind::kRelinquish, 7},
    {Kind::kReclaim, 8}, {Kind::kFree, 8},      {Kind::kTeardown, 1}};

Kind PickKind(uint64_t v) {  // v in [0, 64)
  int acc = 0;
  for (const auto& [kind, weight] : kWeights) {
    acc += weight;
    if (static_cast<int>(v) < acc) return kind;
  }
  return Kind::kAlloc;
}

std::string CodeName(absl::StatusCode c) {
  return c == absl::StatusCode::kOk ? "ok" : absl::StatusCodeToString(c);
}

std::string CodesName(const Codes& codes) {
  std::vector<std::string> names;
  for (absl::StatusCode c : codes) names.push_back(CodeName(c));
  return absl::StrJoin(names, "|");
}

// Programs the firewall under test first and then records the same grant in
// the fakes' memory (journal, scrub lineage, injected failures): the broker
// sees one firewall.
class TeeFirewall : public Firewall {
 public:
  TeeFirewall(Firewall* driver, Firewall* fake) : driver_(driver), fake_(fake) {}
  absl::Status Grant(InitiatorId initiator, PageRange pages, Access access) override {
    if (absl::Status s = driver_->Grant(initiator, pages, access); !s.ok()) return s;
    if (absl::Status s = fake_->Grant(initiator, pages, access); !s.ok()) {
      driver_->Revoke(initiator, pages);
      return s;
    }
    return absl::OkStatus();
  }
  void Revoke(InitiatorId initiator, PageRange pages) override {
    fake_->Revoke(initiator, pages);
    driver_->Revoke(initiator, pages);
  }

 private:
  Firewall* driver_;
  Firewall* fake_;
};

}  // namespace

const char* FirewallUnderTestName(FirewallUnderTest f) {
  switch (f) {
    case FirewallUnderTest::kFake:
      return "fake";
    case FirewallUnderTest::kTzc400:
      return "tzc400";
    case FirewallUnderTest::kTzc400Scarce:
      return "tzc400-scarce";
    case FirewallUnderTest::kBlockController:
      return "block";
  }
  return "?";
}

void HarnessStats::Add(const HarnessStats& o) {
  ops += o.ops;
  accepted += o.accepted;
  injected_failures += o.injected_failures;
  for (const auto& [k, v] : o.by_op) by_op[k] += v;
  access_checks += o.access_checks;
  transient_checks += o.transient_checks;
  scrub_checks += o.scrub_checks;
  event_checks += o.event_checks;
  state_checks += o.state_checks;
  region_refusals += o.region_refusals;
  restarts += o.restarts;
  store_failures += o.store_failures;
}

IsolationHarness::IsolationHarness(const TestPlatform& platform, uint64_t seed,
                                   FirewallUnderTest firewall, bool persist)
    : firewall_kind_(firewall), platform_(platform), model_(platform) {
  for (const Carveout& c : platform.carveouts) {
    fakes_.memory.MarkWritten(*PageRange::FromBytes(c.base, c.size), kFirmware);
    carveout_pages_.push_back(*PageRange::FromBytes(c.base, c.size));
  }
  // Each initiator's id at the firewall: NSAID / domain 4, 5, ... in order
  // (the rogue one, owned by nobody, included: it is on the bus).
  for (size_t i = 0; i < platform.policy.initiators.size(); ++i) {
    const uint32_t id = static_cast<uint32_t>(4 + i);
    fw_ids_.emplace(platform.policy.initiators[i].id, id);
    hw_ids_.emplace(platform.policy.initiators[i].id.value(), id);
  }
  trace_ = std::getenv("RMEM_HARNESS_TRACE") != nullptr;
  broker_options_.buffer_id_key = IdKey{SplitMix(seed), SplitMix(seed + 1)};
  broker_options_.handle_key = IdKey{SplitMix(seed + 2), SplitMix(seed + 3)};
  broker_options_.max_receivers = platform.max_receivers;
  broker_options_.event_queue_capacity = 1 << 16;
  if (persist) {
    // In memory, like /run/rmemd.
    const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::string dir = absl::StrCat(base, "/rmem-harness-XXXXXX");
    RMEM_CHECK(mkdtemp(dir.data()) != nullptr);
    state_dir_ = dir;
  }
  StartBroker();
}

void IsolationHarness::StartBroker() {
  Firewall* firewall_backend = &fakes_.firewall;
  switch (firewall_kind_) {
    case FirewallUnderTest::kFake:
      break;
    case FirewallUnderTest::kTzc400:
    case FirewallUnderTest::kTzc400Scarce: {
      // Region 0 closed, every other region rmemd's: 8, or 2 when scarce.
      if (hardware_ == nullptr) {
        Tzc400Model::Options options;
        options.regions = firewall_kind_ == FirewallUnderTest::kTzc400 ? 9 : 3;
        hardware_ = std::make_unique<Tzc400Model>(options);
      }
      std::vector<Tzc400Firewall::Guarded> behind;
      for (size_t i = 0; i < platform_.carveouts.size(); ++i) {
        behind.push_back({platform_.carveouts[i].name, carveout_pages_[i]});
      }
      absl::StatusOr<std::unique_ptr<Tzc400Firewall>> driver = Tzc400Firewall::Create(
          "tzc", static_cast<Tzc400Model*>(hardware_.get()), behind, 1, fw_ids_);
      RMEM_CHECK_OK(driver);
      grant_regions_ = (*driver)->grant_region_count();
      driver_ = *std::move(driver);
      break;
    }
    case FirewallUnderTest::kBlockController: {
      if (hardware_ == nullptr) {
        uint64_t lo = UINT64_MAX, hi = 0;
        for (const PageRange& r : carveout_pages_) {
          lo = std::min(lo, r.base().value());
          hi = std::max(hi, r.end().addr().value());
        }
        hardware_ = std::make_unique<BlockControllerModel>(
            BlockControllerModel::Options{.window_base = lo, .window_size = hi - lo,
                                          .block_size = kPageSize});
      }
      absl::StatusOr<std::unique_ptr<BlockFirewall>> driver = BlockFirewall::Create(
          static_cast<BlockControllerModel*>(hardware_.get()), carveout_pages_, fw_ids_);
      RMEM_CHECK_OK(driver);
      driver_ = *std::move(driver);
      break;
    }
  }
  if (driver_ != nullptr) {
    tee_ = std::make_unique<TeeFirewall>(driver_.get(), &fakes_.firewall);
    firewall_backend = tee_.get();
    hardware_->set_write_observer(
        [this](uint32_t, uint32_t) { snapshots_.push_back(HardwareSnapshot()); });
  }
  Backends backends{&fakes_.stage2, firewall_backend, &fakes_.scrubber};
  if (!state_dir_.empty()) {
    absl::StatusOr<std::unique_ptr<SqliteStateStore>> store =
        SqliteStateStore::Open(state_dir_ + "/state.db", {});
    RMEM_CHECK_OK(store);
    store_ = *std::move(store);
    failing_store_ = std::make_unique<FailingStateStore>(store_.get());
    backends.state = failing_store_.get();
  }
  absl::StatusOr<std::unique_ptr<Broker>> broker =
      Broker::Create(platform_.carveouts, platform_.policy, backends, broker_options_);
  RMEM_CHECK_OK(broker);
  broker_ = *std::move(broker);
}

std::string IsolationHarness::Restart() {
  const ReferenceModel before = model_;
  fakes_.memory.ClearJournal();
  snapshots_.clear();
  // rmemd dies: no teardown, no more writes to the store; the VMMs' stage-2
  // and the firewall driver's view go with it (the hardware model's
  // registers stay: the new driver's probe deals with them).
  broker_.reset();
  failing_store_.reset();
  store_.reset();
  tee_.reset();
  driver_.reset();
  fakes_.memory.ForgetAccess();
  StartBroker();
  ++stats_.restarts;
  if (trace_) std::fprintf(stderr, "restart\n");
  restarted_ = true;
  std::string err = CheckInvariants(before, false, "", std::nullopt);
  restarted_ = false;
  return err.empty() ? err : err + " [after a restart]";
}

IsolationHarness::~IsolationHarness() {
  broker_.reset();  // before the firewall it programs and the store
  failing_store_.reset();
  store_.reset();
  if (!state_dir_.empty()) {
    for (const char* f : {"/state.db", "/state.db-wal", "/state.db-shm", "/state.db.lock"}) {
      unlink((state_dir_ + f).c_str());
    }
    rmdir(state_dir_.c_str());
  }
}

Access IsolationHarness::HardwareAccess(const Party& party, Pfn pfn, std::string& error) const {
  const uint32_t id = hw_ids_.at(party.id);
  auto at = [&](uint64_t address) {
    Access a = Access::kNone;
    if (hardware_->Permits({.address = address, .write = false, .id = id})) a = a | Access::kRead;
    if (hardware_->Permits({.address = address, .write = true, .id = id})) a = a | Access::kWrite;
    return a;
  };
  const Access first = at(pfn.addr().value());
  const Access last = at(pfn.addr().value() + kPageSize - 1);
  if (first != last) {
    error = absl::StrCat(party.ToString(), " has ", AccessName(first), " at the start of page ",
                         pfn.addr().ToString(), " but ", AccessName(last), " at its end");
  }
  return first;
}

std::vector<Access> IsolationHarness::HardwareSnapshot() const {
  std::vector<Access> out;
  std::string ignored;
  for (const PageRange& range : carveout_pages_) {
    for (uint64_t p = range.first().value(); p < range.end().value(); ++p) {
      for (const auto& [ini, id] : hw_ids_) {
        out.push_back(HardwareAccess(Party::Device(InitiatorId(ini)), Pfn(p), ignored));
      }
    }
  }
  return out;
}

bool IsolationHarness::GrantRegionsFull() const {
  if (grant_regions_ == 0) return false;
  size_t in_use = 0;
  for (const auto& [id, b] : model_.buffers()) {
    for (const auto& [ini, hw] : hw_ids_) {
      if (model_.AccessOf(Party::Device(InitiatorId(ini)), b.pages.first()) != Access::kNone) {
        ++in_use;
        break;
      }
    }
  }
  return in_use >= grant_regions_;
}

std::string IsolationHarness::CheckHardware(const ReferenceModel& before,
                                            std::optional<VmId> failed_caller, bool restarted) {
  // Between register writes: within before | after, and never short of
  // before & after (a live DMA stream must not fault because an unrelated
  // grant was programmed).
  for (const std::vector<Access>& snap : snapshots_) {
    size_t k = 0;
    for (const PageRange& range : carveout_pages_) {
      for (uint64_t p = range.first().value(); p < range.end().value(); ++p) {
        for (const auto& [ini, id] : hw_ids_) {
          const Party party = Party::Device(InitiatorId(ini));
          const Access was = before.AccessOf(party, Pfn(p)), is = model_.AccessOf(party, Pfn(p));
          const Access hw = snap[k++];
          ++stats_.transient_checks;
          if (!Covers(was | is, hw) && !(failed_caller && model_.BelongsTo(party, *failed_caller))) {
            return absl::StrCat(party.ToString(), " could ", AccessName(hw), " page ",
                                Pfn(p).addr().ToString(), " between two register writes; the model",
                                " allowed ", AccessName(was), " before and ", AccessName(is),
                                " after");
          }
          // (A request failed by an injected backend error is rolled back
          // by the broker, which may take access away and give it back.)
          if (!failed_caller && !restarted && !Covers(hw, was & is)) {
            return absl::StrCat(party.ToString(), " lost ", AccessName(was & is), " on page ",
                                Pfn(p).addr().ToString(), " between two register writes, though",
                                " the model allowed it before and after");
          }
        }
      }
    }
  }
  snapshots_.clear();
  // The oracle against the hardware model's own decisions.
  for (const PageRange& range : carveout_pages_) {
    for (uint64_t p = range.first().value(); p < range.end().value(); ++p) {
      for (const auto& [ini, id] : hw_ids_) {
        const Party party = Party::Device(InitiatorId(ini));
        std::string error;
        const Access got = HardwareAccess(party, Pfn(p), error);
        if (!error.empty()) return error;
        const Access want = model_.AccessOf(party, Pfn(p));
        stats_.access_checks += 4;  // read and write, first and last byte
        if (got != want) {
          return absl::StrCat(FirewallUnderTestName(firewall_kind_), ": ", party.ToString(),
                              " (id ", id, ") may ", AccessName(got), " page ",
                              Pfn(p).addr().ToString(), " but the model grants ",
                              AccessName(want));
        }
      }
    }
  }
  return "";
}

IsolationHarness::Outcome IsolationHarness::Execute(uint64_t word, bool& injected) {
  Bits bits(word);
  const TestPlatform& p = model_.platform();
  const std::vector<VmConfig>& vms = p.policy.vms;
  const Kind kind = PickKind(bits.Take(6));
  // 0: forged ids and anything goes; 1: stale ids, wrong callers; else plausible.
  const uint64_t hostility = bits.Take(3);
  const bool plausible = hostility >= 2;
  const uint64_t pick = bits.Take(16);
  const uint64_t forged = bits.Take(32) | (bits.Take(32) << 32);
  auto pick_vm = [&](uint64_t v) {  // v in [0, 8): 7 is an unknown VM unless plausible
    return v == 7 && !plausible ? VmId(99) : vms[v % vms.size()].id;
  };
  VmId caller = pick_vm(bits.Take(3));
  // Owner requests: a plausible caller owns the buffer it names.
  auto pick_buffer = [&]() {
    const std::vector<BufferId>& all = model_.all_buffer_ids();
    if (hostility == 0 || all.empty()) return BufferId(forged);
    if (!plausible || model_.buffers().empty()) return all[pick % all.size()];
    auto it = model_.buffers().begin();
    std::advance(it, pick % model_.buffers().size());
    caller = it->second.owner;
    return it->first;
  };
  // Receiver requests: a plausible caller is named in the handle.
  auto pick_handle = [&]() {
    const std::vector<Handle>& all = model_.all_handles();
    if (hostility == 0 || all.empty()) return Handle(forged);
    if (!plausible || model_.txns().empty()) return all[pick % all.size()];
    auto it = model_.txns().begin();
    std::advance(it, pick % model_.txns().size());
    const auto& receivers = model_.buffers().at(it->second).receivers;
    if (!receivers.empty()) {
      auto r = receivers.begin();
      std::advance(r, (pick >> 8) % receivers.size());
      caller = r->first;
    }
    return it->first;
  };
  // Rights: plausible offers stay within what the owner holds.
  auto pick_rights = [&](BufferId b) {
    Rights r = Rights::Of(static_cast<uint8_t>(bits.Take(3)));
    auto it = model_.buffers().find(b);
    if (plausible && it != model_.buffers().end()) {
      r = r & it->second.owner_rights;
      if (r.empty()) r = r | Rights::Of(Rights::kRead);
    }
    return r;
  };
  if (bits.Take(4) == 0) {
    injected = true;
    const uint64_t nth = 1 + bits.Take(2);
    if (failing_store_ != nullptr && bits.Take(1) == 0) {
      failing_store_->FailNthCommit(1);  // a request commits once
    } else {
      fakes_.memory.FailNthCall(nth, absl::UnavailableError("injected failure"));
    }
  }

  Outcome o;
  switch (kind) {
    case Kind::kAlloc: {
      const uint64_t h = bits.Take(2);
      std::string heap = h < p.policy.heaps.size() ? p.policy.heaps[h].name : "no-such-heap";
      uint64_t size = kSizes[bits.Take(3)];
      uint64_t align = kAligns[bits.Take(3)];
      if (plausible) {  // a heap the caller may allocate from, sane sizes
        for (size_t i = 0; i < p.policy.heaps.size(); ++i) {
          const HeapConfig& hc = p.policy.heaps[(h + i) % p.policy.heaps.size()];
          bool may = false;
          for (const HeapAccess& a : hc.access) may |= a.vm == caller && a.may_allocate;
          if (may) {
            heap = hc.name;
            break;
          }
        }
        size = kSizes[1 + pick % 5];
        align = kAligns[(pick >> 4) % 4];
      }
      o.op = absl::StrCat("ALLOC vm ", caller.value(), " heap ", heap, " size ", Hex(size),
                          " align ", Hex(align));
      o.expected = model_.ExpectAlloc(caller, heap, size, align);
      absl::StatusOr<Allocation> a = broker_->Alloc(caller, heap, size, align);
      o.actual = a.status();
      if (a.ok() && o.expected.contains(absl::StatusCode::kOk)) {
        o.apply_error = model_.ApplyAlloc(caller, heap, size, align, *a);
      }
      break;
    }
    case Kind::kShare:
    case Kind::kLend: {
      const BufferId b = pick_buffer();
      uint64_t n = bits.Take(2);  // 0..3 receivers; hostile words may ask for 4
      if (hostility == 0 && bits.Take(1)) n = 4;
      if (plausible && n == 0) n = 1;
      std::vector<Offer> to;
      for (uint64_t i = 0; i < n; ++i) {
        VmId vm = pick_vm(bits.Take(3));
        if (plausible && vm == caller) vm = vms[(i + caller.value()) % vms.size()].id;
        to.push_back(Offer{vm, pick_rights(b)});
      }
      const TxnKind txn = kind == Kind::kShare ? TxnKind::kShare : TxnKind::kLend;
      std::vector<std::string> names;
      for (const Offer& t : to)
        names.push_back(absl::StrCat(t.vm.value(), ":", t.rights.ToString()));
      o.op = absl::StrCat(kind == Kind::kShare ? "SHARE" : "LEND", " vm ", caller.value(), " ",
                          Hex(b.value()), " to [", absl::StrJoin(names, " "), "]");
      o.expected = model_.ExpectOffer(caller, b, txn, to);
      absl::StatusOr<Handle> h =
          kind == Kind::kShare ? broker_->Share(caller, b, to) : broker_->Lend(caller, b, to);
      o.actual = h.status();
      if (h.ok() && o.expected.contains(absl::StatusCode::kOk)) {
        o.apply_error = model_.ApplyOffer(caller, b, txn, to, *h);
      }
      break;
    }
    case Kind::kDonate: {
      const BufferId b = pick_buffer();
      VmId to = pick_vm(bits.Take(3));
      if (plausible && to == caller) to = vms[caller.value() % vms.size()].id;
      o.op = absl::StrCat("DONATE vm ", caller.value(), " ", Hex(b.value()), " to ", to.value());
      const std::vector<Offer> offers = {Offer{to, Rights()}};
      o.expected = model_.ExpectOffer(caller, b, TxnKind::kDonate, offers);
      absl::StatusOr<Handle> h = broker_->Donate(caller, b, to);
      o.actual = h.status();
      if (h.ok() && o.expected.contains(absl::StatusCode::kOk)) {
        o.apply_error = model_.ApplyOffer(caller, b, TxnKind::kDonate, offers, *h);
      }
      break;
    }
    case Kind::kRetrieve: {
      const Handle h = pick_handle();
      o.op = absl::StrCat("RETRIEVE vm ", caller.value(), " ", Hex(h.value()));
      o.expected = model_.ExpectRetrieve(caller, h);
      absl::StatusOr<Retrieval> r = broker_->Retrieve(caller, h);
      o.actual = r.status();
      if (r.ok() && o.expected.contains(absl::StatusCode::kOk)) {
        o.apply_error = model_.ApplyRetrieve(caller, h, *r);
      }
      break;
    }
    case Kind::kRelinquish: {
      const Handle h = pick_handle();
      o.op = absl::StrCat("RELINQUISH vm ", caller.value(), " ", Hex(h.value()));
      o.expected = model_.ExpectRelinquish(caller, h);
      o.actual = broker_->Relinquish(caller, h);
      if (o.actual.ok() && o.expected.contains(absl::StatusCode::kOk)) {
        model_.ApplyRelinquish(caller, h);
      }
      break;
    }
    case Kind::kReclaim: {
      const BufferId b = pick_buffer();
      const ReclaimMode mode =
          bits.Take(2) == 0 ? ReclaimMode::kRevoke : ReclaimMode::kWaitForBorrowers;
      o.op = absl::StrCat(mode == ReclaimMode::kRevoke ? "RECLAIM+REVOKE" : "RECLAIM", " vm ",
                          caller.value(), " ", Hex(b.value()));
      o.expected = model_.ExpectReclaim(caller, b, mode);
      o.actual = broker_->Reclaim(caller, b, mode);
      if (o.actual.ok() && o.expected.contains(absl::StatusCode::kOk)) {
        model_.ApplyReclaim(caller, b);
      }
      break;
    }
    case Kind::kFree: {
      const BufferId b = pick_buffer();
      o.op = absl::StrCat("FREE vm ", caller.value(), " ", Hex(b.value()));
      o.expected = model_.ExpectFree(caller, b);
      o.actual = broker_->Free(caller, b);
      if (o.actual.ok() && o.expected.contains(absl::StatusCode::kOk)) model_.ApplyFree(caller, b);
      break;
    }
    case Kind::kTeardown: {
      o.op = absl::StrCat("TEARDOWN vm ", caller.value());
      o.expected = {absl::StatusCode::kOk};
      (void)broker_->TeardownVm(caller);
      model_.ApplyTeardown(caller);
      o.actual = absl::OkStatus();
      break;
    }
  }
  o.caller = caller;  // target selection may have changed it
  fakes_.memory.ClearFailures();
  if (failing_store_ != nullptr) failing_store_->ClearFailures();
  return o;
}

std::string IsolationHarness::Step(uint64_t word) {
  // 1 word in 64 restarts rmemd (with persistence), unless a teardown
  // could not be recorded: then the store is behind until the next
  // request it accepts (docs/reliability.md).
  if (store_ != nullptr && (word >> 58) == 0x2a && !broker_->state_behind()) return Restart();
  const ReferenceModel before = model_;
  const std::string dump_before = broker_->DebugDump();
  fakes_.memory.ClearJournal();
  snapshots_.clear();
  bool injected = false;
  const bool regions_full = GrantRegionsFull();
  const uint64_t failed_before = fakes_.memory.counters().failed;
  const uint64_t store_failed_before = failing_store_ != nullptr ? failing_store_->failed() : 0;
  Outcome o = Execute(word, injected);
  // With every TZC-400 grant region in use, a request that gives device
  // initiators access to one more range may be refused for want of one.
  const std::string verb = o.op.substr(0, o.op.find(' '));
  if (regions_full && o.expected.contains(absl::StatusCode::kOk) &&
      (verb == "ALLOC" || verb == "RETRIEVE" || verb == "RECLAIM" || verb == "RECLAIM+REVOKE")) {
    o.expected.insert(absl::StatusCode::kResourceExhausted);
  }
  const uint64_t store_failed = failing_store_ != nullptr ? failing_store_->failed() : 0;
  const bool injected_hit = fakes_.memory.counters().failed != failed_before ||
                            (store_failed != store_failed_before && verb != "TEARDOWN");
  if (store_failed != store_failed_before) ++stats_.store_failures;
  if (trace_) {
    std::fprintf(stderr, "step %llu: %s -> %s%s\n", static_cast<unsigned long long>(stats_.ops),
                 o.op.c_str(), o.actual.ToString().c_str(), injected_hit ? " (injected)" : "");
  }
  ++stats_.ops;
  ++stats_.by_op[absl::StrCat(o.op.substr(0, o.op.find(' ')), " ", CodeName(o.actual.code()))];
  if (injected_hit) ++stats_.injected_failures;

  const std::string where = absl::StrCat(" [after ", o.op, "]");
  if (injected_hit) {
    // A backend failure must surface as the backend's error, and only then.
    if (o.actual.code() != absl::StatusCode::kUnavailable) {
      return absl::StrCat("an injected backend failure was swallowed: got ", o.actual.ToString(),
                          where);
    }
    // Backends are only called once every check passed.
    if (!o.expected.contains(absl::StatusCode::kOk)) {
      return absl::StrCat("a backend was called for a request the model rejects (",
                          CodesName(o.expected), ")", where);
    }
  } else if (!o.expected.contains(o.actual.code())) {
    return absl::StrCat("expected ", CodesName(o.expected), ", got ", o.actual.ToString(), where);
  }
  if (o.actual.ok()) ++stats_.accepted;
  if (regions_full && o.actual.code() == absl::StatusCode::kResourceExhausted) {
    ++stats_.region_refusals;
  }
  if (!o.apply_error.empty()) return o.apply_error + where;
  // A model that expected success but saw an injected failure or a
  // legitimate error has not applied anything: both sides unchanged.
  const std::string err =
      CheckInvariants(before, !o.actual.ok(), dump_before,
                      injected_hit ? std::optional<VmId>(o.caller) : std::nullopt);
  return err.empty() ? err : err + where;
}

std::string IsolationHarness::TeardownAll() {
  const ReferenceModel before = model_;
  fakes_.memory.ClearJournal();
  snapshots_.clear();
  for (const VmConfig& vm : model_.platform().policy.vms) {
    (void)broker_->TeardownVm(vm.id);
    model_.ApplyTeardown(vm.id);
  }
  std::string err = CheckInvariants(before, false, "", std::nullopt);
  if (!err.empty()) return err + " [after teardown of every VM]";
  for (const PoolStats& pool : broker_->pool_stats()) {
    if (pool.stats.free != pool.stats.total) return "pages left allocated after all teardowns";
    if (!fakes_.memory.IsClean(pool.pages)) return "unscrubbed pages after all teardowns";
  }
  return "";
}

std::string IsolationHarness::CheckEvents() {
  std::vector<ExpectedEvent> expected = model_.TakeEvents();
  std::vector<ExpectedEvent> actual;
  for (const VmConfig& vm : model_.platform().policy.vms) {
    for (const Event& e : broker_->DrainEvents(vm.id, SIZE_MAX)) {
      const bool to_receiver = e.kind == EventKind::kOffered || e.kind == EventKind::kRevoked;
      if (to_receiver && e.buffer.value() != 0) {
        return absl::StrCat("a receiver event revealed ", BufferName(e.buffer));
      }
      actual.push_back(ExpectedEvent{vm.id, e.kind, e.reason, e.handle, e.peer});
    }
    if (broker_->events(vm.id)->dropped() != 0) return "events were dropped";
  }
  std::sort(expected.begin(), expected.end());
  std::sort(actual.begin(), actual.end());
  stats_.event_checks += expected.size() + 1;
  if (expected != actual) {
    auto show = [](const std::vector<ExpectedEvent>& v) {
      std::vector<std::string> s;
      for (const ExpectedEvent& e : v) {
        s.push_back(absl::StrCat(EventKindName(e.kind), "->", e.to.value(), " peer ",
                                 e.peer.value(),
                                 e.reason == EventReason::kPeerGone ? " gone" : ""));
      }
      return absl::StrJoin(s, ", ");
    };
    return absl::StrCat("events: expected {", show(expected), "}, got {", show(actual), "}");
  }
  return "";
}

std::string IsolationHarness::CheckInvariants(const ReferenceModel& before, bool rejected,
                                              const std::string& dump_before,
                                              std::optional<VmId> failed_caller) {
  const FakeMemory& mem = fakes_.memory;
  // 2. A rejection changes nothing.
  if (rejected) {
    ++stats_.state_checks;
    if (broker_->DebugDump() != dump_before) return "a rejected request changed broker state";
  }
  // 7. Events.
  if (std::string e = CheckEvents(); !e.empty()) return e;

  const std::vector<Party> parties = model_.AllParties();
  std::vector<PageRange> carveouts;
  for (const Carveout& c : model_.platform().carveouts) {
    carveouts.push_back(*PageRange::FromBytes(c.base, c.size));
  }
  // 3. The oracle: programmed access == granted access, everywhere.
  for (const PageRange& range : carveouts) {
    for (uint64_t p = range.first().value(); p < range.end().value(); ++p) {
      for (const Party& party : parties) {
        const Access want = model_.AccessOf(party, Pfn(p));
        const Access got = mem.AccessOf(party, Pfn(p));
        stats_.access_checks += 2;  // read and write
        if (want != got) {
          return absl::StrCat(party.ToString(), " has ", AccessName(got), " on page ",
                              Pfn(p).addr().ToString(), " but the model grants ", AccessName(want));
        }
      }
    }
  }
  for (const Party& party : mem.parties()) {
    if (std::find(parties.begin(), parties.end(), party) == parties.end()) {
      return absl::StrCat("unknown ", party.ToString(), " holds access");
    }
  }
  if (hardware_ != nullptr) {
    if (std::string e = CheckHardware(before, failed_caller, restarted_); !e.empty()) return e;
  }
  // 4. No transient access, and 5. grants exposed only lineage content.
  for (const FakeMemory::Exposure& e : mem.journal()) {
    for (uint64_t p = e.pages.first().value(); p < e.pages.end().value(); ++p) {
      ++stats_.transient_checks;
      const Access allowed = before.AccessOf(e.party, Pfn(p)) | model_.AccessOf(e.party, Pfn(p));
      if (!Covers(allowed, e.access) &&
          !(failed_caller && model_.BelongsTo(e.party, *failed_caller))) {
        return absl::StrCat(e.party.ToString(), " was granted ", AccessName(e.access), " on page ",
                            Pfn(p).addr().ToString(),
                            " for a moment, which the model never allowed");
      }
    }
    const ReferenceModel::MBuffer* b = model_.BufferAt(e.pages.first());
    for (const Party& w : e.writers) {
      // A request that failed after granting (the store refused to record
      // it) may have shown the caller's CPU what the caller's own device
      // wrote a moment before; nothing crossed to another VM.
      if (failed_caller && model_.BelongsTo(e.party, *failed_caller) &&
          model_.BelongsTo(w, *failed_caller)) {
        continue;
      }
      if (b == nullptr || !b->lineage.contains(w)) {
        return absl::StrCat(e.party.ToString(), " was shown ", e.pages.ToString(),
                            " unscrubbed: ", w.ToString(), " wrote it");
      }
    }
  }
  // 5. Every page's writers are in the lineage of its buffer.
  for (const PageRange& range : carveouts) {
    for (uint64_t p = range.first().value(); p < range.end().value(); ++p) {
      ++stats_.scrub_checks;
      const ReferenceModel::MBuffer* b = model_.BufferAt(Pfn(p));
      for (const Party& w : mem.WritersOf(Pfn(p))) {
        if (b == nullptr || !b->lineage.contains(w)) {
          return absl::StrCat("page ", Pfn(p).addr().ToString(),
                              b == nullptr ? " is free but" : " is in a buffer but",
                              " holds data written by ", w.ToString(), " and was not scrubbed");
        }
      }
    }
  }
  // 6. Conservation.
  const std::vector<PoolStats> pools = broker_->pool_stats();
  for (size_t i = 0; i < pools.size(); ++i) {
    ++stats_.state_checks;
    if (pools[i].stats.free.value() + model_.allocated_pages(i) != pools[i].stats.total.value()) {
      return absl::StrCat("carve-out ", pools[i].carveout, ": ", pools[i].stats.free.value(),
                          " free + ", model_.allocated_pages(i),
                          " allocated != ", pools[i].stats.total.value(), " pages");
    }
  }
  ++stats_.state_checks;
  if (broker_->ledger().buffer_count() != model_.buffers().size() ||
      broker_->ledger().txn_count() != model_.txns().size()) {
    return absl::StrCat("broker holds ", broker_->ledger().buffer_count(), " buffers and ",
                        broker_->ledger().txn_count(), " transactions, the model ",
                        model_.buffers().size(), " and ", model_.txns().size());
  }
  for (const auto& [id, b] : model_.buffers()) {
    ++stats_.state_checks;
    const Buffer* actual = broker_->ledger().FindBuffer(id);
    if (actual == nullptr || actual->owner != b.owner || !(actual->pages == b.pages)) {
      return absl::StrCat(BufferName(id), " is not owned by ", VmName(b.owner), " at ",
                          b.pages.ToString(), " in the broker");
    }
  }
  return "";
}

}  // namespace rmem::testing

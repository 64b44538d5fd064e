#include "broker/rmemd/status.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "virtio_rmem/rmem_device.h"

namespace rmem::rmemd {
namespace {

Json Bytes(uint64_t v) { return v == kUnlimited ? Json(nullptr) : Json(v); }

Json ByStatus(const std::map<uint32_t, uint64_t>& counts) {
  Json out = Json::object();
  for (const auto& [status, n] : counts) out[virtio_rmem::WireStatusName(status)] = n;
  return out;
}

// One VM holding one buffer: its owner with access, or a receiver that
// retrieved it.
struct Grant {
  BufferId buffer;
  VmId vm;
  bool owner;
  Rights rights;
  std::optional<GuestAddr> mapped_at;
};

std::vector<Grant> GrantsOf(const Buffer& b, const Ledger& ledger) {
  std::vector<Grant> out;
  if (b.owner_has_access()) out.push_back({b.id, b.owner, true, b.owner_rights, b.mapped_at});
  if (!b.txn) return out;
  if (const Transaction* t = ledger.FindTxn(*b.txn)) {
    for (const Receiver& r : t->receivers) {
      if (r.state == ReceiverState::kRetrieved) {
        out.push_back({b.id, r.vm, false, r.rights, r.mapped_at});
      }
    }
  }
  return out;
}

Json Carveouts(const Service& service) {
  const Broker& broker = service.broker();
  const Policy& policy = broker.policy();
  Json out = Json::array();
  for (size_t i = 0; i < broker.carveouts().size(); ++i) {
    const Carveout& c = broker.carveouts()[i];
    Json heaps = Json::array();
    for (size_t h = 0; h < policy.heap_count(); ++h) {
      const absl::Span<const size_t> used = policy.heap_carveouts(HeapId(static_cast<uint32_t>(h)));
      if (std::find(used.begin(), used.end(), i) != used.end())
        heaps.push_back(policy.config().heaps[h].name);
    }
    const std::optional<PlatformFirewalls::Guard> guard =
        service.firewalls().GuardOf(*PageRange::FromBytes(c.base, c.size));
    out.push_back(
        {{"name", c.name},
         {"use_case", c.use_case},
         {"base", c.base.value()},
         {"size", c.size},
         {"heaps", heaps},
         {"firewall", guard ? Json{{"controller", guard->controller}, {"index", guard->index}}
                            : Json(nullptr)}});
  }
  return out;
}

Json Pools(const Broker& broker, const Json& carveouts) {
  Json out = Json::array();
  const std::vector<PoolStats> pools = broker.pool_stats();
  for (size_t i = 0; i < pools.size(); ++i) {
    const PageAllocator::Stats& s = pools[i].stats;
    out.push_back({{"carveout", pools[i].carveout},
                   {"heaps", carveouts[i]["heaps"]},
                   {"total", s.total.bytes()},
                   {"free", s.free.bytes()},
                   {"used", s.total.bytes() - s.free.bytes()},
                   {"largest_free_run", s.largest_free.bytes()},
                   {"free_runs", s.free_extents},
                   {"fragmentation", s.fragmentation}});
  }
  return out;
}

Json Heaps(const Broker& broker) {
  const Policy& policy = broker.policy();
  const std::vector<PoolStats> pools = broker.pool_stats();
  Json out = Json::array();
  for (size_t h = 0; h < policy.heap_count(); ++h) {
    const HeapId id(static_cast<uint32_t>(h));
    const HeapConfig& heap = policy.heap(id);
    uint64_t total = 0, free = 0;
    for (size_t c : policy.heap_carveouts(id)) {
      total += pools[c].stats.total.bytes();
      free += pools[c].stats.free.bytes();
    }
    out.push_back({{"name", heap.name},
                   {"carveouts", heap.carveouts},
                   {"cpu_map", heap.cpu_map_allowed},
                   {"owner_may_revoke", heap.owner_may_revoke},
                   {"quota", Bytes(heap.quota_bytes)},
                   {"owned", broker.quotas().heap_bytes(id)},
                   {"total", total},
                   {"free", free}});
  }
  return out;
}

Json Guests(const Service& service) {
  const Broker& broker = service.broker();
  Json out = Json::array();
  for (size_t i = 0; i < service.guest_configs().size(); ++i) {
    const GuestConfig& g = service.guest_configs()[i];
    const virtio_rmem::GuestDevice& device = *service.guests()[i];
    const virtio_rmem::RmemDevice::Counters& counters = device.rmem().counters();
    const absl::StatusOr<virtio_rmem::GuestStatus> endpoint = service.server().Status(g.name);
    const EventQueue* events = broker.events(g.id);
    out.push_back({{"id", g.id.value()},
                   {"name", g.name},
                   {"socket", g.socket},
                   {"vmm_connected", device.connected()},
                   {"vmm_connects", endpoint.ok() ? endpoint->connections : 0},
                   {"quota", Bytes(g.quota_bytes)},
                   {"owned", broker.quotas().vm_bytes(g.id)},
                   {"region_size", g.region_bytes},
                   {"mappings", service.stage2().mapping_count(g.id)},
                   {"mapped_bytes", service.stage2().mapped_bytes(g.id)},
                   {"restored_waiting", service.stage2().waiting(g.id)},
                   {"requests", counters.requests},
                   {"refused", ByStatus(counters.failed_by_status)},
                   {"unanswerable", counters.unanswerable},
                   {"events_delivered", device.events_delivered()},
                   {"events_queued", events != nullptr ? events->size() : 0},
                   {"events_dropped", events != nullptr ? events->dropped() : 0}});
  }
  return out;
}

Json Firewall(const PlatformFirewalls& firewalls) {
  Json out = Json::array();
  for (const PlatformFirewalls::AccessRun& r : firewalls.AccessRuns()) {
    Json access = Json::array();
    for (const auto& [id, a] : r.ids) access.push_back({{"id", id}, {"access", AccessName(a)}});
    out.push_back({{"controller", r.controller},
                   {"base", r.pages.base().value()},
                   {"size", r.pages.size_bytes()},
                   {"access", access}});
  }
  return out;
}

Json Counters(const Service& service) {
  uint64_t served = 0, unanswerable = 0;
  std::map<uint32_t, uint64_t> refused;
  for (const auto& device : service.guests()) {
    const virtio_rmem::RmemDevice::Counters& c = device->rmem().counters();
    served += c.requests;
    unanswerable += c.unanswerable;
    for (const auto& [status, n] : c.failed_by_status) refused[status] += n;
  }
  return {{"requests_served", served},
          {"requests_refused", ByStatus(refused)},
          {"requests_unanswerable", unanswerable},
          {"bytes_scrubbed", service.scrubber().scrubbed_bytes()}};
}

}  // namespace

Json StatusDocument(const Service& service) {
  const Broker& broker = service.broker();
  const Policy& policy = broker.policy();
  const Ledger& ledger = broker.ledger();

  std::vector<const Buffer*> buffers;
  for (const auto& [id, b] : ledger.buffers()) buffers.push_back(&b);
  std::sort(buffers.begin(), buffers.end(),
            [](const Buffer* a, const Buffer* b) { return a->id.value() < b->id.value(); });
  Json buffer_list = Json::array(), grant_list = Json::array();
  for (const Buffer* b : buffers) {
    Json holders = Json::array();
    for (const Grant& g : GrantsOf(*b, ledger)) {
      holders.push_back({{"vm", g.vm.value()}, {"rights", g.rights.ToString()}});
      grant_list.push_back(
          {{"buffer", g.buffer.value()},
           {"vm", g.vm.value()},
           {"as", g.owner ? "owner" : "receiver"},
           {"rights", g.rights.ToString()},
           {"mapped", g.mapped_at.has_value()},
           {"region_offset", g.mapped_at ? Json(g.mapped_at->value()) : Json(nullptr)}});
    }
    buffer_list.push_back({{"id", b->id.value()},
                           {"heap", policy.heap(b->heap).name},
                           {"carveout", broker.carveouts()[b->carveout].name},
                           {"base", b->pages.base().value()},
                           {"size", b->size_bytes()},
                           {"owner", b->owner.value()},
                           {"state", BufferStateName(b->state)},
                           {"owner_rights", b->owner_rights.ToString()},
                           {"offer", b->txn ? Json(b->txn->value()) : Json(nullptr)},
                           {"holders", holders}});
  }

  std::vector<const Transaction*> txns;
  for (const auto& [handle, t] : ledger.txns()) txns.push_back(&t);
  std::sort(txns.begin(), txns.end(), [](const Transaction* a, const Transaction* b) {
    return a->handle.value() < b->handle.value();
  });
  Json offers = Json::array();
  for (const Transaction* t : txns) {
    const Buffer* b = ledger.FindBuffer(t->buffer);
    Json to = Json::array();
    for (const Receiver& r : t->receivers) {
      to.push_back({{"vm", r.vm.value()},
                    {"rights", r.rights.ToString()},
                    {"state", ReceiverStateName(r.state)}});
    }
    offers.push_back({{"handle", t->handle.value()},
                      {"kind", TxnKindName(t->kind)},
                      {"buffer", t->buffer.value()},
                      {"from", b != nullptr ? b->owner.value() : 0},
                      {"to", to}});
  }

  const Json carveouts = Carveouts(service);
  return {{"rmemd",
           {{"pid", getpid()},
            {"memory", service.memory().Describe()},
            {"state", service.state() != nullptr ? Json(service.state_path()) : Json(nullptr)},
            {"state_behind", broker.state_behind()}}},
          {"carveouts", carveouts},
          {"pools", Pools(broker, carveouts)},
          {"heaps", Heaps(broker)},
          {"guests", Guests(service)},
          {"buffers", buffer_list},
          {"offers", offers},
          {"grants", grant_list},
          {"firewall", Firewall(service.firewalls())},
          {"counters", Counters(service)}};
}

}  // namespace rmem::rmemd

#include "broker/rmemd/service.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace rmem::rmemd {

absl::StatusOr<std::unique_ptr<Service>> Service::Start(const BrokerSetup& setup,
                                                        std::unique_ptr<CarveoutMemory> memory,
                                                        std::unique_ptr<Firewall> firewall,
                                                        EventLoop& loop) {
  std::unique_ptr<Service> s(new Service());
  s->memory_ = std::move(memory);
  s->firewall_ = std::move(firewall);
  s->stage2_ = std::make_unique<ShmRegionStage2>(*s->memory_);
  s->scrubber_ = std::make_unique<CarveoutScrubber>(*s->memory_);
  BrokerOptions options;
  options.max_receivers = setup.max_receivers;
  absl::StatusOr<std::unique_ptr<Broker>> broker =
      Broker::Create(setup.carveouts, setup.policy,
                     Backends{s->stage2_.get(), s->firewall_.get(), s->scrubber_.get()}, options);
  if (!broker.ok()) return broker.status();
  s->broker_ = *std::move(broker);
  s->server_ = std::make_unique<virtio_rmem::VhostUserServer>(loop);
  Service* self = s.get();
  for (const GuestConfig& g : setup.guests) {
    s->guests_.push_back(std::make_unique<virtio_rmem::GuestDevice>(
        *s->broker_, *s->stage2_, g.id, g.region_bytes, [self] { self->FlushAllEvents(); }));
    if (absl::Status st = s->server_->AddGuest(
            virtio_rmem::GuestConfig{.name = g.name, .socket_path = g.socket}, *s->guests_.back());
        !st.ok()) {
      return st;
    }
  }
  return s;
}

Service::~Service() {
  // An orderly stop: every VM is torn down while its VMM still answers
  // (mappings removed with SHMEM_UNMAP, borrowers told), then every
  // connection ends while the broker still lives. No VMM is killed.
  for (const std::unique_ptr<virtio_rmem::GuestDevice>& g : guests_) g->Retire();
  FlushAllEvents();
  server_.reset();
}

void Service::FlushAllEvents() {
  for (const std::unique_ptr<virtio_rmem::GuestDevice>& g : guests_) g->FlushEvents();
}

}  // namespace rmem::rmemd

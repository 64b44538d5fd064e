#include "broker/rmemd/service.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/sys_error.h"

namespace rmem::rmemd {

absl::StatusOr<std::unique_ptr<Service>> Service::Start(
    const BrokerSetup& setup, std::unique_ptr<CarveoutMemory> memory,
    std::unique_ptr<PlatformFirewalls> firewalls, Options options, EventLoop& loop) {
  std::unique_ptr<Service> s(new Service());
  s->memory_ = std::move(memory);
  s->firewalls_ = std::move(firewalls);
  s->guest_configs_ = setup.guests;
  s->state_ = std::move(options.state);
  s->state_path_ = std::move(options.state_path);
  s->stage2_ = std::make_unique<ShmRegionStage2>(*s->memory_);
  s->scrubber_ = std::make_unique<CarveoutScrubber>(*s->memory_);
  BrokerOptions broker_options;
  broker_options.max_receivers = setup.max_receivers;
  absl::StatusOr<std::unique_ptr<Broker>> broker = Broker::Create(
      setup.carveouts, setup.policy,
      Backends{s->stage2_.get(), s->firewalls_.get(), s->scrubber_.get(), s->state_.get()},
      broker_options);
  if (!broker.ok()) return broker.status();
  s->broker_ = *std::move(broker);
  s->awaiting_ = s->broker_->VmsWithState();
  s->grace_deadline_ = absl::Now() + options.reconnect_grace;
  s->tick_ = Fd(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!s->tick_.valid()) return ErrnoError("timerfd_create");
  const itimerspec every_second{{1, 0}, {1, 0}};
  if (timerfd_settime(s->tick_.get(), 0, &every_second, nullptr) != 0) {
    return ErrnoError("timerfd_settime");
  }
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
  absl::StatusOr<Watch> tick = loop.Add(s->tick_.get(), EPOLLIN, [self](uint32_t) {
    uint64_t expirations = 0;
    if (read(self->tick_.get(), &expirations, sizeof(expirations)) > 0) self->OnTick();
  });
  if (!tick.ok()) return tick.status();
  s->tick_watch_ = *std::move(tick);
  return s;
}

void Service::OnTick() {
  if (broker_->state_behind()) {
    if (absl::Status st = broker_->CatchUpState(); !st.ok()) {
      Log(LogLevel::kError, absl::StrCat("state: still not recorded: ", st.ToString()));
    } else {
      Log(LogLevel::kInfo, "state: recorded again");
    }
  }
  if (awaiting_.empty()) return;
  std::erase_if(awaiting_, [&](VmId vm) {
    for (const std::unique_ptr<virtio_rmem::GuestDevice>& g : guests_) {
      if (g->vm() == vm && g->connected()) return true;
    }
    return false;
  });
  if (awaiting_.empty() || absl::Now() < grace_deadline_) return;
  for (VmId vm : awaiting_) {
    Log(LogLevel::kInfo,
        absl::StrCat(VmName(vm), ": its VMM did not come back after the restart: torn down"));
    if (absl::Status st = broker_->TeardownVm(vm); !st.ok()) {
      Log(LogLevel::kError, st.ToString());
    }
  }
  awaiting_.clear();
  FlushAllEvents();
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

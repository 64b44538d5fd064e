// A broker over the fake backends on the small test platform, with helpers
// that assert a rejected request left every piece of state unchanged.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "broker/backend/fake_backends.h"
#include "broker/backend/null_backends.h"
#include "broker/broker.h"
#include "broker/check.h"
#include "tests/broker/oracle/test_platform.h"

namespace rmem::testing {

inline constexpr VmId kDecrypt{1}, kDisplay{2}, kInfotainment{3}, kCamera{4}, kUnknownVm{99};
inline constexpr InitiatorId kDecoder{10}, kDisplayCtrl{11}, kIsp{12}, kRogue{13};
inline constexpr uint8_t kR = Rights::kRead, kW = Rights::kWrite, kC = Rights::kCpuMap;

class BrokerTest : public ::testing::Test {
 protected:
  BrokerTest() : BrokerTest(SmallPlatform()) {}
  explicit BrokerTest(const TestPlatform& platform) : platform_(platform) {
    BrokerOptions options;
    options.buffer_id_key = IdKey{11, 12};
    options.handle_key = IdKey{13, 14};
    options.max_receivers = platform.max_receivers;
    auto b = Broker::Create(platform.carveouts, platform.policy,
                            Backends{&fakes_.stage2, &fakes_.firewall, &fakes_.scrubber}, options);
    RMEM_CHECK_OK(b);
    broker_ = *std::move(b);
  }

  Allocation MustAlloc(VmId vm, const std::string& heap, uint64_t size = 0x4000,
                       uint64_t align = 0) {
    absl::StatusOr<Allocation> a = broker_->Alloc(vm, heap, size, align);
    RMEM_CHECK_OK(a);
    return *a;
  }
  Handle MustShare(VmId owner, BufferId b, VmId to, uint8_t rights) {
    const Offer o{to, Rights::Of(rights)};
    absl::StatusOr<Handle> h = broker_->Share(owner, b, {&o, 1});
    RMEM_CHECK_OK(h);
    return *h;
  }
  Handle MustLend(VmId owner, BufferId b, VmId to, uint8_t rights) {
    const Offer o{to, Rights::Of(rights)};
    absl::StatusOr<Handle> h = broker_->Lend(owner, b, {&o, 1});
    RMEM_CHECK_OK(h);
    return *h;
  }

  // What a rejected request returned (not a Status, which must be used).
  struct Rejection {
    absl::Status status;
    std::string message() const { return std::string(status.message()); }
    std::string ToString() const { return status.ToString(); }
  };

  // Runs `request`, expects it to fail with `code`, and expects the broker's
  // state and every backend's programmed access to be unchanged.
  template <typename F>
  Rejection ExpectRejected(absl::StatusCode code, F request) {
    const std::string before = broker_->DebugDump();
    const FakeMemory::Counters counters = fakes_.memory.counters();
    const absl::Status s = ::rmem::internal::StatusOf(request());
    EXPECT_EQ(s.code(), code) << s;
    EXPECT_EQ(broker_->DebugDump(), before) << "a rejected request changed state: " << s;
    EXPECT_EQ(fakes_.memory.counters().grants - counters.grants,
              fakes_.memory.counters().revokes - counters.revokes)
        << "a rejected request left a grant behind";
    return Rejection{s};
  }

  Access CpuAccess(VmId vm, const PageRange& r) const {
    return fakes_.memory.AccessOf(Party::Cpu(vm), r.first());
  }
  Access DeviceAccess(InitiatorId i, const PageRange& r) const {
    return fakes_.memory.AccessOf(Party::Device(i), r.first());
  }
  std::vector<Event> Events(VmId vm) { return broker_->DrainEvents(vm, 1000); }

  TestPlatform platform_;
  FakeBackends fakes_;
  std::unique_ptr<Broker> broker_;
};

}  // namespace rmem::testing

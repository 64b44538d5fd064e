// The isolation harness: runs a broker over the fake backends side by side
// with the reference model, one operation at a time, and after every
// operation checks:
//  1. outcome: the broker's status code is one the model accepts;
//  2. rejection changes nothing: on any error the broker's full state dump
//     is unchanged and no access was granted;
//  3. the isolation oracle: for every party (each VM's CPUs, every device
//     initiator), every page of every carve-out, and each access kind (read,
//     write), the fakes' programmed access allows it iff the model grants it;
//     with a firewall MODEL under test (TZC-400 or block controller), also
//     what that hardware model decides for each initiator's id at the first
//     and last byte of every page, and, between any two of the driver's
//     register writes, never more than the model allowed before or after
//     the operation and never less than it allowed both before and after;
//  4. no transient access: every grant made during the operation was
//     allowed by the model before or after it (when a backend failure was
//     injected, the failed request's own partial grant to the caller,
//     undone before it returns, is the one exception);
//  5. scrubbing: every page's possible writers since its last scrub are in
//     the lineage of the buffer now holding it (none for free pages), and
//     every grant exposed only such content;
//  6. conservation: per carve-out, free + allocated pages = total, and the
//     broker holds exactly the model's buffers;
//  7. events: each VM received exactly the events the model predicts, and
//     receivers never see buffer ids.
// With persistence on, the broker records its state in a real SQLite store
// (a temporary file), some injected failures hit the store instead of a
// backend (the request must fail and change nothing), and some words
// restart rmemd: the broker is dropped without a teardown, the backends'
// programming is reset (the firewall driver probes the same hardware model
// again), a new broker restores from the store, and every check above must
// hold against the unchanged reference model.
// Operations come from 64-bit words (so rapidcheck can generate and shrink
// them); each word decodes to one request from one VM, plausible most of the
// time and hostile otherwise (forged or stale ids, wrong owners, duplicate or
// self receivers, rights beyond ceilings, zero and huge sizes, bad
// alignments, unknown VMs and heaps), sometimes with a backend failure
// injected.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "broker/backend/fake_backends.h"
#include "broker/backend/firewall/firewall_model.h"
#include "absl/container/flat_hash_map.h"
#include "broker/broker.h"
#include "tests/broker/oracle/reference_model.h"
#include "tests/broker/state/failing_state_store.h"
#include "tests/broker/oracle/test_platform.h"

namespace rmem::testing {

struct HarnessStats {
  uint64_t ops = 0;
  uint64_t accepted = 0;
  uint64_t injected_failures = 0;
  std::map<std::string, uint64_t> by_op;  // "ALLOC ok", "SHARE NOT_FOUND", ...
  uint64_t access_checks = 0;             // (party, page, access kind) comparisons
  uint64_t transient_checks = 0;          // (grant, page) comparisons
  uint64_t scrub_checks = 0;              // (page) lineage comparisons
  uint64_t event_checks = 0;
  uint64_t state_checks = 0;  // unchanged-state and conservation checks
  // Requests refused while every TZC-400 grant region was in use.
  uint64_t region_refusals = 0;
  uint64_t restarts = 0;       // rmemd restarted from its state store
  uint64_t store_failures = 0; // requests refused because the store failed

  uint64_t total_checks() const {
    return access_checks + transient_checks + scrub_checks + event_checks + state_checks;
  }
  void Add(const HarnessStats& o);
};

// Which firewall the broker programs. kFake: the fakes alone. The others:
// the driver over the register-level model of that hardware (the fakes
// still record every grant, for the journal and scrub lineage checks).
enum class FirewallUnderTest {
  kFake,
  kTzc400,           // 8 grant regions (region 0 closed)
  kTzc400Scarce,     // a TZC-400 built with 2 programmable regions
  kBlockController,  // 4 KiB blocks
};
const char* FirewallUnderTestName(FirewallUnderTest f);

// The next operation word of a long seeded sequence (xorshift64; `state`
// must not be 0).
inline uint64_t NextWord(uint64_t& state) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

class IsolationHarness {
 public:
  // `seed` fixes the broker's id keys, so runs are reproducible.
  IsolationHarness(const TestPlatform& platform, uint64_t seed,
                   FirewallUnderTest firewall = FirewallUnderTest::kFake, bool persist = false);
  ~IsolationHarness();

  // Decodes and runs one operation, then checks every invariant. Returns ""
  // or a description of the first violation (with the operation).
  std::string Step(uint64_t word);
  // Tears down every VM (as if all guests died) and checks again: the pools
  // must be whole and clean.
  std::string TeardownAll();

  const HarnessStats& stats() const { return stats_; }
  const Broker& broker() const { return *broker_; }

 private:
  struct Outcome {
    std::string op;  // what was attempted, for messages
    VmId caller;
    Codes expected;
    absl::Status actual;
    std::string apply_error;  // from the model's Apply*
  };
  Outcome Execute(uint64_t word, bool& injected);
  // `failed_caller`: set when an injected backend failure failed the
  // request of this VM.
  std::string CheckInvariants(const ReferenceModel& before, bool rejected,
                              const std::string& dump_before, std::optional<VmId> failed_caller);
  std::string CheckEvents();
  // 3. and 4. against the firewall model's decisions. `restarted`: access
  // may have been missing between register writes (the restart window).
  std::string CheckHardware(const ReferenceModel& before, std::optional<VmId> failed_caller,
                            bool restarted);
  // (Re)creates the firewall driver over the hardware model (made on first
  // use) and the broker over the store; the driver's probe runs each time.
  void StartBroker();
  // rmemd dies and starts again from its store; then every check.
  std::string Restart();
  // What the hardware model lets `party` do on `pfn` (at its first and last
  // byte; "" or a mismatch description in `error`).
  Access HardwareAccess(const Party& party, Pfn pfn, std::string& error) const;
  // Every initiator's hardware access to every carve-out page, in order.
  std::vector<Access> HardwareSnapshot() const;
  // Why an ALLOC / RETRIEVE / RECLAIM may be refused for lack of a firewall
  // region: every grant region of the TZC-400 is in use.
  bool GrantRegionsFull() const;

  FakeBackends fakes_;  // before broker_: outlives it
  FirewallUnderTest firewall_kind_;
  std::unique_ptr<FirewallModel> hardware_;
  std::unique_ptr<Firewall> driver_;
  std::unique_ptr<Firewall> tee_;
  size_t grant_regions_ = 0;
  std::map<uint32_t, uint32_t> hw_ids_;  // initiator id -> its id at the firewall
  std::vector<PageRange> carveout_pages_;
  std::vector<std::vector<Access>> snapshots_;  // after each register write
  const TestPlatform platform_;
  absl::flat_hash_map<InitiatorId, uint32_t> fw_ids_;
  BrokerOptions broker_options_;
  std::string state_dir_;  // persistence: a temporary directory, else ""
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<FailingStateStore> failing_store_;
  bool restarted_ = false;
  bool trace_ = false;  // RMEM_HARNESS_TRACE set: every operation on stderr
  std::unique_ptr<Broker> broker_;
  ReferenceModel model_;
  HarnessStats stats_;
};

}  // namespace rmem::testing

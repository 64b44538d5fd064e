// Tzc400Firewall: the broker's driver for an Arm TZC-400 (TrustZone Address
// Space Controller). It reaches the controller only through a RegisterBus,
// so the same code drives the hardware (an MMIO window) and our model
// (Tzc400Model). Planning and its limits: docs/firewall.md.
//
// Regions. A TZC-400 has region 0 (the background, matching every address)
// and regions 1 to 8; it has NO region priority: an access that two enabled
// regions of one filter match is an overlap error (undefined; refused). So
// a carve-out cannot be guarded by one region with grants layered on top.
// Instead (the contract with firmware, docs/firewall.md):
//   region 0            firmware's, CLOSED to every NSAID: whatever no other
//                       region covers -- the carve-outs -- nobody
//                       non-secure reaches. The probe checks it.
//   regions 1 .. N-1    firmware's (normal memory); none may overlap a
//                       carve-out. N is the index the carve-outs name in
//                       `rmem,firewall = <&tzc N>`: the first region rmemd
//                       may use.
//   regions N .. 8      rmemd's GRANT REGIONS: each covers exactly one
//                       granted range (a buffer) with the NSAIDs that may
//                       read / write it; several initiators on one range
//                       share its region. Disabled when unused.
// Why one region per range and no coalescing of neighbouring buffers with
// equal rights: Revoke cannot fail, and a revoke inside a coalesced run
// would need a region that may not exist. With one region per range a
// revoke is always one write (narrow the id bitmaps, or disable the region),
// so every grant the driver admitted can always be taken back.
//
// Ordering: grant regions never overlap each other or firmware's. A new one
// is programmed while disabled (base, top, ids), read back, and only then
// enabled: its range goes from "region 0: nobody" to exactly the grant in
// one write. Adding or removing an initiator on a live range is one write of
// its id bitmaps; removing the last disables the region (one write). So
// between any two register writes every page is either as before or as
// after the call: nobody ever holds access that neither state gives, and
// nobody loses access both states give. Every write is read back; a
// mismatch (a register that did not take the value) on Grant undoes what
// was written and returns Internal; on Revoke it aborts rmemd (RMEM_CHECK),
// since failing open is not an option.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/backend/firewall.h"
#include "broker/backend/firewall/register_bus.h"

namespace rmem {

class Tzc400Firewall : public Firewall {
 public:
  // A carve-out behind the controller.
  struct Guarded {
    std::string name;  // for messages, e.g. the carve-out's node name
    PageRange pages;
  };
  // One region as the driver programmed it, for status output and tests.
  struct RegionView {
    uint32_t region = 0;
    PageRange pages;
    uint16_t read_ids = 0, write_ids = 0;
    size_t grants = 0;
  };

  // Probes the controller (part number, build configuration), checks the
  // contract above, disables any grant region a previous run left enabled,
  // sets the action to interrupt + DECERR and opens the filters' gates.
  // `first_region` is N above; `ids` maps each initiator behind this
  // controller to its NSAID.
  // InvalidArgument: first_region not in 1..last region; a carve-out
  // beyond the address width; an NSAID >= 16. FailedPrecondition: not a
  // TZC-400; region 0 open to some NSAID; a firmware region overlapping a
  // carve-out. Internal: a register did not take a value.
  static absl::StatusOr<std::unique_ptr<Tzc400Firewall>> Create(
      std::string name, RegisterBus* bus, std::vector<Guarded> carveouts, uint32_t first_region,
      absl::flat_hash_map<InitiatorId, uint32_t> ids);

  // NotFound: an initiator without an NSAID here. InvalidArgument: pages
  // not inside one guarded carve-out. ResourceExhausted: every grant region
  // is in use, or the range overlaps a granted range without being equal
  // to it (no region can express it without widening someone else's
  // rights). Internal: a register did not take a value (nothing changed).
  absl::Status Grant(InitiatorId initiator, PageRange pages, Access access) override;
  void Revoke(InitiatorId initiator, PageRange pages) override;

  const std::string& name() const { return name_; }
  // Grant regions: all, and those programmed now.
  size_t grant_region_count() const { return grant_regions_.size(); }
  std::vector<RegionView> regions() const;
  // Register writes this driver made since it was created (probe included).
  uint64_t register_writes() const { return writes_; }

 private:
  struct GrantRecord {
    InitiatorId initiator;
    Access access;
  };
  struct Slot {
    uint32_t region = 0;
    std::optional<PageRange> pages;  // set while programmed
    std::vector<GrantRecord> grants;
  };
  Tzc400Firewall(std::string name, RegisterBus* bus, std::vector<Guarded> carveouts,
                 absl::flat_hash_map<InitiatorId, uint32_t> ids)
      : name_(std::move(name)), bus_(bus), carveouts_(std::move(carveouts)),
        ids_(std::move(ids)) {}

  absl::Status Probe(uint32_t first_region);
  uint32_t Read(uint32_t offset);
  void Write(uint32_t offset, uint32_t value);
  // Writes and reads back; false if the register did not take the value.
  bool WriteChecked(uint32_t offset, uint32_t value);
  // Programs base and top (disabled region), checked.
  bool WriteRange(uint32_t region, PageRange pages);
  uint32_t IdAccessOf(const Slot& slot) const;
  bool InOneCarveout(PageRange pages) const;
  std::string Where(PageRange pages) const;

  std::string name_;
  RegisterBus* bus_;
  std::vector<Guarded> carveouts_;
  absl::flat_hash_map<InitiatorId, uint32_t> ids_;
  uint32_t filter_mask_ = 1;
  uint32_t secure_bits_ = 0;  // region 0's: what the Secure world may do
  std::vector<Slot> grant_regions_;
  uint64_t writes_ = 0;
};

}  // namespace rmem

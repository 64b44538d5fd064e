// Tzc400Model: a register-accurate MODEL of the Arm CoreLink TZC-400
// TrustZone Address Space Controller, which this machine lacks. rmemd's
// driver programs it through Read32/Write32 exactly as it would program the
// hardware; tests ask it what the hardware would decide for a bus access.
// It restricts no real DMA master.
//
// Followed: the TZC-400 TRM (Arm DDI 0504), chapter 2 (regions, region
// access rules, gate keeper, failure reporting) and chapter 3 (register
// summary and descriptions), as quoted by public sources (Arm's arm-tzc
// crate docs, TF-A and OP-TEE tzc400 headers, and the register chapters of
// SoC manuals that embed a TZC-400). What the model does:
//
//   Reset       build_config = Options (each field value-1); action 0
//               (tzc_int LOW, OKAY); gate keeper 0: every gate CLOSED;
//               speculation_ctrl 0; int_status 0; fail registers 0.
//               Region 0: base 0 and top 2^address_width-1, both RO;
//               attributes: s_rd_en/s_wr_en RW (reset 0), filter_en RO with
//               every implemented filter's bit set; id_access RW (reset 0).
//               Regions 1..n: every register 0, so filter_en 0 (disabled).
//   Registers   base_low[11:0] read as 0, top_low[11:0] read as 1 (top is
//               inclusive, 4 KiB granule); high words and fail_address_high
//               keep only the bits below address_width (RAZ/WI above).
//               Bits of unimplemented filters (gate keeper, filter_en,
//               int_clear) are RAZ/WI. OUR CHOICE where the TRM says
//               "reserved": unimplemented regions or filters, reserved or
//               unaligned offsets and offsets >= 0x1000 read 0 and ignore
//               writes; int_clear (WO) reads 0. Every Read32 is counted,
//               every Write32 is counted and observed, ignored or not.
//   Gate keeper open_status follows open_request at once (no accesses are
//               in flight in a model). An access through a closed gate is
//               not evaluated: on hardware it stalls, here it is refused
//               without a failure record (counted in stalled()).
//   Decision    for an access through filter f, with the gate open:
//               region r >= 1 matches iff filter_en[f] and base <= address
//               <= top; region 0 matches every address below 2^width.
//               The TZC-400 has NO region priority (that was the TZC-380):
//               if no region r >= 1 matches, region 0 decides; if exactly
//               one matches, it decides; if two or more match, the TRM
//               calls the result undefined and flags int_status.overlap[f]
//               -- this model DENIES such an access (fail closed). Regions
//               may overlap region 0, or each other on different filters.
//               Secure accesses check s_rd_en/s_wr_en only; non-secure
//               ones check nsaid_rd_en/nsaid_wr_en bit [id]; an id >= 16
//               (no such NSAID signal) is never permitted. An address at or
//               above 2^address_width cannot reach a real filter; the model
//               denies it.
//   Failures    (Access only) a denied access sets int_status.status[f] and
//               latches fail_address_low/high, fail_control (write [24],
//               non_secure [21], privileged [20] = 0: we carry no privilege
//               information) and fail_id (id = the access's id, vnet 0: no
//               virtual networks here) -- unless status[f] is already set,
//               in which case overrun[f] is set and nothing is overwritten.
//               An overlapping access also sets overlap[f]. int_clear bit f
//               clears status, overrun and overlap of filter f. tzc_int
//               (interrupt()) is asserted while action selects HIGH and some
//               status bit is set. The OKAY/DECERR response is not modelled.
//   ID regs     PID0..4 = 0x60, 0xb4, 0x0b, 0x00, 0x04 (part 0x460, Arm
//               JEP106, revision field 0), PID5..7 = 0; CID0..3 = 0x0d,
//               0xf0, 0x05, 0xb1.
#pragma once

#include <array>
#include <cstdint>

#include "absl/container/flat_hash_set.h"
#include "broker/backend/firewall/firewall_model.h"
#include "broker/backend/firewall/tzc400_registers.h"

namespace rmem {

class Tzc400Model : public FirewallModel {
 public:
  // The build configuration (RTL parameters) of the modelled controller.
  // Values outside the ranges are our bug: the constructor CHECKs them.
  struct Options {
    uint32_t regions = 9;         // including region 0: 1..9
    uint32_t filters = 1;         // 1..4
    uint32_t address_width = 40;  // 32..64
  };

  // (Two constructors, not `Options options = {}`: clang rejects a default
  // argument that needs a nested struct's member initializers in-class.)
  Tzc400Model() : Tzc400Model(Options{}) {}
  explicit Tzc400Model(Options options);

  uint32_t Read32(uint32_t offset) override;
  void Write32(uint32_t offset, uint32_t value) override;

  // Through filter 0.
  bool Permits(const BusAccess& access) const override;
  bool Access(const BusAccess& access) override;
  // Through `filter` (< Options::filters, CHECKed).
  bool PermitsThrough(uint32_t filter, const BusAccess& access) const;
  bool AccessThrough(uint32_t filter, const BusAccess& access);

  // Test hook: writes to `offset` are silently dropped (a stuck or locked
  // register), to test a driver's read-back and rollback. Dropped writes
  // are still counted and observed.
  void DropWritesTo(uint32_t offset);
  void ClearDroppedWrites();

  // Whether tzc_int is asserted.
  bool interrupt() const;
  // Accesses denied by Access/AccessThrough (not stalled ones).
  uint64_t failures() const { return failures_; }
  // Accesses refused because their filter's gate was closed.
  uint64_t stalled() const { return stalled_; }

 private:
  enum class Decision { kPermit, kDeny, kOverlap, kGateClosed };

  // The six registers of one region, as stored (low words already masked).
  struct Region {
    uint32_t base_low = 0, base_high = 0, top_low = 0, top_high = 0;
    uint32_t attributes = 0, id_access = 0;
    uint64_t base() const { return (uint64_t{base_high} << 32) | base_low; }
    uint64_t top() const { return (uint64_t{top_high} << 32) | top_low | 0xfff; }
  };
  struct FailRecord {
    uint32_t address_low = 0, address_high = 0, control = 0, id = 0;
  };

  Decision Decide(uint32_t filter, const BusAccess& access) const;
  void RecordFailure(uint32_t filter, const BusAccess& access, bool overlap);
  uint32_t ReadRegion(uint32_t region, uint32_t reg) const;
  void WriteRegion(uint32_t region, uint32_t reg, uint32_t value);
  uint32_t ReadIdRegister(uint32_t offset) const;
  uint32_t filter_mask() const { return (1u << options_.filters) - 1; }

  const Options options_;
  const uint32_t high_mask_;     // bits of a high word below address_width
  const uint64_t max_address_;   // 2^address_width - 1
  uint32_t action_ = 0;
  uint32_t gate_open_ = 0;       // open_request == open_status, per filter
  uint32_t speculation_ = 0;
  uint32_t int_status_ = 0;
  std::array<FailRecord, tzc400::kMaxFilters> fail_{};
  std::array<Region, tzc400::kMaxRegions> regions_{};
  absl::flat_hash_set<uint32_t> dropped_;
  uint64_t failures_ = 0;
  uint64_t stalled_ = 0;
};

}  // namespace rmem

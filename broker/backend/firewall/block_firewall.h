// BlockFirewall: the broker's driver for a block-granular bus firewall (the
// register map of block_controller_registers.h). It reaches the controller
// only through a RegisterBus; on this machine that bus is the register
// MODEL BlockControllerModel, since there is no such hardware here.
//
// What it guarantees:
//   - Only blocks of the guarded ranges (the carve-outs behind this
//     controller) are ever written; other blocks keep whatever firmware set.
//   - After Create, every guarded block permits nobody until granted, and
//     the controller is enabled.
//   - A block's permission word is always the OR, over the live grants
//     covering it, of the grant's domain bits for its access (grants form a
//     multiset: the same range may be granted several times).
//   - Each block word is one 32-bit write, so a Grant only widens and a
//     Revoke only narrows every block at every step: between any two
//     writes, nothing outside old ∪ new is permitted and nothing in
//     old ∩ new is denied. Only words that change are written.
//   - Every written word is read back. A Grant whose write did not take
//     restores the blocks it wrote (narrowing them back) and fails with
//     Internal: nothing changed. A Revoke cannot report failure, and a
//     permission that will not go away is a hardware fault we must not
//     fail open on, so a Revoke read-back mismatch CHECK-fails.
//
// The alignment rule: a grant must start and end on block boundaries. A
// block has one word for all its pages, so a partial block could only be
// granted by granting the whole block -- widening the initiator's rights to
// pages of another buffer. Grant refuses with ResourceExhausted (as a
// region-based firewall does when it runs out of regions) and the broker
// refuses the request. Heaps over carve-outs behind such a controller should
// therefore allocate in multiples of, and aligned to, the block size.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/backend/firewall.h"
#include "broker/backend/firewall/block_controller_registers.h"
#include "broker/backend/firewall/register_bus.h"

namespace rmem {

class BlockFirewall : public Firewall {
 public:
  // Reads the controller's geometry (CONFIG, BLOCK_COUNT, WINDOW_BASE),
  // validates the configuration, then probes: every block of `guarded` is
  // set to permit nobody and the controller is enabled. `domains` maps each
  // initiator to its domain at this controller. `bus` must outlive the
  // driver. Errors:
  //   Unimplemented       the controller reports a register map revision
  //                       this driver does not know;
  //   FailedPrecondition  the geometry it reports is nonsense;
  //   InvalidArgument     a guarded range is empty, outside the window, not
  //                       on block boundaries or overlaps another; a domain
  //                       is >= the controller's domain count, or two
  //                       initiators share one (a grant to one would be a
  //                       grant to both);
  //   Internal            a probe write did not take (read back differs).
  static absl::StatusOr<std::unique_ptr<BlockFirewall>> Create(
      RegisterBus* bus, std::vector<PageRange> guarded,
      absl::flat_hash_map<InitiatorId, uint32_t> domains);

  // Errors (nothing changed on any of them):
  //   NotFound           `initiator` has no domain at this controller;
  //   InvalidArgument    `pages` is empty or not inside one guarded range;
  //   ResourceExhausted  `pages` does not start and end on block boundaries;
  //   Internal           a block write did not take; rolled back.
  // `access` must not be kNone (our bug: CHECK).
  absl::Status Grant(InitiatorId initiator, PageRange pages, Access access) override;
  // Removes the earliest live grant of exactly `pages` to `initiator`
  // (CHECK-fails if there is none) and narrows the blocks it covered.
  void Revoke(InitiatorId initiator, PageRange pages) override;

  uint64_t block_size() const { return uint64_t{1} << block_shift_; }
  // Register writes this driver made (probe and rollback included).
  uint64_t register_writes() const { return register_writes_; }

 private:
  struct Geometry {
    uint64_t window_base;
    uint32_t block_shift;
    uint32_t block_count;
    uint32_t domains;
  };
  struct LiveGrant {
    PageRange pages;
    Access access;
  };
  struct BlockWrite {
    uint32_t block;
    uint32_t old_word;
    uint32_t new_word;
  };
  // Per block: how many live grants hold each of the 32 permission bits.
  using BitRefs = std::array<uint32_t, 32>;

  BlockFirewall(RegisterBus* bus, const Geometry& geometry, std::vector<PageRange> guarded,
                absl::flat_hash_map<InitiatorId, uint32_t> domains);
  static absl::StatusOr<Geometry> ReadGeometry(RegisterBus* bus);
  absl::Status Probe();

  void Write(uint32_t offset, uint32_t value);
  // Writes one permission word and reads it back; false on mismatch.
  bool WriteBlock(uint32_t block, uint32_t word);
  // Writes `plan` in order. On a mismatch, restores every block already
  // written (in reverse, so each step narrows) and returns Internal naming
  // the block; CHECK-fails if a restore does not take either.
  absl::Status Apply(const std::vector<BlockWrite>& plan);

  uint32_t BlockOf(PageRange pages) const;  // index of the first block
  uint32_t BlocksIn(PageRange pages) const;
  bool OnBlockBoundaries(PageRange pages) const;
  bool IsGuarded(PageRange pages) const;
  static uint32_t Bits(uint32_t domain, Access access);

  RegisterBus* bus_;
  uint64_t window_base_;
  uint32_t block_shift_;
  std::vector<PageRange> guarded_;  // sorted, disjoint
  absl::flat_hash_map<InitiatorId, uint32_t> domains_;
  absl::flat_hash_map<InitiatorId, std::vector<LiveGrant>> grants_;
  std::vector<uint32_t> words_;  // per block: what the driver programmed
  std::vector<BitRefs> refs_;    // per block
  uint64_t register_writes_ = 0;
};

}  // namespace rmem

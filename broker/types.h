// The vocabulary every rmem module shares: typed addresses, page frame
// numbers and page ranges with checked arithmetic, and the ids of VMs,
// device initiators, buffers and handles. No bare uint64_t address crosses a
// module boundary; use these.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rmem {

inline constexpr uint64_t kPageShift = 12;
inline constexpr uint64_t kPageSize = uint64_t{1} << kPageShift;  // 4 KiB
// Page frame numbers are limited so that every page range's byte size and
// end address fit in 64 bits: pfn < 2^52.
inline constexpr uint64_t kPfnLimit = uint64_t{1} << (64 - kPageShift);

// Checked arithmetic: nullopt on overflow.
constexpr std::optional<uint64_t> CheckedAdd(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}
constexpr std::optional<uint64_t> CheckedMul(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}
constexpr bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Bytes rounded up to whole pages; nullopt if the rounding overflows.
constexpr std::optional<uint64_t> BytesToPagesRoundUp(uint64_t bytes) {
  const std::optional<uint64_t> padded = CheckedAdd(bytes, kPageSize - 1);
  if (!padded) return std::nullopt;
  return *padded >> kPageShift;
}

// "0x1f": how every id and address is printed in messages and logs.
inline std::string Hex(uint64_t v) { return absl::StrFormat("0x%x", v); }

// An address in one address space; the tag keeps host-physical and
// guest-physical addresses from mixing.
template <typename Tag>
class Address {
 public:
  constexpr Address() = default;
  constexpr explicit Address(uint64_t value) : value_(value) {}
  constexpr uint64_t value() const { return value_; }
  constexpr bool IsPageAligned() const { return (value_ & (kPageSize - 1)) == 0; }
  constexpr std::optional<Address> Plus(uint64_t bytes) const {
    const std::optional<uint64_t> r = CheckedAdd(value_, bytes);
    if (!r) return std::nullopt;
    return Address(*r);
  }
  std::string ToString() const { return Hex(value_); }
  constexpr auto operator<=>(const Address&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, Address a) {
    return H::combine(std::move(h), a.value_);
  }

 private:
  uint64_t value_ = 0;
};
struct HostPhysTag;
struct GuestPhysTag;
using PhysAddr = Address<HostPhysTag>;    // host (bus) physical address
using GuestAddr = Address<GuestPhysTag>;  // guest physical address (IPA)

// A number of 4 KiB pages.
class PageCount {
 public:
  constexpr PageCount() = default;
  constexpr explicit PageCount(uint64_t pages) : pages_(pages) {}
  constexpr uint64_t value() const { return pages_; }
  // Exact for every count below kPfnLimit; larger counts saturate, which no
  // valid range can hold.
  constexpr uint64_t bytes() const {
    return pages_ < kPfnLimit ? pages_ << kPageShift : UINT64_MAX;
  }
  constexpr auto operator<=>(const PageCount&) const = default;

 private:
  uint64_t pages_ = 0;
};

// A physical page frame number (host physical address >> 12).
class Pfn {
 public:
  constexpr Pfn() = default;
  constexpr explicit Pfn(uint64_t pfn) : pfn_(pfn) {}
  static constexpr Pfn Of(PhysAddr a) { return Pfn(a.value() >> kPageShift); }
  constexpr uint64_t value() const { return pfn_; }
  constexpr PhysAddr addr() const { return PhysAddr(pfn_ << kPageShift); }
  constexpr auto operator<=>(const Pfn&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, Pfn p) {
    return H::combine(std::move(h), p.pfn_);
  }

 private:
  uint64_t pfn_ = 0;
};

// A half-open range of physical pages [first, first + count). Invariant:
// first + count <= kPfnLimit, so byte addresses never overflow.
class PageRange {
 public:
  constexpr PageRange() = default;
  // nullopt unless base and size are page aligned and base + size fits.
  static constexpr std::optional<PageRange> FromBytes(PhysAddr base, uint64_t size) {
    if (!base.IsPageAligned() || (size & (kPageSize - 1)) != 0) return std::nullopt;
    return FromPages(Pfn::Of(base), PageCount(size >> kPageShift));
  }
  // nullopt if first + count exceeds the pfn limit.
  static constexpr std::optional<PageRange> FromPages(Pfn first, PageCount count) {
    const std::optional<uint64_t> end = CheckedAdd(first.value(), count.value());
    if (!end || *end > kPfnLimit) return std::nullopt;
    return PageRange(first, count);
  }

  constexpr Pfn first() const { return first_; }
  constexpr PageCount count() const { return count_; }
  constexpr Pfn end() const { return Pfn(first_.value() + count_.value()); }
  constexpr PhysAddr base() const { return first_.addr(); }
  constexpr uint64_t size_bytes() const { return count_.bytes(); }
  constexpr bool empty() const { return count_.value() == 0; }
  constexpr bool Contains(Pfn p) const { return p >= first_ && p < end(); }
  constexpr bool Contains(const PageRange& o) const {
    return o.first_ >= first_ && o.end() <= end();
  }
  constexpr bool Overlaps(const PageRange& o) const {
    return !empty() && !o.empty() && first_ < o.end() && o.first_ < end();
  }
  // "[0x80000000, 0x80200000)"
  std::string ToString() const {
    return absl::StrFormat("[%#x, %#x)", base().value(), end().addr().value());
  }
  constexpr bool operator==(const PageRange&) const = default;

 private:
  constexpr PageRange(Pfn first, PageCount count) : first_(first), count_(count) {}
  Pfn first_;
  PageCount count_;
};

// An opaque integer id; the tag keeps the kinds apart.
template <typename Tag, typename Rep>
class Id {
 public:
  constexpr Id() = default;
  constexpr explicit Id(Rep value) : value_(value) {}
  constexpr Rep value() const { return value_; }
  constexpr auto operator<=>(const Id&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, Id id) {
    return H::combine(std::move(h), id.value_);
  }

 private:
  Rep value_ = 0;
};

// VM ids are small numbers chosen by the integrator; 0 is the host and is
// never a guest.
using VmId = Id<struct VmIdTag, uint32_t>;
inline constexpr VmId kHostVm{0};
// A device initiator (DMA master) as the bus firewall knows it.
using InitiatorId = Id<struct InitiatorIdTag, uint32_t>;
// Buffer ids and handles are 64-bit, never 0, never reused, unguessable.
using BufferId = Id<struct BufferIdTag, uint64_t>;
using Handle = Id<struct HandleTag, uint64_t>;

inline std::string VmName(VmId vm) { return absl::StrCat("vm ", vm.value()); }
inline std::string BufferName(BufferId b) { return "buffer " + Hex(b.value()); }
inline std::string HandleName(Handle h) { return "handle " + Hex(h.value()); }

}  // namespace rmem

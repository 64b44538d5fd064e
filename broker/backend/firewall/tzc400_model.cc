// Tzc400Model: the register file and the access decision of a MODELLED
// TZC-400 (see tzc400_model.h for the behaviour and the TRM reading).
#include "broker/backend/firewall/tzc400_model.h"

#include "broker/check.h"

namespace rmem {
namespace {

using namespace tzc400;  // NOLINT: the register map reads better unqualified

constexpr uint32_t kRegionFrameBase = RegionBaseLow(0);
constexpr uint32_t kRegionStride = RegionBaseLow(1) - RegionBaseLow(0);
constexpr uint32_t kFailFrameBase = FailAddressLow(0);
constexpr uint32_t kFailStride = FailAddressLow(1) - FailAddressLow(0);
constexpr uint32_t kSecureEnables = kAttrSecureWriteEnable | kAttrSecureReadEnable;
constexpr uint32_t kGranuleMask = kRegionGranule - 1;
constexpr uint32_t kSpeculationMask = 0x3;

// Offsets of the six registers within one region's 0x20-byte frame.
enum RegionReg : uint32_t {
  kBaseLow = 0x00, kBaseHigh = 0x04, kTopLow = 0x08, kTopHigh = 0x0c,
  kAttributes = 0x10, kIdAccess = 0x14,
};
// Offsets of the four registers within one filter's 0x10-byte fail frame.
enum FailReg : uint32_t { kFailAddrLow = 0x0, kFailAddrHigh = 0x4, kFailCtrl = 0x8, kFailId = 0xc };

uint32_t HighMask(uint32_t address_width) {
  if (address_width <= 32) return 0;
  if (address_width >= 64) return 0xffffffffu;
  return (1u << (address_width - 32)) - 1;
}

}  // namespace

Tzc400Model::Tzc400Model(Options options)
    : options_(options),
      high_mask_(HighMask(options.address_width)),
      max_address_((uint64_t{high_mask_} << 32) | 0xffffffffu) {
  RMEM_CHECK(options.regions >= 1 && options.regions <= kMaxRegions);
  RMEM_CHECK(options.filters >= 1 && options.filters <= kMaxFilters);
  RMEM_CHECK(options.address_width >= 32 && options.address_width <= 64);
}

uint32_t Tzc400Model::Read32(uint32_t offset) {
  CountRead();
  if (offset >= kFrameSize || offset % 4 != 0) return 0;
  switch (offset) {
    case kBuildConfig:
      return ((options_.regions - 1) << kBuildNoOfRegionsShift) |
             ((options_.address_width - 1) << kBuildAddressWidthShift) |
             ((options_.filters - 1) << kBuildNoOfFiltersShift);
    case kAction: return action_;
    case kGateKeeper:
      return (gate_open_ << kGateOpenRequestShift) | (gate_open_ << kGateOpenStatusShift);
    case kSpeculationCtrl: return speculation_;
    case kIntStatus: return int_status_;
    default: break;
  }
  if (offset >= kFailFrameBase && offset < kFailFrameBase + kFailStride * options_.filters) {
    const FailRecord& fail = fail_[(offset - kFailFrameBase) / kFailStride];
    switch ((offset - kFailFrameBase) % kFailStride) {
      case kFailAddrLow: return fail.address_low;
      case kFailAddrHigh: return fail.address_high;
      case kFailCtrl: return fail.control;
      case kFailId: return fail.id;
    }
  }
  if (offset >= kRegionFrameBase && offset < kRegionFrameBase + kRegionStride * options_.regions) {
    return ReadRegion((offset - kRegionFrameBase) / kRegionStride,
                      (offset - kRegionFrameBase) % kRegionStride);
  }
  return ReadIdRegister(offset);
}

uint32_t Tzc400Model::ReadRegion(uint32_t region, uint32_t reg) const {
  const Region& r = regions_[region];
  if (region == 0) {
    switch (reg) {
      case kBaseLow: case kBaseHigh: return 0;
      case kTopLow: return 0xffffffffu;
      case kTopHigh: return high_mask_;
      case kAttributes: return r.attributes | filter_mask();
      case kIdAccess: return r.id_access;
      default: return 0;  // 0x18, 0x1c: reserved
    }
  }
  switch (reg) {
    case kBaseLow: return r.base_low;
    case kBaseHigh: return r.base_high;
    case kTopLow: return r.top_low | kGranuleMask;
    case kTopHigh: return r.top_high;
    case kAttributes: return r.attributes;
    case kIdAccess: return r.id_access;
    default: return 0;
  }
}

uint32_t Tzc400Model::ReadIdRegister(uint32_t offset) const {
  switch (offset) {
    case kPid0: return kPartNumber & 0xff;
    case kPid1: return 0xb0 | (kPartNumber >> 8);  // des_0 = 0xb (Arm), part[11:8]
    case kPid2: return 0x0b;  // revision 0, jedec_used, des_1 = 0x3
    case kPid3: return 0x00;
    case kPid4: return 0x04;  // 4 KiB frame, des_2 = 0x4 (Arm's JEP106 bank)
    case kCid0: return 0x0d;
    case kCid1: return 0xf0;
    case kCid2: return 0x05;
    case kCid3: return 0xb1;
    default: return 0;  // PID5..7 and every reserved offset
  }
}

void Tzc400Model::Write32(uint32_t offset, uint32_t value) {
  const bool effective = offset < kFrameSize && offset % 4 == 0 && !dropped_.contains(offset);
  if (effective) {
    switch (offset) {
      case kAction: action_ = value & kActionMask; break;
      case kGateKeeper: gate_open_ = (value >> kGateOpenRequestShift) & filter_mask(); break;
      case kSpeculationCtrl: speculation_ = value & kSpeculationMask; break;
      case kIntClear:
        for (uint32_t f = 0; f < options_.filters; ++f) {
          if ((value & kIntClearMask) & (1u << f)) {
            int_status_ &= ~((1u << (kIntStatusShift + f)) | (1u << (kIntOverrunShift + f)) |
                             (1u << (kIntOverlapShift + f)));
          }
        }
        break;
      default:
        if (offset >= kRegionFrameBase &&
            offset < kRegionFrameBase + kRegionStride * options_.regions) {
          WriteRegion((offset - kRegionFrameBase) / kRegionStride,
                      (offset - kRegionFrameBase) % kRegionStride, value);
        }
        break;  // build_config, int_status, fail and id registers: RO
    }
  }
  AfterWrite(offset, value);
}

void Tzc400Model::WriteRegion(uint32_t region, uint32_t reg, uint32_t value) {
  Region& r = regions_[region];
  if (region == 0) {
    if (reg == kAttributes) r.attributes = value & kSecureEnables;  // filter_en RO
    if (reg == kIdAccess) r.id_access = value;
    return;  // base and top are RO
  }
  switch (reg) {
    case kBaseLow: r.base_low = value & ~kGranuleMask; break;
    case kBaseHigh: r.base_high = value & high_mask_; break;
    case kTopLow: r.top_low = value & ~kGranuleMask; break;
    case kTopHigh: r.top_high = value & high_mask_; break;
    case kAttributes: r.attributes = value & (kSecureEnables | filter_mask()); break;
    case kIdAccess: r.id_access = value; break;
    default: break;
  }
}

Tzc400Model::Decision Tzc400Model::Decide(uint32_t filter, const BusAccess& access) const {
  RMEM_CHECK(filter < options_.filters);
  if ((gate_open_ & (1u << filter)) == 0) return Decision::kGateClosed;
  if (access.address > max_address_) return Decision::kDeny;
  uint32_t chosen = 0, matches = 0;
  for (uint32_t r = 1; r < options_.regions; ++r) {
    const Region& region = regions_[r];
    if ((region.attributes & (1u << filter)) != 0 && region.base() <= access.address &&
        access.address <= region.top()) {
      chosen = r;
      ++matches;
    }
  }
  if (matches > 1) return Decision::kOverlap;
  const Region& region = regions_[chosen];
  bool permitted;
  if (access.secure) {
    permitted = region.attributes & (access.write ? kAttrSecureWriteEnable : kAttrSecureReadEnable);
  } else {
    const uint32_t shift = access.write ? kIdWriteShift : kIdReadShift;
    permitted = access.id < kNsaids && ((region.id_access >> (shift + access.id)) & 1) != 0;
  }
  return permitted ? Decision::kPermit : Decision::kDeny;
}

bool Tzc400Model::Permits(const BusAccess& access) const { return PermitsThrough(0, access); }
bool Tzc400Model::Access(const BusAccess& access) { return AccessThrough(0, access); }

bool Tzc400Model::PermitsThrough(uint32_t filter, const BusAccess& access) const {
  return Decide(filter, access) == Decision::kPermit;
}

bool Tzc400Model::AccessThrough(uint32_t filter, const BusAccess& access) {
  switch (Decide(filter, access)) {
    case Decision::kPermit: return true;
    case Decision::kGateClosed: ++stalled_; return false;
    case Decision::kDeny: RecordFailure(filter, access, /*overlap=*/false); return false;
    case Decision::kOverlap: RecordFailure(filter, access, /*overlap=*/true); return false;
  }
  return false;
}

void Tzc400Model::RecordFailure(uint32_t filter, const BusAccess& access, bool overlap) {
  ++failures_;
  if (overlap) int_status_ |= 1u << (kIntOverlapShift + filter);
  const uint32_t status_bit = 1u << (kIntStatusShift + filter);
  if (int_status_ & status_bit) {
    int_status_ |= 1u << (kIntOverrunShift + filter);
    return;  // the first failure stays latched until int_clear
  }
  int_status_ |= status_bit;
  FailRecord& fail = fail_[filter];
  fail.address_low = static_cast<uint32_t>(access.address);
  fail.address_high = static_cast<uint32_t>(access.address >> 32) & high_mask_;
  fail.control = (access.write ? kFailControlWrite : 0) |
                 (access.secure ? 0 : kFailControlNonSecure);  // privileged: unknown, 0
  fail.id = access.id & kFailIdIdMask;  // vnet [27:24] = 0
}

void Tzc400Model::DropWritesTo(uint32_t offset) { dropped_.insert(offset); }
void Tzc400Model::ClearDroppedWrites() { dropped_.clear(); }

bool Tzc400Model::interrupt() const {
  const bool drive_high = (action_ & kActionHighOkay) != 0;  // action[1]: tzc_int HIGH
  return drive_high && ((int_status_ >> kIntStatusShift) & filter_mask()) != 0;
}

}  // namespace rmem

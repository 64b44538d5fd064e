// BlockControllerModel: the registers of block_controller_registers.h and
// the decision they encode. A MODEL of hardware this machine lacks.
#include "broker/backend/firewall/block_controller_model.h"

#include "broker/check.h"
#include "broker/types.h"

namespace rmem {

namespace bc = block_controller;

BlockControllerModel::BlockControllerModel(const Options& options)
    : window_base_(options.window_base), window_size_(options.window_size) {
  RMEM_CHECK(IsPowerOfTwo(options.block_size));
  RMEM_CHECK(options.block_size >= (uint64_t{1} << bc::kMinBlockShift));
  block_shift_ = static_cast<uint32_t>(__builtin_ctzll(options.block_size));
  RMEM_CHECK(options.window_size != 0);
  RMEM_CHECK(options.window_base % options.block_size == 0);
  RMEM_CHECK(options.window_size % options.block_size == 0);
  RMEM_CHECK(CheckedAdd(options.window_base, options.window_size).has_value());
  const uint64_t blocks = options.window_size >> block_shift_;
  RMEM_CHECK(blocks <= bc::kMaxBlocks);
  perm_.assign(blocks, 0);
}

uint32_t BlockControllerModel::RegisterValue(uint32_t offset) const {
  switch (offset) {
    case bc::kConfig:
      return (block_shift_ << bc::kConfigBlockShiftShift) |
             (bc::kDomains << bc::kConfigDomainsShift) |
             (bc::kMapRevision << bc::kConfigRevisionShift);
    case bc::kBlockCount:
      return block_count();
    case bc::kWindowBaseLow:
      return static_cast<uint32_t>(window_base_);
    case bc::kWindowBaseHigh:
      return static_cast<uint32_t>(window_base_ >> 32);
    case bc::kCtrl:
      return ctrl_;
    case bc::kFaultStatus:
      return fault_status_;
    case bc::kFaultAddrLow:
      return static_cast<uint32_t>(fault_addr_);
    case bc::kFaultAddrHigh:
      return static_cast<uint32_t>(fault_addr_ >> 32);
    default:
      break;
  }
  if (offset >= bc::kBlockPermBase && offset % 4 == 0) {
    const uint32_t block = (offset - bc::kBlockPermBase) / 4;
    if (block < perm_.size()) return perm_[block];
  }
  return 0;  // RAZ, including write-only FAULT_CLEAR
}

uint32_t BlockControllerModel::Read32(uint32_t offset) {
  CountRead();
  return RegisterValue(offset);
}

void BlockControllerModel::Store(uint32_t offset, uint32_t value) {
  switch (offset) {
    case bc::kCtrl:
      ctrl_ = value & bc::kCtrlMask;
      return;
    case bc::kFaultClear:
      if (value & bc::kFaultValid) {
        fault_status_ = 0;
        fault_addr_ = 0;
      } else if (value & bc::kFaultOverrun) {
        fault_status_ &= ~bc::kFaultOverrun;
      }
      return;
    default:
      break;
  }
  if (offset >= bc::kBlockPermBase && offset % 4 == 0) {
    const uint32_t block = (offset - bc::kBlockPermBase) / 4;
    if (block < perm_.size()) perm_[block] = value;
  }
  // Everything else is read-only or unallocated: write ignored.
}

void BlockControllerModel::Write32(uint32_t offset, uint32_t value) {
  if (!dropped_.contains(offset)) Store(offset, value);
  AfterWrite(offset, value);
}

bool BlockControllerModel::Permits(const BusAccess& access) const {
  if (access.address < window_base_ || access.address - window_base_ >= window_size_) {
    return true;  // not this controller's window
  }
  if (access.secure) return true;
  if ((ctrl_ & bc::kCtrlEnable) == 0) return true;
  if (access.id >= bc::kDomains) return false;
  const uint32_t word = perm_[(access.address - window_base_) >> block_shift_];
  return (word & (access.write ? bc::WriteBit(access.id) : bc::ReadBit(access.id))) != 0;
}

bool BlockControllerModel::Access(const BusAccess& access) {
  if (Permits(access)) return true;
  ++failures_;
  if (fault_status_ & bc::kFaultValid) {
    fault_status_ |= bc::kFaultOverrun;
  } else {
    fault_status_ = bc::kFaultValid | (access.write ? bc::kFaultWrite : 0) |
                    ((access.id & bc::kFaultDomainMask) << bc::kFaultDomainShift);
    fault_addr_ = access.address;
  }
  return false;
}

bool BlockControllerModel::interrupt() const {
  return (ctrl_ & bc::kCtrlFaultIrq) != 0 && (fault_status_ & bc::kFaultValid) != 0;
}

}  // namespace rmem

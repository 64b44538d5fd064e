#include "broker/backend/shm_region_stage2.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/check.h"

namespace rmem {

absl::Status ShmRegionStage2::Attach(VmId vm, uint64_t region_size, ShmRegionMapper* mapper,
                                     std::function<void()> sever) {
  if (region_size == 0 || region_size % kPageSize != 0 || region_size >= (kPfnLimit >> 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shared memory region of ", Hex(region_size), " bytes for ", VmName(vm),
        ": want a non-zero multiple of 4 KiB"));
  }
  if (vms_.contains(vm)) {
    return absl::FailedPreconditionError(absl::StrCat(VmName(vm), " is already attached"));
  }
  // The region's offsets are managed as pages of a range starting at 0: the
  // allocator's best fit and alignment serve offsets as well as addresses.
  const std::optional<PageRange> offsets = PageRange::FromBytes(PhysAddr(0), region_size);
  RMEM_CHECK(offsets.has_value());
  vms_.emplace(vm, AttachedVm{.mapper = mapper,
                              .sever = std::move(sever),
                              .offsets = std::make_unique<PageAllocator>(*offsets),
                              .by_first_pfn = {}});
  return absl::OkStatus();
}

void ShmRegionStage2::Detach(VmId vm) { vms_.erase(vm); }

uint64_t ShmRegionStage2::mapped_bytes(VmId vm) const {
  auto it = vms_.find(vm);
  if (it == vms_.end()) return 0;
  const PageAllocator::Stats s = it->second.offsets->stats();
  return (s.total.value() - s.free.value()) * kPageSize;
}

absl::StatusOr<GuestAddr> ShmRegionStage2::Map(VmId vm, PageRange pages, Access access) {
  auto it = vms_.find(vm);
  if (it == vms_.end()) {
    return absl::UnavailableError(
        absl::StrCat(VmName(vm), " has no VMM connected: nowhere to map its buffer"));
  }
  AttachedVm& v = it->second;
  RMEM_CHECK(!v.by_first_pfn.contains(pages.first().value()));
  absl::StatusOr<CarveoutMemory::Piece> piece = memory_.Locate(pages);
  if (!piece.ok()) return piece.status();
  const uint64_t align_pages =
      pages.size_bytes() >= kBlockSize && pages.base().value() % kBlockSize == 0
          ? kBlockSize / kPageSize
          : 1;
  std::optional<PageRange> slot = v.offsets->Allocate(pages.count(), PageCount(align_pages));
  if (!slot && align_pages > 1) slot = v.offsets->Allocate(pages.count(), PageCount(1));
  if (!slot) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "no room for ", Hex(pages.size_bytes()), " bytes in the shared memory region of ",
        VmName(vm)));
  }
  const uint64_t offset = slot->base().value();
  if (absl::Status s = v.mapper->Map(offset, piece->fd, piece->offset, pages.size_bytes(),
                                     access == Access::kReadWrite);
      !s.ok()) {
    v.offsets->Free(*slot);
    return s;
  }
  v.by_first_pfn.emplace(pages.first().value(), Mapping{offset, *slot});
  return GuestAddr(offset);
}

void ShmRegionStage2::Unmap(VmId vm, PageRange pages) {
  auto it = vms_.find(vm);
  if (it == vms_.end()) return;  // detached: the mapping went with the VMM
  AttachedVm& v = it->second;
  auto m = v.by_first_pfn.find(pages.first().value());
  RMEM_CHECK(m != v.by_first_pfn.end());
  const Mapping mapping = m->second;
  v.by_first_pfn.erase(m);
  if (absl::Status s = v.mapper->Unmap(mapping.offset, pages.size_bytes()); !s.ok()) {
    // The VMM did not confirm: cut it off so the mapping dies with it.
    std::function<void()> sever = std::move(v.sever);
    vms_.erase(it);
    sever();
    return;
  }
  v.offsets->Free(mapping.slot);
}

}  // namespace rmem

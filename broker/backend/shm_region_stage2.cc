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
  AttachedVm& v = vms_.emplace(vm, AttachedVm{.mapper = mapper,
                                               .sever = std::move(sever),
                                               .offsets = std::make_unique<PageAllocator>(*offsets),
                                               .by_first_pfn = {}})
                      .first->second;
  auto waiting = waiting_.find(vm);
  if (waiting == waiting_.end()) return absl::OkStatus();
  absl::Status failed;
  for (const auto& [pfn, w] : waiting->second) {
    absl::StatusOr<PageRange> slot = ReserveAt(vm, v, w.pages, w.offset);
    failed = slot.ok() ? MapInto(v, w.pages, w.access, *slot) : slot.status();
    if (!failed.ok()) break;
  }
  if (!failed.ok()) {
    // Back to detached, with every restored mapping still waiting. (An
    // unmap the VMM refuses leaves this VM's own grants mapped in it: no
    // other party gains anything.)
    for (const auto& [pfn, m] : v.by_first_pfn) {
      (void)v.mapper->Unmap(m.offset, m.slot.size_bytes());
    }
    vms_.erase(vm);
    return absl::Status(failed.code(), absl::StrCat("restoring the mappings of ", VmName(vm),
                                                    ": ", failed.message()));
  }
  waiting_.erase(waiting);
  return absl::OkStatus();
}

void ShmRegionStage2::Detach(VmId vm) { vms_.erase(vm); }

size_t ShmRegionStage2::waiting(VmId vm) const {
  auto it = waiting_.find(vm);
  return it == waiting_.end() ? 0 : it->second.size();
}

absl::StatusOr<PageRange> ShmRegionStage2::ReserveAt(VmId vm, AttachedVm& v, PageRange pages,
                                                     uint64_t offset) {
  const std::optional<PageRange> slot =
      offset % kPageSize == 0 ? PageRange::FromPages(Pfn(offset >> kPageShift), pages.count())
                              : std::nullopt;
  if (!slot || !v.offsets->range().Contains(*slot) || !v.offsets->AllocateAt(*slot)) {
    return absl::InvalidArgumentError(absl::StrCat(
        Hex(pages.size_bytes()), " bytes at offset ", Hex(offset),
        " do not fit the free part of the shared memory region of ", VmName(vm)));
  }
  return *slot;
}

absl::Status ShmRegionStage2::MapAt(VmId vm, PageRange pages, Access access, GuestAddr at) {
  auto it = vms_.find(vm);
  if (it == vms_.end()) {
    auto [w, inserted] =
        waiting_[vm].emplace(pages.first().value(), Waiting{pages, access, at.value()});
    RMEM_CHECK(inserted);
    return absl::OkStatus();
  }
  RMEM_CHECK(!it->second.by_first_pfn.contains(pages.first().value()));
  absl::StatusOr<PageRange> slot = ReserveAt(vm, it->second, pages, at.value());
  if (!slot.ok()) return slot.status();
  return MapInto(it->second, pages, access, *slot);
}

absl::Status ShmRegionStage2::MapInto(AttachedVm& v, PageRange pages, Access access,
                                      PageRange slot) {
  const bool writable = access == Access::kReadWrite;
  absl::StatusOr<std::unique_ptr<CarveoutMemory::PieceFile>> piece =
      memory_.Issue(pages, writable);
  absl::Status s = piece.status();
  const uint64_t offset = slot.base().value();
  if (s.ok()) {
    s = v.mapper->Map(offset, (*piece)->fd(), (*piece)->offset(), pages.size_bytes(), writable);
  }
  if (!s.ok()) {
    v.offsets->Free(slot);
    return s;  // the piece, if issued, is revoked here
  }
  v.by_first_pfn.emplace(pages.first().value(), Mapping{offset, slot, std::move(*piece)});
  return absl::OkStatus();
}

uint64_t ShmRegionStage2::mapped_bytes(VmId vm) const {
  auto it = vms_.find(vm);
  if (it == vms_.end()) return 0;
  const PageAllocator::Stats s = it->second.offsets->stats();
  return (s.total.value() - s.free.value()) * kPageSize;
}

size_t ShmRegionStage2::mapping_count(VmId vm) const {
  auto it = vms_.find(vm);
  return it == vms_.end() ? 0 : it->second.by_first_pfn.size();
}

absl::StatusOr<GuestAddr> ShmRegionStage2::Map(VmId vm, PageRange pages, Access access) {
  auto it = vms_.find(vm);
  if (it == vms_.end()) {
    return absl::UnavailableError(
        absl::StrCat(VmName(vm), " has no VMM connected: nowhere to map its buffer"));
  }
  AttachedVm& v = it->second;
  RMEM_CHECK(!v.by_first_pfn.contains(pages.first().value()));
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
  if (absl::Status s = MapInto(v, pages, access, *slot); !s.ok()) return s;
  return GuestAddr(slot->base().value());
}

void ShmRegionStage2::Unmap(VmId vm, PageRange pages) {
  auto it = vms_.find(vm);
  if (it == vms_.end()) {
    // Detached: the mapping went with the VMM, or waits for one that will
    // now never be made.
    auto w = waiting_.find(vm);
    if (w != waiting_.end()) {
      w->second.erase(pages.first().value());
      if (w->second.empty()) waiting_.erase(w);
    }
    return;
  }
  AttachedVm& v = it->second;
  auto m = v.by_first_pfn.find(pages.first().value());
  RMEM_CHECK(m != v.by_first_pfn.end());
  Mapping mapping = std::move(m->second);
  v.by_first_pfn.erase(m);
  const absl::Status s = v.mapper->Unmap(mapping.offset, pages.size_bytes());
  mapping.piece.reset();  // revoked: whatever the VMM kept of it is gone now
  if (!s.ok()) {
    // The VMM did not confirm: cut it off (the stand-in's pieces cannot be
    // revoked, and a VMM that refuses an unmap is not to be trusted with
    // the next).
    std::function<void()> sever = std::move(v.sever);
    vms_.erase(it);
    sever();
    return;
  }
  v.offsets->Free(mapping.slot);
}

}  // namespace rmem

#include "vmm/virtio/vhost_user_device.h"

#include "absl/strings/str_cat.h"
#include "vmm/vhost_user/frontend.h"
#include "vmm/virtio/local_config.h"
#include "vmm/virtio/virtio_mmio.h"

namespace rmem::vmm {
namespace {

constexpr uint64_t k2M = 2 << 20;

// Queues a device has when the backend does not say (no MQ protocol feature).
int DefaultQueues(uint32_t device_id) {
  switch (device_id) {
    case kVirtioIdFs:  // hiprio + one request queue
      return 2;
    default:  // blk and most others: one
      return 1;
  }
}

// The backend as the transport sees it. With tag= the virtio-fs config space
// is served locally (queue 0 is hiprio, the rest are request queues);
// otherwise it is the back-end's, which a virtio-fs back-end without the
// CONFIG protocol feature cannot serve: the guest would read an empty tag.
absl::StatusOr<std::unique_ptr<VirtioBackend>> ConfigSpaceOwner(
    const std::string& name, const DeviceConfig& device,
    std::unique_ptr<VhostUserFrontend> frontend) {
  const std::string where = absl::StrCat(name, " (", device.socket, ")");
  if (!device.tag.empty()) {
    if (frontend->num_queues() < 2) {
      return absl::FailedPreconditionError(
          absl::StrCat(where, ": virtio-fs needs a hiprio and a request queue, the back-end has ",
                       frontend->num_queues(), " queue"));
    }
    std::vector<uint8_t> config =
        VirtioFsConfig(device.tag, static_cast<uint32_t>(frontend->num_queues() - 1));
    return std::make_unique<LocalConfigBackend>(std::move(frontend), std::move(config));
  }
  if (device.device_id == kVirtioIdFs &&
      !frontend->HasProtocolFeature(vhost_user::kProtocolConfig)) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, ": the back-end serves no config space (no CONFIG protocol feature), so the "
               "guest would see no virtio-fs tag: add tag=NAME to --device"));
  }
  return frontend;
}

}  // namespace

absl::Status AttachVhostUserDevice(Vm& vm, const DeviceConfig& device, int index,
                                   absl::Duration reconnect_timeout, const VirtioPlacement& where) {
  const std::string name = absl::StrCat("virtio-", device.type, ".", index);
  ShmWindows* windows =
      vm.OwnShmWindows(std::make_unique<ShmWindows>(name, vm.slot_mapper()));
  absl::StatusOr<std::unique_ptr<VhostUserFrontend>> frontend = VhostUserFrontend::Connect(
      device.socket, device.device_id, vm.ram(), windows, DefaultQueues(device.device_id));
  if (!frontend.ok()) {
    return absl::Status(frontend.status().code(),
                        absl::StrCat(name, " (", device.socket, "): ", frontend.status().message()));
  }
  VhostUserFrontend* vhost_user = frontend->get();
  absl::StatusOr<std::unique_ptr<VirtioBackend>> owner =
      ConfigSpaceOwner(name, device, std::move(*frontend));
  if (!owner.ok()) return owner.status();
  VirtioBackend* backend = vm.OwnBackend(std::move(*owner));

  std::vector<ShmPlacement> placements;
  for (const ShmRegionInfo& r : backend->shm_regions()) {
    const uint64_t base = where.shm_next->value();
    const uint64_t size = (r.size + k2M - 1) / k2M * k2M;
    if (r.size == 0 || size < r.size || base + size < base || base + size > where.shm_limit.value()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          name, ": shared memory region ", r.id, " of ", Hex(r.size),
          " bytes does not fit the guest physical space left for regions"));
    }
    placements.push_back({.id = r.id, .base = GuestAddr(base), .size = r.size});
    *where.shm_next = GuestAddr(base + size);
  }
  windows->SetRegions(placements);
  vhost_user->SetReconnectTimeout(reconnect_timeout);
  vhost_user->StartServing();  // maps can land now

  KvmVm& kvm = vm.kvm();
  absl::StatusOr<std::unique_ptr<VirtioMmioTransport>> transport = VirtioMmioTransport::Create(
      name, where.mmio_base, backend, where.irq, placements,
      [&kvm](GuestAddr addr, uint64_t datamatch, int fd) {
        return kvm.AddIoEventFd(addr, 4, datamatch, fd);
      });
  if (!transport.ok()) return transport.status();
  return vm.AddDevice(name, where.mmio_base, kVirtioMmioWindow, std::move(*transport));
}

}  // namespace rmem::vmm

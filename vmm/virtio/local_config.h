// A device whose configuration space the VMM serves itself. vhost-user
// leaves some config spaces to the frontend: virtio-fs's tag is chosen by
// whoever starts the VM (QEMU's vhost-user-fs serves it locally), and
// virtiofsd offers no CONFIG protocol feature to read it from. The wrapper
// answers config reads from fixed bytes and forwards everything else.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "vmm/virtio/virtio_backend.h"

namespace rmem::vmm {

class LocalConfigBackend final : public VirtioBackend {
 public:
  LocalConfigBackend(std::unique_ptr<VirtioBackend> device, std::vector<uint8_t> config)
      : device_(std::move(device)), config_(std::move(config)) {}

  uint32_t device_id() const override { return device_->device_id(); }
  uint64_t device_features() const override { return device_->device_features(); }
  int num_queues() const override { return device_->num_queues(); }
  uint16_t max_queue_size() const override { return device_->max_queue_size(); }
  std::vector<ShmRegionInfo> shm_regions() const override { return device_->shm_regions(); }

  // From the fixed bytes; InvalidArgument (and zeros) past their end.
  absl::Status ReadConfig(uint32_t offset, std::span<uint8_t> data) override;
  // The config space is read-only: FailedPrecondition, the write is dropped.
  absl::Status WriteConfig(uint32_t offset, std::span<const uint8_t> data) override;

  absl::Status Start(uint64_t driver_features, std::span<const VirtqueueSetup> queues) override {
    return device_->Start(driver_features, queues);
  }
  absl::Status Stop() override { return device_->Stop(); }
  int failure_fd() const override { return device_->failure_fd(); }
  void Abandon() override { device_->Abandon(); }

 private:
  const std::unique_ptr<VirtioBackend> device_;
  const std::vector<uint8_t> config_;
};

// virtio-fs's config space (VIRTIO 1.2 §5.11.4): the tag, NUL-padded to 36
// bytes (unterminated at 36), then num_request_queues as a le32.
// `tag` must be at most 36 bytes.
std::vector<uint8_t> VirtioFsConfig(std::string_view tag, uint32_t num_request_queues);

}  // namespace rmem::vmm

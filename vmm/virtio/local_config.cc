#include "vmm/virtio/local_config.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "broker/check.h"
#include "vmm/config/vm_config.h"

namespace rmem::vmm {

absl::Status LocalConfigBackend::ReadConfig(uint32_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (uint64_t{offset} + data.size() > config_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("config read of ", data.size(), " bytes at ",
                                                   offset, " passes the ", config_.size(),
                                                   "-byte config space"));
  }
  std::memcpy(data.data(), config_.data() + offset, data.size());
  return absl::OkStatus();
}

absl::Status LocalConfigBackend::WriteConfig(uint32_t offset, std::span<const uint8_t> data) {
  return absl::FailedPreconditionError(absl::StrCat(
      "config write of ", data.size(), " bytes at ", offset, ": the config space is read-only"));
}

std::vector<uint8_t> VirtioFsConfig(std::string_view tag, uint32_t num_request_queues) {
  RMEM_CHECK(tag.size() <= kVirtioFsTagSize);
  std::vector<uint8_t> config(kVirtioFsTagSize + sizeof(uint32_t), 0);
  std::memcpy(config.data(), tag.data(), tag.size());
  static_assert(std::endian::native == std::endian::little, "VIRTIO 1.x fields are le");
  std::memcpy(config.data() + kVirtioFsTagSize, &num_request_queues, sizeof(num_request_queues));
  return config;
}

}  // namespace rmem::vmm

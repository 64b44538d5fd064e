// The locally served config space that gives a virtio-fs device its tag when
// the vhost-user back-end (virtiofsd) has none to offer.
#include "vmm/virtio/local_config.h"

#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace rmem::vmm {
namespace {

// A device that fails config access: the wrapper must never ask it.
class DeviceWithoutConfig : public VirtioBackend {
 public:
  uint32_t device_id() const override { return 26; }
  uint64_t device_features() const override { return uint64_t{1} << 32; }
  int num_queues() const override { return 2; }
  uint16_t max_queue_size() const override { return 1024; }
  std::vector<ShmRegionInfo> shm_regions() const override { return {}; }
  absl::Status ReadConfig(uint32_t, std::span<uint8_t>) override {
    return absl::UnimplementedError("no config");
  }
  absl::Status WriteConfig(uint32_t, std::span<const uint8_t>) override {
    return absl::UnimplementedError("no config");
  }
  absl::Status Start(uint64_t, std::span<const VirtqueueSetup>) override {
    ++starts;
    return absl::OkStatus();
  }
  absl::Status Stop() override { return absl::OkStatus(); }
  int starts = 0;
};

TEST(LocalConfigTest, VirtioFsLayout) {
  const std::vector<uint8_t> config = VirtioFsConfig("rmem", 3);
  ASSERT_EQ(config.size(), 40u);
  EXPECT_EQ(std::string(config.begin(), config.begin() + 4), "rmem");
  for (size_t i = 4; i < 36; ++i) EXPECT_EQ(config[i], 0) << i;
  uint32_t queues;
  std::memcpy(&queues, config.data() + 36, 4);
  EXPECT_EQ(queues, 3u);
  // A 36-byte tag fills the field, unterminated.
  EXPECT_EQ(VirtioFsConfig(std::string(36, 'x'), 1)[35], 'x');
}

TEST(LocalConfigTest, ServesReadsForwardsTheRest) {
  auto owned = std::make_unique<DeviceWithoutConfig>();
  DeviceWithoutConfig* device = owned.get();
  LocalConfigBackend backend(std::move(owned), VirtioFsConfig("rmem", 1));
  EXPECT_EQ(backend.device_id(), 26u);
  EXPECT_EQ(backend.num_queues(), 2);

  uint8_t byte = 0xff;
  ASSERT_TRUE(backend.ReadConfig(1, {&byte, 1}).ok());  // Linux reads the tag bytewise
  EXPECT_EQ(byte, 'm');
  uint32_t queues = 0;
  ASSERT_TRUE(backend.ReadConfig(36, {reinterpret_cast<uint8_t*>(&queues), 4}).ok());
  EXPECT_EQ(queues, 1u);

  uint8_t past[8];
  EXPECT_EQ(backend.ReadConfig(36, past).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(past[0], 0);
  EXPECT_EQ(backend.WriteConfig(0, {&byte, 1}).code(), absl::StatusCode::kFailedPrecondition);

  EXPECT_TRUE(backend.Start(uint64_t{1} << 32, {}).ok());
  EXPECT_EQ(device->starts, 1);
}

}  // namespace
}  // namespace rmem::vmm

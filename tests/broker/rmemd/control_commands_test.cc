// rmemd's control commands against its real service (service_guest.h: the
// documented example configuration over the embedded default platform, the
// memfd STAND-IN, in-process guests), asked over the real control socket:
// the status document with known buffers and offers, value by value; the
// audit log, paged; every malformed request answered with an error that
// names what was wrong, the connection serving on.
#include "broker/rmemd/control_commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "broker/rmemd/status.h"
#include "broker/state/sqlite_state_store.h"
#include "tests/broker/rmemd/control_test_client.h"
#include "tests/broker/rmemd/service_guest.h"

namespace rmem::rmemd {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMiB = uint64_t{1} << 20;

using ControlConnection = ControlTestClient;

class ControlCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override { StartService(nullptr); }
  void TearDown() override {
    guests_.clear();
    rmemd_.reset();
  }
  void StartService(std::unique_ptr<StateStore> state) {
    guests_.clear();
    rmemd_.reset();
    const char* example = std::getenv("RMEMD_EXAMPLE_CONFIG");
    ASSERT_NE(example, nullptr) << "RMEMD_EXAMPLE_CONFIG is set by meson";
    absl::StatusOr<std::unique_ptr<InProcessService>> rmemd =
        InProcessService::Start(example, std::move(state));
    ASSERT_TRUE(rmemd.ok()) << rmemd.status();
    rmemd_ = *std::move(rmemd);
    for (const char* name : {"decrypt", "display", "infotainment"}) {
      guests_.push_back(std::make_unique<Guest>(name, rmemd_->socket(name)));
      const absl::Status connected = guests_.back()->Connect();
      ASSERT_TRUE(connected.ok()) << connected;
    }
  }
  Guest& decrypt() { return *guests_[0]; }
  Guest& display() { return *guests_[1]; }
  Guest& info() { return *guests_[2]; }

  std::unique_ptr<InProcessService> rmemd_;
  std::vector<std::unique_ptr<Guest>> guests_;
};

// decrypt: a 1 MiB frame shared read-only with display, which retrieved it;
// infotainment: 64 KiB of secure-ui, and one refused request.
TEST_F(ControlCommandsTest, Status_KnownBuffersAndOffers_ExactValues) {
  const virtio_rmem_resp_alloc frame = Alloc(decrypt(), kMiB);
  const std::optional<SharedAndRetrieved> shared =
      ShareAndRetrieve(decrypt(), frame.buffer, display(), kDisplay,
                       VIRTIO_RMEM_RIGHT_READ | VIRTIO_RMEM_RIGHT_CPU_MAP);
  ASSERT_TRUE(shared.has_value());
  const uint64_t handle = shared->handle;
  const uint64_t display_offset = shared->retrieved.shm_offset;
  const virtio_rmem_resp_alloc ui = Alloc(info(), 64 * 1024, kHeapUi);
  ASSERT_EQ(StatusOf(ByHandle(info(), VIRTIO_RMEM_REQ_RETRIEVE, handle)), VIRTIO_RMEM_S_NOT_FOUND);

  ControlConnection control(rmemd_->control_path());
  Json answer = control.Ask(R"({"command":"status"})");
  ASSERT_TRUE(answer.is_object()) << answer.dump();
  ASSERT_EQ(answer["ok"], true) << answer.dump();
  Json& s = answer["status"];

  EXPECT_EQ(s["rmemd"]["pid"], getpid());
  EXPECT_EQ(s["rmemd"]["memory"], "the memfd stand-in (not restricted memory)");
  EXPECT_EQ(s["rmemd"]["state"], nullptr) << "no state store";

  // Carve-outs of the embedded default platform, as firmware guards them.
  EXPECT_EQ(s["carveouts"], Json::parse(R"([
    {"name": "secure-video@70000000", "use_case": "secure-video", "base": 1879048192,
     "size": 67108864, "heaps": ["secure-video"],
     "firewall": {"controller": "/soc/firewall@2a4a0000", "index": 1}},
    {"name": "secure-ui@74000000", "use_case": "secure-ui", "base": 1946157056,
     "size": 16777216, "heaps": ["secure-ui"],
     "firewall": {"controller": "/soc/firewall@2a4b0000", "index": 0}}])"));

  // Small buffers are cut from the top of their carve-out (page_allocator.h).
  const uint64_t frame_base = 0x70000000 + 64 * kMiB - kMiB;
  const uint64_t ui_base = 0x74000000 + 16 * kMiB - 64 * 1024;
  EXPECT_EQ(s["pools"], Json::parse(R"([
    {"carveout": "secure-video@70000000", "heaps": ["secure-video"], "total": 67108864,
     "free": 66060288, "used": 1048576, "largest_free_run": 66060288, "free_runs": 1,
     "fragmentation": 0.0},
    {"carveout": "secure-ui@74000000", "heaps": ["secure-ui"], "total": 16777216,
     "free": 16711680, "used": 65536, "largest_free_run": 16711680, "free_runs": 1,
     "fragmentation": 0.0}])"));
  EXPECT_EQ(s["heaps"][0]["owned"], kMiB);
  EXPECT_EQ(s["heaps"][0]["quota"], nullptr);
  EXPECT_EQ(s["heaps"][1]["owned"], 65536u);
  EXPECT_EQ(s["heaps"][1]["owner_may_revoke"], true);

  ASSERT_EQ(s["guests"].size(), 3u);
  Json& d = s["guests"][0];
  EXPECT_EQ(d["id"], 1u);
  EXPECT_EQ(d["name"], "decrypt");
  EXPECT_EQ(d["socket"], rmemd_->socket("decrypt"));
  EXPECT_EQ(d["vmm_connected"], true);
  EXPECT_EQ(d["vmm_connects"], 1u);
  EXPECT_EQ(d["quota"], 48 * kMiB);
  EXPECT_EQ(d["owned"], kMiB);
  EXPECT_EQ(d["region_size"], 256 * kMiB);
  EXPECT_EQ(d["mappings"], 1u);
  EXPECT_EQ(d["mapped_bytes"], kMiB);
  EXPECT_EQ(d["requests"], 2u);  // ALLOC, SHARE
  EXPECT_EQ(d["refused"], Json::object());
  EXPECT_EQ(s["guests"][1]["owned"], 0u);
  EXPECT_EQ(s["guests"][1]["mappings"], 1u) << "the retrieved frame";
  EXPECT_EQ(s["guests"][1]["requests"], 1u);
  Json& i = s["guests"][2];
  EXPECT_EQ(i["owned"], 65536u);
  EXPECT_EQ(i["requests"], 2u);
  EXPECT_EQ(i["refused"], Json::parse(R"({"NOT_FOUND": 1})"));

  // Buffers by id; offers; grants (per buffer, the owner first).
  const bool frame_first = frame.buffer < ui.buffer;
  ASSERT_EQ(s["buffers"].size(), 2u);
  Json& fb = s["buffers"][frame_first ? 0 : 1];
  Json& ub = s["buffers"][frame_first ? 1 : 0];
  EXPECT_EQ(fb, Json::parse(absl::StrCat(
                    R"({"id": )", frame.buffer,
                    R"(, "heap": "secure-video", "carveout": "secure-video@70000000", "base": )",
                    frame_base, R"(, "size": 1048576, "owner": 1, "state": "shared",
    "owner_rights": "read+write+cpu-map", "offer": )",
                    handle, R"(,
    "holders": [{"vm": 1, "rights": "read+write+cpu-map"}, {"vm": 2, "rights": "read+cpu-map"}]})")));
  EXPECT_EQ(ub, Json::parse(absl::StrCat(
                    R"({"id": )", ui.buffer,
                    R"(, "heap": "secure-ui", "carveout": "secure-ui@74000000", "base": )", ui_base,
                    R"(, "size": 65536, "owner": 3, "state": "owned",
    "owner_rights": "read+write+cpu-map", "offer": null,
    "holders": [{"vm": 3, "rights": "read+write+cpu-map"}]})")));
  EXPECT_EQ(
      s["offers"],
      Json::parse(absl::StrCat(
          R"([{"handle": )", handle, R"(, "kind": "share", "buffer": )", frame.buffer,
          R"(, "from": 1, "to": [{"vm": 2, "rights": "read+cpu-map", "state": "retrieved"}]}])")));
  Json frame_grants = Json::parse(absl::StrCat(
      R"([{"buffer": )", frame.buffer, R"(, "vm": 1, "as": "owner", "rights": "read+write+cpu-map",
           "mapped": true, "region_offset": )",
      frame.shm_offset, R"(},
          {"buffer": )",
      frame.buffer, R"(, "vm": 2, "as": "receiver", "rights": "read+cpu-map",
           "mapped": true, "region_offset": )",
      display_offset, "}]"));
  Json ui_grant = Json::parse(absl::StrCat(
      R"({"buffer": )", ui.buffer, R"(, "vm": 3, "as": "owner", "rights": "read+write+cpu-map",
          "mapped": true, "region_offset": )",
      ui.shm_offset, "}"));
  ASSERT_EQ(s["grants"].size(), 3u);
  EXPECT_EQ(s["grants"][frame_first ? 0 : 1], frame_grants[0]);
  EXPECT_EQ(s["grants"][frame_first ? 1 : 2], frame_grants[1]);
  EXPECT_EQ(s["grants"][frame_first ? 2 : 0], ui_grant);

  // The TZC-400's registers: the decoder (NSAID 4, decrypt's) reads and
  // writes the frame, the display controller (NSAID 5) reads it; nothing
  // of infotainment's reaches a device.
  EXPECT_EQ(s["firewall"], Json::parse(absl::StrCat(
                               R"([{"controller": "/soc/firewall@2a4a0000", "base": )", frame_base,
                               R"(, "size": 1048576, "access": [{"id": 4, "access": "read+write"},
                                                                  {"id": 5, "access": "read"}]}])")));

  // Every carve-out page was scrubbed once at start; nothing freed since.
  EXPECT_EQ(s["counters"], Json::parse(R"({"requests_served": 5,
    "requests_refused": {"NOT_FOUND": 1}, "requests_unanswerable": 0, "bytes_scrubbed": 83886080})"));
}

TEST_F(ControlCommandsTest, Status_SameAsTheDocumentBuiltOnTheLoop) {
  ControlConnection control(rmemd_->control_path());
  Json first = control.Ask(R"({"command":"status"})");
  Json second = control.Ask(R"({"command":"status"})");
  ASSERT_EQ(first["ok"], true);
  EXPECT_EQ(first, second) << "nothing changed, so nothing differs";
  EXPECT_EQ(first["status"]["guests"][0]["vmm_connected"], true);
  guests_[0]->Hangup();
  // The VMM's hang-up reaches the loop; then status says so.
  Json after;
  for (int tries = 0; tries < 200; ++tries) {
    after = control.Ask(R"({"command":"status"})");
    if (after["status"]["guests"][0]["vmm_connected"] == false) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(after["status"]["guests"][0]["vmm_connected"], false);
  EXPECT_EQ(after["status"]["guests"][0]["vmm_connects"], 1u);
}

TEST_F(ControlCommandsTest, Audit_WithoutStateStore_Refused) {
  ControlConnection control(rmemd_->control_path());
  EXPECT_THAT(control.Error(R"({"command":"audit"})"), HasSubstr("--no-state"));
}

TEST_F(ControlCommandsTest, Audit_PagedFromTheStateStore) {
  char dir[] = "/tmp/rmemd-audit-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store =
      SqliteStateStore::Open(std::string(dir) + "/state.db", {});
  ASSERT_TRUE(store.ok()) << store.status();
  StartService(*std::move(store));
  const virtio_rmem_resp_alloc a = Alloc(decrypt(), kMiB);
  ASSERT_EQ(StatusOf(ByBuffer(decrypt(), VIRTIO_RMEM_REQ_FREE, a.buffer)), VIRTIO_RMEM_S_OK);

  ControlConnection control(rmemd_->control_path());
  Json all = control.Ask(R"({"command":"audit"})");
  ASSERT_EQ(all["ok"], true) << all.dump();
  EXPECT_EQ(all["more"], false);
  ASSERT_EQ(all["entries"].size(), 2u);
  Json& grant = all["entries"][0];
  EXPECT_EQ(grant["op"], "alloc");
  EXPECT_EQ(grant["action"], "grant");
  EXPECT_EQ(grant["actor_vm"], 1u);
  EXPECT_EQ(grant["vm"], 1u);
  EXPECT_EQ(grant["buffer"], a.buffer);
  EXPECT_EQ(grant["size"], kMiB);
  EXPECT_EQ(grant["rights"], "read+write+cpu-map");
  EXPECT_EQ(all["entries"][1]["op"], "free");
  EXPECT_EQ(all["entries"][1]["action"], "revoke");

  Json first = control.Ask(R"({"command":"audit","limit":1})");
  ASSERT_EQ(first["entries"].size(), 1u);
  EXPECT_EQ(first["more"], true);
  EXPECT_EQ(first["entries"][0], grant);
  Json rest = control.Ask(
      absl::StrCat(R"({"command":"audit","after":)", grant["seq"].get<uint64_t>(), "}"));
  ASSERT_EQ(rest["entries"].size(), 1u);
  EXPECT_EQ(rest["more"], false);
  EXPECT_EQ(rest["entries"][0], all["entries"][1]);
  guests_.clear();
  rmemd_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

TEST_F(ControlCommandsTest, MalformedRequests_EachNamedInItsError_ConnectionServesOn) {
  ControlConnection control(rmemd_->control_path());
  EXPECT_THAT(control.Error(R"(["status"])"), HasSubstr("must be a JSON object"));
  EXPECT_THAT(control.Error(R"({})"), HasSubstr("needs \"command\""));
  EXPECT_THAT(control.Error(R"({"command":7})"), HasSubstr("needs \"command\": a string"));
  EXPECT_THAT(control.Error(R"({"command":"reboot"})"),
              HasSubstr("unknown command 'reboot' (known: status, audit)"));
  EXPECT_THAT(control.Error(R"({"command":"status","verbose":true})"),
              HasSubstr("unknown field 'verbose' for command status"));
  EXPECT_THAT(control.Error(R"({"command":"audit","afterr":1})"),
              HasSubstr("unknown field 'afterr' for command audit"));
  EXPECT_THAT(control.Error(R"({"command":"audit","after":"3"})"),
              HasSubstr("'after' must be an integer from 0 to 18446744073709551615, not string"));
  EXPECT_THAT(control.Error(R"({"command":"audit","after":-1})"),
              HasSubstr("'after' must be an integer from 0"));
  EXPECT_THAT(control.Error(R"({"command":"audit","after":1.5})"), HasSubstr("not 1.5"));
  EXPECT_THAT(control.Error(R"({"command":"audit","after":18446744073709551616})"),
              HasSubstr("'after' must be an integer"));
  EXPECT_THAT(control.Error(R"({"command":"audit","limit":0})"),
              HasSubstr("'limit' must be an integer from 1 to 1000, not 0"));
  EXPECT_THAT(control.Error(R"({"command":"audit","limit":1001})"), HasSubstr("not 1001"));
  // A deeply nested value is named by its type, never printed.
  const std::string deep = std::string(30000, '[') + std::string(30000, ']');
  EXPECT_THAT(control.Error(R"({"command":"audit","after":)" + deep + "}"), HasSubstr("not array"));
  EXPECT_EQ(control.Ask(R"({"command":"status"})")["ok"], true);
}

}  // namespace
}  // namespace rmem::rmemd

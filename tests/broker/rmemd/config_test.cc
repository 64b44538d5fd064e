// rmemd's configuration: the example in docs/ parses and joins with the
// embedded default platform; every mistake is an error naming file and
// line; the join with firmware refuses names that do not match.
#include "broker/rmemd/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "broker/platform/default_platform.h"
#include "broker/rmemd/setup.h"

namespace rmem::rmemd {
namespace {

using ::testing::HasSubstr;

constexpr char kMinimal[] = R"(
[[vm]]
name = "a"
id = 1
socket = "/tmp/a.sock"

[[vm]]
name = "b"
id = 2
socket = "/tmp/b.sock"

[[heap]]
name = "video"
carveouts = ["secure-video"]
  [[heap.vm]]
  name = "a"
  allocate = true
  rights = ["read", "write", "cpu-map"]
)";

firmware_handoff::Platform DefaultPlatform() {
  firmware_handoff::PlatformResult r =
      firmware_handoff::ReadPlatformFromFdt(platform::DefaultPlatformDtb());
  return std::get<firmware_handoff::Platform>(r);
}

// kMinimal with the first `from` replaced by `to` (the test fails if there
// is no `from`: an edit that silently does nothing would test nothing).
std::string Edited(const std::string& from, const std::string& to) {
  std::string text = kMinimal;
  const size_t at = text.find(from);
  if (at == std::string::npos) {
    ADD_FAILURE() << "kMinimal has no '" << from << "'";
    return text;
  }
  return text.replace(at, from.size(), to);
}

std::string ParseError(const std::string& text) {
  absl::StatusOr<RmemdConfig> c = ParseConfig(text, "test.toml");
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(c.status().message());
}

TEST(RmemdConfig, TheDocumentedExampleFitsTheDefaultPlatform) {
  const char* path = std::getenv("RMEMD_EXAMPLE_CONFIG");
  ASSERT_NE(path, nullptr) << "RMEMD_EXAMPLE_CONFIG is not set (tests/meson.build)";
  absl::StatusOr<RmemdConfig> c = LoadConfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->guests.size(), 3u);
  EXPECT_EQ(c->control, "/run/rmemd/control");
  EXPECT_EQ(c->guests[0].name, "decrypt");
  EXPECT_EQ(c->guests[0].quota_bytes, 48u << 20);
  EXPECT_EQ(c->guests[1].region_bytes, kDefaultRegionSize);
  absl::StatusOr<BrokerSetup> s = MakeBrokerSetup(DefaultPlatform(), *c);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->carveouts.size(), 2u);
  EXPECT_EQ(s->carveouts[0].name, "secure-video@70000000");
  EXPECT_EQ(s->carveouts[0].max_align, 2u << 20);
  EXPECT_EQ(s->carveouts[1].max_align, kDefaultMaxAlign);
  ASSERT_EQ(s->policy.initiators.size(), 2u);
  EXPECT_EQ(s->policy.initiators[0].owner, VmId(1));  // the decoder is decrypt's
  EXPECT_EQ(s->policy.initiators[1].owner, VmId(2));  // the display controller display's
  EXPECT_EQ(s->policy.heaps[0].access[1].max_rights, Rights::Of(Rights::kRead | Rights::kCpuMap));
}

TEST(RmemdConfig, Bytes) {
  EXPECT_EQ(ParseBytes("4096"), 4096u);
  EXPECT_EQ(ParseBytes("256 MiB"), 256u << 20);
  EXPECT_EQ(ParseBytes("2MiB"), 2u << 20);
  EXPECT_EQ(ParseBytes("1 GiB"), 1u << 30);
  EXPECT_EQ(ParseBytes("3 KiB"), 3u << 10);
  EXPECT_EQ(ParseBytes("1.5 MiB"), std::nullopt);
  EXPECT_EQ(ParseBytes("-1"), std::nullopt);
  EXPECT_EQ(ParseBytes("12 MB"), std::nullopt);
  EXPECT_EQ(ParseBytes("99999999999 GiB"), std::nullopt);  // overflows
  EXPECT_EQ(ParseBytes(""), std::nullopt);
}

TEST(RmemdConfig, MinimalDefaults) {
  absl::StatusOr<RmemdConfig> c = ParseConfig(kMinimal, "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_receivers, 8u);
  EXPECT_EQ(c->guests[1].quota_bytes, kUnlimited);
  EXPECT_TRUE(c->heaps[0].cpu_map);
  EXPECT_FALSE(c->heaps[0].owner_may_revoke);
  EXPECT_EQ(c->heaps[0].max_align, kDefaultMaxAlign);
  EXPECT_EQ(c->control, "/run/rmemd/control");
}

TEST(RmemdConfig, ControlSocket) {
  absl::StatusOr<RmemdConfig> c =
      ParseConfig(std::string(kMinimal) + "[broker]\ncontrol = \"/tmp/ctl\"\n", "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->control, "/tmp/ctl");
  EXPECT_THAT(ParseError(std::string(kMinimal) + "[broker]\ncontrol = 1\n"),
              HasSubstr("'control' in [broker] must be a non-empty string"));
  EXPECT_THAT(ParseError("[broker]\ncontrol = \"/tmp/a.sock\"\n" + std::string(kMinimal)),
              HasSubstr("socket /tmp/a.sock is already used (by [broker] control)"));
}

TEST(RmemdConfig, SyntaxError_NamesFileAndLine) {
  EXPECT_THAT(ParseError("[[vm]]\nname = \"a\nid = 1\n"), HasSubstr("test.toml:2:"));
}

TEST(RmemdConfig, UnknownKeys_Rejected) {
  EXPECT_THAT(ParseError("extra = 1\n" + std::string(kMinimal)),
              HasSubstr("test.toml:1: unknown key 'extra' in the file"));
  // TOML puts a key after [[heap.vm]] into that table: it is reported there.
  EXPECT_THAT(ParseError(std::string(kMinimal) + "extra = 1\n"),
              HasSubstr("unknown key 'extra' in [[heap]] 'video' [[heap.vm]] #1"));
  EXPECT_THAT(ParseError(Edited("socket = \"/tmp/a.sock\"", "sockett = \"/tmp/a.sock\"")),
              HasSubstr("unknown key 'sockett' in [[vm]] #1"));
  EXPECT_THAT(ParseError(Edited("allocate", "alocate")), HasSubstr("unknown key 'alocate'"));
}

TEST(RmemdConfig, WrongTypesAndRanges_Rejected) {
  EXPECT_THAT(ParseError(Edited("id = 1", "id = 0")),
              HasSubstr("'id' in [[vm]] 'a' must be an integer from 1"));
  EXPECT_THAT(ParseError(Edited("id = 2", "id = \"2\"")),
              HasSubstr("'id' in [[vm]] 'b' must be an integer"));
  EXPECT_THAT(ParseError(Edited("rights = [\"read\", \"write\", \"cpu-map\"]",
                                "rights = [\"read\", \"exec\"]")),
              HasSubstr("each right is \"read\", \"write\" or \"cpu-map\""));
  EXPECT_THAT(ParseError(std::string(kMinimal) + "[broker]\nmax_receivers = 0\n"),
              HasSubstr("max_receivers"));
  EXPECT_THAT(ParseError(Edited("socket = \"/tmp/b.sock\"",
                                "socket = \"/tmp/b.sock\"\nregion = \"5000\"")),
              HasSubstr("multiple of 4 KiB"));
}

TEST(RmemdConfig, DuplicatesAndDanglingNames_Rejected) {
  EXPECT_THAT(ParseError(Edited("name = \"b\"", "name = \"a\"")),
              HasSubstr("two VMs named 'a'"));
  EXPECT_THAT(ParseError(Edited("id = 2", "id = 1")), HasSubstr("id 1 is already used"));
  EXPECT_THAT(ParseError(Edited("/tmp/b.sock", "/tmp/a.sock")),
              HasSubstr("socket /tmp/a.sock is already used"));
  EXPECT_THAT(ParseError(Edited("  name = \"a\"\n  allocate", "  name = \"z\"\n  allocate")),
              HasSubstr("names VM 'z', which no [[vm]] defines"));
  EXPECT_THAT(ParseError("[[heap]]\nname = \"h\"\ncarveouts = [\"x\"]\n"), HasSubstr("no [[vm]]"));
}

TEST(RmemdSetup, UnknownUseCase_NamesWhatFirmwareHas) {
  absl::StatusOr<RmemdConfig> c =
      ParseConfig(Edited("[\"secure-video\"]", "[\"camera\"]"), "test.toml");
  ASSERT_TRUE(c.ok());
  absl::StatusOr<BrokerSetup> setup = MakeBrokerSetup(DefaultPlatform(), *c);
  EXPECT_THAT(setup.status().message(),
              HasSubstr("heap 'video' uses carve-outs for 'camera', but firmware handed over none "
                        "(its carve-outs are for: secure-video, secure-ui)"));
}

TEST(RmemdSetup, InitiatorOwnerNotConfigured_Refused) {
  absl::StatusOr<RmemdConfig> c = ParseConfig(kMinimal, "test.toml");
  ASSERT_TRUE(c.ok());
  absl::StatusOr<BrokerSetup> setup = MakeBrokerSetup(DefaultPlatform(), *c);
  EXPECT_THAT(setup.status().message(),
              HasSubstr("device initiator /soc/video-decoder@2a600000 belongs to VM 'decrypt'"));
}

TEST(RmemdSetup, ConflictingMaxAlign_Refused) {
  std::string s = kMinimal;
  s += "\n[[heap]]\nname = \"other\"\ncarveouts = [\"secure-video\"]\nmax_align = \"4 KiB\"\n";
  absl::StatusOr<RmemdConfig> c = ParseConfig(s, "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  firmware_handoff::Platform p = DefaultPlatform();
  p.initiators.clear();
  EXPECT_THAT(MakeBrokerSetup(p, *c).status().message(), HasSubstr("give both the same max_align"));
}

}  // namespace
}  // namespace rmem::rmemd

#include "vmm/config/cli.h"

#include "gtest/gtest.h"

namespace rmem::vmm {
namespace {

absl::StatusOr<std::variant<VmConfig, HelpRequested>> Parse(std::vector<std::string> args) {
  return ParseCommandLine(args);
}

TEST(CliTest, DefaultsAndBothValueForms) {
  auto r = Parse({"--kernel", "Image", "--initrd=l2.cpio", "--cpus", "2", "--timeout=30"});
  ASSERT_TRUE(r.ok()) << r.status();
  const VmConfig& c = std::get<VmConfig>(*r);
  EXPECT_EQ(c.kernel, "Image");
  EXPECT_EQ(c.initrd, "l2.cpio");
  EXPECT_EQ(c.cpus, 2);
  EXPECT_EQ(c.memory_mib, 256u);
  EXPECT_EQ(c.timeout, absl::Seconds(30));
  EXPECT_EQ(c.append, "console=ttyS0");
}

TEST(CliTest, StatsIsAFlag) {
  auto r = Parse({"--stats", "--kernel", "I"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(std::get<VmConfig>(*r).stats);
  EXPECT_FALSE(std::get<VmConfig>(*Parse({"--kernel", "I"})).stats);
}

TEST(CliTest, OnViolationDefaultsToAbort) {
  EXPECT_EQ(std::get<VmConfig>(*Parse({"--kernel", "I"})).on_violation, ViolationPolicy::kAbort);
  auto stop = Parse({"--kernel", "I", "--on-violation", "stop"});
  ASSERT_TRUE(stop.ok()) << stop.status();
  EXPECT_EQ(std::get<VmConfig>(*stop).on_violation, ViolationPolicy::kStop);
  auto abort = Parse({"--on-violation=stop", "--on-violation=abort", "--kernel", "I"});
  ASSERT_TRUE(abort.ok()) << abort.status();
  EXPECT_EQ(std::get<VmConfig>(*abort).on_violation, ViolationPolicy::kAbort);
}

TEST(CliTest, HelpDocumentsViolationsAndTheirExitStatus) {
  const std::string usage = Usage();
  EXPECT_NE(usage.find("--on-violation abort|stop"), std::string::npos);
  EXPECT_NE(usage.find("5 isolation violations"), std::string::npos);
}

TEST(CliTest, ReconnectTimeout_DefaultsTo30SecondsAndZeroTurnsItOff) {
  EXPECT_EQ(std::get<VmConfig>(*Parse({"--kernel", "I"})).reconnect_timeout, absl::Seconds(30));
  auto off = Parse({"--kernel", "I", "--reconnect-timeout", "0"});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(std::get<VmConfig>(*off).reconnect_timeout, absl::ZeroDuration());
  auto five = Parse({"--reconnect-timeout=5", "--kernel", "I"});
  ASSERT_TRUE(five.ok()) << five.status();
  EXPECT_EQ(std::get<VmConfig>(*five).reconnect_timeout, absl::Seconds(5));
  auto week = Parse({"--kernel", "I", "--reconnect-timeout", "604800"});
  ASSERT_TRUE(week.ok()) << week.status();
  EXPECT_EQ(std::get<VmConfig>(*week).reconnect_timeout, absl::Hours(7 * 24));
  EXPECT_EQ(std::get<VmConfig>(*five).timeout, std::get<VmConfig>(*Parse({"--kernel", "I"})).timeout)
      << "not the run timeout";
}

TEST(CliTest, HelpDocumentsReconnectTimeout) {
  const std::string usage = Usage();
  const size_t at = usage.find("--reconnect-timeout SECONDS");
  ASSERT_NE(at, std::string::npos);
  const std::string entry = usage.substr(at, usage.find("\n  --", at) - at);
  EXPECT_NE(entry.find("(default 30)"), std::string::npos) << entry;
  EXPECT_NE(entry.find("0: do not"), std::string::npos) << entry;
}

TEST(CliTest, AppendKeepsEqualsSigns) {
  auto r = Parse({"--kernel=I", "--append=console=ttyS0 rmem.l2=boot"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::get<VmConfig>(*r).append, "console=ttyS0 rmem.l2=boot");
}

TEST(CliTest, FsTag) {
  auto r = Parse({"--kernel=I", "--device", "vhost-user,tag=rmem,socket=s,type=fs"});
  ASSERT_TRUE(r.ok()) << r.status();
  const std::vector<DeviceConfig>& d = std::get<VmConfig>(*r).devices;
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].device_id, kVirtioIdFs);
  EXPECT_EQ(d[0].tag, "rmem");
}

TEST(CliTest, Devices) {
  auto r = Parse({"--kernel=I", "--device", "vhost-user,socket=/run/blk.sock,type=blk",
                  "--device=vhost-user,type=fs,socket=/run/fs.sock",
                  "--device", "vhost-user,socket=s,type=42"});
  ASSERT_TRUE(r.ok()) << r.status();
  const std::vector<DeviceConfig>& d = std::get<VmConfig>(*r).devices;
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].socket, "/run/blk.sock");
  EXPECT_EQ(d[0].device_id, 2u);
  EXPECT_EQ(d[1].device_id, 26u);
  EXPECT_EQ(d[1].socket, "/run/fs.sock");
  EXPECT_EQ(d[2].device_id, 42u);
}

TEST(CliTest, Help) {
  auto r = Parse({"--cpus", "99", "--help"});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(std::holds_alternative<HelpRequested>(*r));
  EXPECT_NE(Usage().find("--kernel"), std::string::npos);
}

TEST(CliTest, ErrorsNameTheOptionAndValue) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  const Case cases[] = {
      {{}, "--kernel IMAGE is required"},
      {{"--kernel"}, "--kernel needs a value"},
      {{"--kernel", "I", "--cpus", "0"}, "--cpus 0: must be in [1, 8]"},
      {{"--kernel", "I", "--cpus", "two"}, "--cpus two: not a whole number"},
      {{"--kernel", "I", "--memory", "16"}, "--memory 16: must be in"},
      {{"--kernel", "I", "--timeout", "-1"}, "--timeout -1: must be in"},
      {{"--kernel", "I", "--reconnect-timeout", "-1"}, "--reconnect-timeout -1: must be in [0, 604800]"},
      {{"--kernel", "I", "--reconnect-timeout", "604801"}, "--reconnect-timeout 604801: must be in"},
      {{"--kernel", "I", "--reconnect-timeout", "soon"}, "--reconnect-timeout soon: not a whole number"},
      {{"--kernel", "I", "--reconnect-timeout=1.5"}, "--reconnect-timeout 1.5: not a whole number"},
      {{"--kernel", "I", "--reconnect-timeout"}, "--reconnect-timeout needs a value"},
      {{"--kernel", "I", "--bogus", "1"}, "unknown option --bogus"},
      {{"--kernel", "I", "--on-violation", "ignore"}, "--on-violation ignore: must be abort or stop"},
      {{"--kernel", "I", "--on-violation"}, "--on-violation needs a value"},
      {{"--kernel", "I", "stray"}, "unexpected argument 'stray'"},
      {{"--kernel", "I", "--device", "pci,socket=s"}, "only vhost-user devices exist"},
      {{"--kernel", "I", "--device", "vhost-user,socket=s"}, "needs socket=PATH and type"},
      {{"--kernel", "I", "--device", "vhost-user,socket=s,type=gpu"}, "type is blk, fs or"},
      {{"--kernel", "I", "--device", "vhost-user,sock=s,type=blk"}, "unknown or empty key 'sock=s'"},
      {{"--kernel", "I", "--device", "vhost-user,socket=s,type=blk,tag=t"}, "tag= is for type=fs only"},
      {{"--kernel", "I", "--device", "vhost-user,socket=s,type=fs,tag="}, "unknown or empty key 'tag='"},
      {{"--kernel", "I", "--device", "vhost-user,socket=s,type=fs,tag=" + std::string(37, 't')},
       "tag is at most 36 bytes"},
  };
  for (const Case& c : cases) {
    auto r = Parse(c.args);
    ASSERT_FALSE(r.ok()) << c.expect;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.expect), absl::string_view::npos) << r.status();
  }
}

}  // namespace
}  // namespace rmem::vmm

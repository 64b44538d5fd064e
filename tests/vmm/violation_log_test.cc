#include "vmm/memory/violation_log.h"

#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace rmem::vmm {
namespace {

constexpr char kWhat[] =
    "virtio-65534.0: guest write to read-only piece 0x0+0x10000 of shared memory region 0 "
    "at 0x8000000000";

class ViolationLogTest : public ::testing::Test {
 protected:
  ViolationLog::Sink Collect() {
    return [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(line);
    };
  }
  std::mutex mu_;
  std::vector<std::string> lines_;
};

TEST_F(ViolationLogTest, ReportsEachViolationWithItsVcpuAndOutcome) {
  ViolationLog log(Collect());
  log.Record(1, kWhat, "external abort injected");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0], std::string("rmem-vmm: vCPU 1: isolation violation: ") + kWhat +
                           ": external abort injected");
  EXPECT_EQ(log.count(), 1u);
}

TEST_F(ViolationLogTest, NoViolationsNoSummary) {
  ViolationLog log(Collect());
  EXPECT_EQ(log.count(), 0u);
  EXPECT_EQ(log.Summary(), "");
  EXPECT_TRUE(lines_.empty());
}

TEST_F(ViolationLogTest, LogsTheFirstFewButCountsAll) {
  ViolationLog log(Collect(), /*log_limit=*/3);
  for (int i = 0; i < 10; ++i) log.Record(0, kWhat, "external abort injected");
  ASSERT_EQ(lines_.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_NE(lines_[i].find("isolation violation: "), std::string::npos);
  EXPECT_EQ(lines_[3], "rmem-vmm: more isolation violations are counted but not logged");
  EXPECT_EQ(log.count(), 10u);
  EXPECT_EQ(log.Summary(), "rmem-vmm: isolation violations: 10 (3 logged)");
}

TEST_F(ViolationLogTest, SummaryCountsAllWhenAllWereLogged) {
  ViolationLog log(Collect());
  log.Record(0, kWhat, "external abort injected");
  log.Record(1, kWhat, "external abort injected");
  EXPECT_EQ(log.Summary(), "rmem-vmm: isolation violations: 2 (2 logged)");
}

TEST_F(ViolationLogTest, ConcurrentVcpusNeitherLoseCountsNorExceedTheLimit) {
  ViolationLog log(Collect(), /*log_limit=*/8);
  constexpr int kThreads = 4, kEach = 1000;
  std::vector<std::thread> vcpus;
  for (int t = 0; t < kThreads; ++t) {
    vcpus.emplace_back([&log, t] {
      for (int i = 0; i < kEach; ++i) log.Record(t, kWhat, "external abort injected");
    });
  }
  for (std::thread& t : vcpus) t.join();
  EXPECT_EQ(log.count(), static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(lines_.size(), 9u);  // 8 violations and one "more" line
}

}  // namespace
}  // namespace rmem::vmm

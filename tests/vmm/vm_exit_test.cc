// rmem-vmm's exit statuses (docs/vmm.md, "Exit status"): callers read them.
#include "vmm/vm.h"

#include "gtest/gtest.h"

namespace rmem::vmm {
namespace {

TEST(VmExitTest, EachWayOfStoppingHasItsStatus) {
  EXPECT_EQ(ExitCode(VmExit::kPoweredOff), 0);
  EXPECT_EQ(ExitCode(VmExit::kReset), 3);
  EXPECT_EQ(ExitCode(VmExit::kCrashed), 4);
  EXPECT_EQ(ExitCode(VmExit::kIsolationViolation), 5);
  EXPECT_EQ(ExitCode(VmExit::kTimedOut), 124);
  EXPECT_EQ(ExitCode(VmExit::kSignalled), 143);
}

TEST(VmExitTest, PowerOffAfterViolationsExitsFive) {
  EXPECT_EQ(ExitStatus(VmExit::kPoweredOff, 0), 0);
  EXPECT_EQ(ExitStatus(VmExit::kPoweredOff, 1), 5);
  EXPECT_EQ(ExitStatus(VmExit::kPoweredOff, 1000), 5);
}

TEST(VmExitTest, OtherStopsKeepTheirStatusDespiteViolations) {
  for (VmExit exit : {VmExit::kReset, VmExit::kCrashed, VmExit::kTimedOut, VmExit::kSignalled,
                      VmExit::kIsolationViolation}) {
    EXPECT_EQ(ExitStatus(exit, 0), ExitCode(exit)) << VmExitName(exit);
    EXPECT_EQ(ExitStatus(exit, 3), ExitCode(exit)) << VmExitName(exit);
  }
}

}  // namespace
}  // namespace rmem::vmm

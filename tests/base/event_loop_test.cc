// The event loop: handlers run for ready fds, level-triggered; a handler may
// remove watches (its own and others of the same batch) safely; posted tasks
// run on the next iteration, also when posted from another thread.
#include "base/event_loop.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <thread>

#include "base/eventfd.h"
#include "gtest/gtest.h"

namespace rmem {
namespace {

std::unique_ptr<EventLoop> MakeLoop() {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  EXPECT_TRUE(loop.ok()) << loop.status();
  return *std::move(loop);
}

TEST(EventLoopTest, ReadyFd_HandlerCalledUntilDrained) {
  auto loop = MakeLoop();
  Fd efd = MakeEventFd();
  int calls = 0;
  absl::StatusOr<Watch> w = loop->Add(efd.get(), EPOLLIN, [&](uint32_t events) {
    EXPECT_TRUE(events & EPOLLIN);
    ++calls;
  });
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(loop->RunOnce(absl::ZeroDuration()).ok());
  EXPECT_EQ(calls, 0);
  SignalEventFd(efd.get());
  ASSERT_TRUE(loop->RunOnce(absl::ZeroDuration()).ok());
  ASSERT_TRUE(loop->RunOnce(absl::ZeroDuration()).ok());
  EXPECT_EQ(calls, 2) << "level-triggered: not drained, so called again";
  uint64_t v;
  ASSERT_EQ(read(efd.get(), &v, 8), 8);
  ASSERT_TRUE(loop->RunOnce(absl::ZeroDuration()).ok());
  EXPECT_EQ(calls, 2);
}

TEST(EventLoopTest, HandlerRemovesItselfAndAnotherReadyWatch_NoCallAfterRemoval) {
  auto loop = MakeLoop();
  Fd a = MakeEventFd(), b = MakeEventFd();
  Watch wa, wb;
  int a_calls = 0, b_calls = 0;
  wa = *loop->Add(a.get(), EPOLLIN, [&](uint32_t) {
    ++a_calls;
    wa.Reset();
    wb.Reset();
  });
  wb = *loop->Add(b.get(), EPOLLIN, [&](uint32_t) {
    ++b_calls;
    wa.Reset();
    wb.Reset();
  });
  SignalEventFd(a.get());
  SignalEventFd(b.get());
  ASSERT_TRUE(loop->RunOnce(absl::ZeroDuration()).ok());
  EXPECT_EQ(a_calls + b_calls, 1) << "whichever ran first removed the other";
  ASSERT_TRUE(loop->RunOnce(absl::ZeroDuration()).ok());
  EXPECT_EQ(a_calls + b_calls, 1);
}

TEST(EventLoopTest, Post_RunsNextIterationAndTasksPostedByTasksWait) {
  auto loop = MakeLoop();
  std::vector<int> order;
  loop->Post([&] {
    order.push_back(1);
    loop->Post([&] { order.push_back(2); });
  });
  ASSERT_TRUE(loop->RunOnce(absl::ZeroDuration()).ok());
  EXPECT_EQ(order, std::vector<int>({1}));
  ASSERT_TRUE(loop->RunOnce(absl::ZeroDuration()).ok());
  EXPECT_EQ(order, std::vector<int>({1, 2}));
}

TEST(EventLoopTest, PostFromAnotherThreadWakesRunAndStopEndsIt) {
  auto loop = MakeLoop();
  bool ran = false;
  std::thread other([&] {
    loop->Post([&] {
      ran = true;
      loop->Stop();
    });
  });
  ASSERT_TRUE(loop->Run().ok());
  other.join();
  EXPECT_TRUE(ran);
}

TEST(EventLoopTest, Add_RegularFile_InvalidArgument) {
  auto loop = MakeLoop();
  char path[] = "/tmp/rmem-loop-XXXXXX";
  Fd file(mkstemp(path));
  unlink(path);
  EXPECT_EQ(loop->Add(file.get(), EPOLLIN, [](uint32_t) {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EventLoopTest, Modify_ChangesWhatTheWatchWaitsFor) {
  auto loop = MakeLoop();
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  Fd read_end(fds[0]), write_end(fds[1]);
  int calls = 0;
  uint32_t seen = 0;
  absl::StatusOr<Watch> w = loop->Add(write_end.get(), EPOLLIN, [&](uint32_t events) {
    ++calls;
    seen = events;
  });
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(loop->RunOnce(absl::ZeroDuration()).ok());
  EXPECT_EQ(calls, 0) << "a pipe's write end is never readable";
  w->Modify(EPOLLOUT);
  ASSERT_TRUE(loop->RunOnce(absl::ZeroDuration()).ok());
  EXPECT_EQ(calls, 1) << "but writable";
  EXPECT_TRUE(seen & EPOLLOUT);
  w->Modify(EPOLLIN);
  ASSERT_TRUE(loop->RunOnce(absl::ZeroDuration()).ok());
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace rmem

#include "base/event_loop.h"

#include <sys/epoll.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/eventfd.h"
#include "base/sys_error.h"
#include "broker/check.h"

namespace rmem {
namespace {

// The wake eventfd's id; watch ids start at 1.
constexpr uint64_t kWakeId = 0;
// Ready fds taken from the kernel per epoll_wait.
constexpr int kMaxEventsPerWait = 64;

}  // namespace

void Watch::Reset() {
  if (loop_ != nullptr) std::exchange(loop_, nullptr)->Remove(id_);
}

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create() {
  Fd epoll(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return ErrnoError("epoll_create1");
  Fd wake = MakeEventFd();
  if (!wake.valid()) return ErrnoError("eventfd for the event loop");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  if (epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &ev) != 0) {
    return ErrnoError("watching the event loop's eventfd");
  }
  return std::unique_ptr<EventLoop>(new EventLoop(std::move(epoll), std::move(wake)));
}

EventLoop::~EventLoop() {
  // Every Watch must be gone: one outliving the loop would dangle.
  RMEM_CHECK(entries_.empty());
}

absl::StatusOr<Watch> EventLoop::Add(int fd, uint32_t events, Handler handler) {
  const uint64_t id = next_id_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int err = errno;
    return absl::InvalidArgumentError(
        absl::StrCat("cannot watch fd ", fd, " with epoll: ", std::strerror(err)));
  }
  entries_[id] = std::make_shared<Entry>(Entry{fd, std::move(handler)});
  return Watch(this, id);
}

void EventLoop::Remove(uint64_t id) {
  auto it = entries_.find(id);
  RMEM_CHECK(it != entries_.end());
  // The fd is still open (Watch's contract), so this cannot fail.
  RMEM_CHECK(epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second->fd, nullptr) == 0);
  entries_.erase(it);
}

void Watch::Modify(uint32_t events) {
  RMEM_CHECK(loop_ != nullptr);
  loop_->Modify(id_, events);
}

void EventLoop::Modify(uint64_t id, uint32_t events) {
  auto it = entries_.find(id);
  RMEM_CHECK(it != entries_.end());
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  // The fd is still open (Watch's contract), so this cannot fail.
  RMEM_CHECK(epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, it->second->fd, &ev) == 0);
}

void EventLoop::Post(std::function<void()> task) {
  {
    absl::MutexLock lock(&mu_);
    posted_.push_back(std::move(task));
  }
  SignalEventFd(wake_.get());
}

void EventLoop::Stop() {
  stop_.store(true);
  SignalEventFd(wake_.get());
}

bool EventLoop::RunPostedTasks() {
  std::vector<std::function<void()>> tasks;
  {
    absl::MutexLock lock(&mu_);
    tasks.swap(posted_);
  }
  for (std::function<void()>& task : tasks) task();
  absl::MutexLock lock(&mu_);
  return !posted_.empty();
}

absl::Status EventLoop::RunOnce(absl::Duration timeout) {
  const bool more_tasks = RunPostedTasks();
  int timeout_ms = -1;
  if (more_tasks) {
    timeout_ms = 0;
  } else if (timeout != absl::InfiniteDuration()) {
    timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  }
  epoll_event events[kMaxEventsPerWait];
  const int n = epoll_wait(epoll_.get(), events, kMaxEventsPerWait, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return absl::OkStatus();
    return ErrnoError("epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    const uint64_t id = events[i].data.u64;
    if (id == kWakeId) {
      uint64_t drained;
      (void)!read(wake_.get(), &drained, sizeof(drained));  // non-blocking; the count is unused
      continue;
    }
    // An earlier handler of this batch may have removed it.
    auto it = entries_.find(id);
    if (it == entries_.end()) continue;
    // Held so that the handler may destroy its own Watch.
    std::shared_ptr<Entry> entry = it->second;
    entry->handler(events[i].events);
  }
  return absl::OkStatus();
}

absl::Status EventLoop::Run() {
  while (!stop_.load()) {
    if (absl::Status s = RunOnce(absl::InfiniteDuration()); !s.ok()) return s;
  }
  stop_.store(false);
  return absl::OkStatus();
}

}  // namespace rmem

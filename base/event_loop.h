// A small single-threaded event loop on epoll: rmemd serves every guest from
// one of these (docs/architecture.md: the broker core is single-threaded).
// Handlers run on the loop's thread, one at a time, and must not block.
//
// Level-triggered: a handler that leaves data unread is called again on the
// next iteration, after every other ready fd and posted task had its turn;
// that is how work is shared fairly between guests.
//
// Thread safety: Post and Stop may be called from any thread; everything
// else only from the loop's thread (or before Run starts).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/fd.h"

namespace rmem {

class EventLoop;

// Keeps an fd watched while it lives; destroying (or Reset) stops watching.
// The watched fd must stay open until then: declare the Watch after the Fd
// it watches, so it is destroyed first (an fd closed while still registered
// would keep waking the loop if another process holds the same file).
class Watch {
 public:
  Watch() = default;
  Watch(Watch&& o) noexcept : loop_(std::exchange(o.loop_, nullptr)), id_(o.id_) {}
  Watch& operator=(Watch&& o) noexcept {
    if (this != &o) {
      Reset();
      loop_ = std::exchange(o.loop_, nullptr);
      id_ = o.id_;
    }
    return *this;
  }
  ~Watch() { Reset(); }
  void Reset();
  // Watches for `events` from now on (epoll_ctl MOD), e.g. EPOLLOUT only
  // while there is output queued. The watch must be active.
  void Modify(uint32_t events);
  bool active() const { return loop_ != nullptr; }

 private:
  friend class EventLoop;
  Watch(EventLoop* loop, uint64_t id) : loop_(loop), id_(id) {}
  EventLoop* loop_ = nullptr;
  uint64_t id_ = 0;
};

class EventLoop {
 public:
  // Gets the epoll events (EPOLLIN, EPOLLHUP, ...) that were ready.
  using Handler = std::function<void(uint32_t events)>;

  // Internal (with the errno text) if epoll or eventfd cannot be created.
  static absl::StatusOr<std::unique_ptr<EventLoop>> Create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Calls `handler` whenever `fd` has any of `events` (level-triggered;
  // EPOLLHUP and EPOLLERR are always reported). A handler may create and
  // destroy Watches, its own included. InvalidArgument if epoll refuses the
  // fd (e.g. a regular file), with the errno text.
  absl::StatusOr<Watch> Add(int fd, uint32_t events, Handler handler);

  // Runs `task` on the loop's thread at the start of the next iteration.
  // Tasks posted while tasks run wait for the following iteration.
  void Post(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_);

  // Runs iterations until Stop. Internal only if epoll_wait fails.
  absl::Status Run();
  // One iteration: the posted tasks, then waiting at most `timeout` (not at
  // all if tasks are pending) and calling the handlers of ready fds.
  absl::Status RunOnce(absl::Duration timeout);
  // Makes Run return after the current iteration.
  void Stop();

 private:
  friend class Watch;
  struct Entry {
    int fd;
    Handler handler;
  };
  EventLoop(Fd epoll, Fd wake) : epoll_(std::move(epoll)), wake_(std::move(wake)) {}
  void Remove(uint64_t id);
  void Modify(uint64_t id, uint32_t events);
  bool RunPostedTasks() ABSL_LOCKS_EXCLUDED(mu_);

  Fd epoll_;
  Fd wake_;  // eventfd: Post and Stop from other threads
  uint64_t next_id_ = 1;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Entry>> entries_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  std::vector<std::function<void()>> posted_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rmem

// TEST ONLY: a scripted vhost-user back-end for the frontend tests. It
// listens on a fresh socket (or a given path, to play a back-end restarted
// in place), accepts one connection on its own thread, stops listening (the
// path is free again) and answers every request from a fixed configuration,
// recording what it got. HangUp plays a crash. It is deliberately dumb: no
// rings are processed, no memory is mapped.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "vhost_user/channel.h"
#include "vhost_user/protocol.h"

namespace rmem::vmm::testing {

using vhost_user::Bytes;

struct ScriptedBackendConfig {
  uint64_t features = (uint64_t{1} << 32) | (uint64_t{1} << vhost_user::kFProtocolFeatures);
  uint64_t protocol_features = 0;
  uint64_t queue_num = 1;
  std::vector<uint8_t> config;       // device config space (GET_CONFIG reads it)
  std::vector<uint64_t> shmem_sizes; // GET_SHMEM_CONFIG
  uint32_t nack_request = 0;         // ack this request with status 1 (0: none)
  uint32_t disconnect_on = 0;        // hang up when this request arrives (0: never)
};

struct Received {
  uint32_t request = 0;
  uint32_t flags = 0;
  std::vector<uint8_t> payload;
  size_t num_fds = 0;
  std::vector<std::shared_ptr<Fd>> fds;  // kept open for the test (not SET_BACKEND_REQ_FD's)
};

// Runs on the back-end's thread for each request after it was recorded and
// before it is answered; `backend_req_fd` is the back-end request socket
// (SET_BACKEND_REQ_FD) or -1.
using BeforeReply = std::function<void(const Received& request, int backend_req_fd)>;

class ScriptedBackend {
 public:
  explicit ScriptedBackend(ScriptedBackendConfig config, BeforeReply before_reply = nullptr)
      : config_(std::move(config)), before_reply_(std::move(before_reply)) {
    char dir[] = "/tmp/rmem-vu-XXXXXX";
    dir_ = mkdtemp(dir);
    path_ = dir_ + "/backend.sock";
    Listen();
  }
  // A back-end that comes up at `path` (whose directory someone else owns),
  // as a restarted one does.
  ScriptedBackend(ScriptedBackendConfig config, std::string path,
                  BeforeReply before_reply = nullptr)
      : config_(std::move(config)), path_(std::move(path)), before_reply_(std::move(before_reply)) {
    Listen();
  }
  // Hangs up first if the frontend is still connected.
  ~ScriptedBackend() {
    HangUp();
    if (thread_.joinable()) thread_.join();
    unlink(path_.c_str());
    if (!dir_.empty()) rmdir(dir_.c_str());
  }

  const std::string& path() const { return path_; }

  // Hangs up as a crashed back-end does: the connection and the back-end
  // request socket close at once.
  void HangUp() {
    absl::MutexLock lock(&mu_);
    if (conn_fd_ >= 0) shutdown(conn_fd_, SHUT_RDWR);
    backend_fd_.reset();
  }

  // What arrived so far (the connection may go on).
  std::vector<Received> ReceivedSoFar() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

  // Waits until the frontend hung up (or we did), then returns every request.
  std::vector<Received> Finish() {
    if (thread_.joinable()) thread_.join();
    absl::MutexLock lock(&mu_);
    return received_;
  }

  // The back-end end of SET_BACKEND_REQ_FD, waiting up to 5 s for it.
  std::unique_ptr<vhost_user::Channel> TakeBackendChannel() {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](std::optional<Fd>* fd) { return fd->has_value(); }, &backend_fd_),
                         absl::Seconds(5));
    if (!backend_fd_) return nullptr;
    auto channel = std::make_unique<vhost_user::Channel>(
        std::move(*backend_fd_), "frontend (back-end request socket)",
        vhost_user::RequestSpace::kBackend);
    backend_fd_.reset();
    return channel;
  }

 private:
  void Listen() {
    listener_ = Fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << path_ << ": " << std::strerror(errno);
    listen(listener_.get(), 1);
    thread_ = std::thread([this] { Serve(); });
  }

  void Serve() {
    pollfd p{listener_.get(), POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return;  // nobody came
    vhost_user::Channel ch(Fd(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC)),
                           "frontend", vhost_user::RequestSpace::kFrontend);
    // One connection only: the path is free for a back-end restarted in place.
    listener_.Reset();
    unlink(path_.c_str());
    {
      absl::MutexLock lock(&mu_);
      conn_fd_ = ch.fd();
    }
    ServeConnection(ch);
    absl::MutexLock lock(&mu_);
    conn_fd_ = -1;  // before `ch` closes it
  }

  void ServeConnection(vhost_user::Channel& ch) {
    using R = vhost_user::FrontendRequest;
    Fd backend_req;  // our own copy, for before_reply_
    for (;;) {
      absl::StatusOr<vhost_user::Message> msg = ch.Receive("a request");
      if (!msg.ok()) return;
      const uint32_t code = msg->header.request;
      Received got{code, msg->header.flags, msg->payload, msg->fds.size(), {}};
      if (code == static_cast<uint32_t>(R::kSetBackendReqFd) && msg->fds.size() == 1) {
        backend_req = Fd(fcntl(msg->fds[0].get(), F_DUPFD_CLOEXEC, 0));
        absl::MutexLock lock(&mu_);
        backend_fd_ = std::move(msg->fds[0]);
      } else {
        for (Fd& fd : msg->fds) got.fds.push_back(std::make_shared<Fd>(std::move(fd)));
      }
      {
        absl::MutexLock lock(&mu_);
        received_.push_back(got);
      }
      if (code == config_.disconnect_on) return;
      if (before_reply_) before_reply_(got, backend_req.get());
      auto reply = [&](std::span<const uint8_t> payload) {
        const vhost_user::MsgHeader h{code, vhost_user::kVersion | vhost_user::kFlagReply,
                                      static_cast<uint32_t>(payload.size())};
        (void)ch.Send(h, payload);
      };
      switch (static_cast<R>(code)) {
        case R::kGetFeatures: reply(Bytes(config_.features)); continue;
        case R::kGetProtocolFeatures: reply(Bytes(config_.protocol_features)); continue;
        case R::kGetQueueNum: reply(Bytes(config_.queue_num)); continue;
        case R::kGetVringBase: reply(msg->payload); continue;  // {index, 0}
        case R::kGetShmemConfig: {
          vhost_user::ShmemConfig c;
          c.nregions = static_cast<uint32_t>(config_.shmem_sizes.size());
          for (size_t i = 0; i < config_.shmem_sizes.size(); ++i) c.memory_sizes[i] = config_.shmem_sizes[i];
          reply(Bytes(c));
          continue;
        }
        case R::kGetConfig: {
          vhost_user::ConfigHeader h;
          std::memcpy(&h, msg->payload.data(), sizeof(h));
          std::vector<uint8_t> out(sizeof(h) + h.size, 0);
          std::memcpy(out.data(), &h, sizeof(h));
          for (uint32_t i = 0; i < h.size && h.offset + i < config_.config.size(); ++i) {
            out[sizeof(h) + i] = config_.config[h.offset + i];
          }
          reply(out);
          continue;
        }
        default:
          break;
      }
      if (msg->header.flags & vhost_user::kFlagNeedReply) {
        const uint64_t status = code == config_.nack_request ? 1 : 0;
        reply(Bytes(status));
      }
    }
  }

  const ScriptedBackendConfig config_;
  std::string dir_;  // ours to remove; empty when the path was given
  std::string path_;
  const BeforeReply before_reply_;
  Fd listener_;  // the serving thread's after construction
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<Received> received_ ABSL_GUARDED_BY(mu_);
  std::optional<Fd> backend_fd_ ABSL_GUARDED_BY(mu_);
  int conn_fd_ ABSL_GUARDED_BY(mu_) = -1;  // the connection while it is served
};

}  // namespace rmem::vmm::testing

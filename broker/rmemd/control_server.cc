// The control socket's connections: accept and check the peer, read request
// lines, answer them in order, write back without ever blocking.
#include "broker/rmemd/control_server.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/directories.h"
#include "base/log.h"

namespace rmem::rmemd {
namespace {

constexpr int kListenBacklog = 16;
constexpr int kAcceptsPerWakeup = 16;
constexpr size_t kReadChunk = 16 * 1024;
// Reads per wakeup: a fast writer cannot keep the loop to itself.
constexpr int kReadsPerWakeup = 4;

std::string Who(const PeerCredentials& p) { return absl::StrCat("pid ", p.pid, " uid ", p.uid); }

// Best effort, for a client about to be closed: one non-blocking write.
void SendAndForget(int fd, const std::string& line) {
  (void)!send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

struct ControlServer::Client {
  uint64_t id = 0;
  Fd fd;
  Watch watch;  // after fd: destroyed first
  PeerCredentials peer;
  std::string in;  // bytes read; those before in_start are served
  size_t in_start = 0;
  std::string out;  // answers not yet written, from out_sent on
  size_t out_sent = 0;
  bool closing = false;  // no more requests: close once `out` is written
  uint32_t events = 0;   // what `watch` watches now

  size_t pending() const { return out.size() - out_sent; }
  bool has_line() const { return in.find('\n', in_start) != std::string::npos; }
  // Drops the served bytes (once per read, not once per line).
  void Compact() {
    in.erase(0, in_start);
    in_start = 0;
  }
};

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(EventLoop& loop,
                                                                    const std::string& path,
                                                                    Handler handler,
                                                                    Options options) {
  if (absl::Status s = MakeParentDirectories(path, 0700); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("control socket: ", s.message()));
  }
  absl::StatusOr<Fd> listener = ListenUnix(path, kListenBacklog, 0600);
  if (!listener.ok()) {
    return absl::Status(listener.status().code(),
                        absl::StrCat("control socket: ", listener.status().message()));
  }
  std::unique_ptr<ControlServer> server(new ControlServer(loop, path, std::move(handler), options));
  server->listener_ = *std::move(listener);
  ControlServer* self = server.get();
  absl::StatusOr<Watch> watch =
      loop.Add(server->listener_.get(), EPOLLIN, [self](uint32_t) { self->OnListenerReady(); });
  if (!watch.ok()) {
    unlink(path.c_str());
    return watch.status();
  }
  server->listener_watch_ = *std::move(watch);
  return server;
}

ControlServer::ControlServer(EventLoop& loop, std::string path, Handler handler, Options options)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)), options_(options) {}

ControlServer::~ControlServer() {
  clients_.clear();
  listener_watch_.Reset();
  listener_.Reset();
  unlink(path_.c_str());
}

void ControlServer::OnListenerReady() {
  for (int n = 0; n < kAcceptsPerWakeup; ++n) {
    Fd fd(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) return;  // EAGAIN, or the client gave up meanwhile
    absl::StatusOr<PeerCredentials> peer = PeerOf(fd.get());
    if (!peer.ok()) {
      ++counters_.refused;
      Log(LogLevel::kWarn, absl::StrCat("control: refused a client: ", peer.status().message()));
      continue;
    }
    if (peer->uid != 0 && peer->uid != options_.allowed_uid) {
      ++counters_.refused;
      Log(LogLevel::kWarn,
          absl::StrCat("control: refused ", Who(*peer), " on ", path_, ": only root and uid ",
                       options_.allowed_uid, " may use it"));
      SendAndForget(fd.get(),
                    ToLine(ErrorAnswer(absl::StrCat(
                        "uid ", peer->uid, " may not use rmemd's control socket (root and uid ",
                        options_.allowed_uid, " may)"))));
      continue;
    }
    if (clients_.size() >= options_.max_clients) {
      ++counters_.refused;
      Log(LogLevel::kWarn,
          absl::StrCat("control: refused ", Who(*peer), ": already ", clients_.size(), " clients"));
      SendAndForget(fd.get(),
                    ToLine(ErrorAnswer(absl::StrCat("rmemd serves at most ", options_.max_clients,
                                                    " control clients at once; try again"))));
      continue;
    }
    const uint64_t id = next_id_++;
    auto c = std::make_unique<Client>();
    c->id = id;
    c->fd = std::move(fd);
    c->peer = *peer;
    c->events = EPOLLIN;
    absl::StatusOr<Watch> watch =
        loop_.Add(c->fd.get(), EPOLLIN, [this, id](uint32_t) { OnClientReady(id); });
    if (!watch.ok()) {
      Log(LogLevel::kError, absl::StrCat("control: ", watch.status().ToString()));
      continue;
    }
    c->watch = *std::move(watch);
    ++counters_.accepted;
    Log(LogLevel::kDebug, absl::StrCat("control: ", Who(c->peer), " connected"));
    clients_.emplace(id, std::move(c));
  }
}

void ControlServer::OnClientReady(uint64_t id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  Client& c = *it->second;
  if (!Flush(c)) return Close(id, "it hung up");
  int served = 0, reads = 0;
  while (!c.closing) {
    if (const size_t nl = c.in.find('\n', c.in_start); nl != std::string::npos) {
      if (served == kRequestsPerWakeup) break;  // the rest next turn (EPOLLOUT wakes us)
      const std::string line = c.in.substr(c.in_start, nl - c.in_start);
      c.in_start = nl + 1;
      ++served;
      if (!Serve(c, line)) return;
      continue;
    }
    c.Compact();
    if (c.in.size() > kMaxRequestBytes) {
      Serve(c, std::exchange(c.in, ""));  // answers "too long" and closes
      return;
    }
    if (reads == kReadsPerWakeup) break;
    ++reads;
    char buf[kReadChunk];
    const ssize_t n = read(c.fd.get(), buf, sizeof(buf));
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      // Half-closed: an unterminated last line is still a request.
      c.closing = true;
      if (!c.in.empty() && !Serve(c, std::exchange(c.in, ""))) return;
    } else if (errno == EAGAIN || errno == EINTR) {
      break;
    } else {
      return Close(id, "its socket failed");
    }
  }
  if (!Flush(c)) return Close(id, "it hung up");
  if (c.closing && c.pending() == 0) return Close(id, "it hung up");
  // Read while there is room for requests; wake for output while answers
  // wait or requests are buffered (a writable socket wakes us next turn).
  uint32_t want = 0;
  if (!c.closing && !c.has_line()) want |= EPOLLIN;
  if (c.pending() > 0 || (!c.closing && c.has_line())) want |= EPOLLOUT;
  if (want != c.events) {
    c.events = want;
    c.watch.Modify(want);
  }
}

bool ControlServer::Serve(Client& c, const std::string& line) {
  if (line.size() > kMaxRequestBytes) {
    // The framing is lost: say why, once, and close without waiting.
    ++counters_.dropped;
    Log(LogLevel::kWarn, absl::StrCat("control: ", Who(c.peer), ": a request over ",
                                      kMaxRequestBytes, " bytes: closed"));
    if (Answer(c, ErrorAnswer(absl::StrCat("request over ", kMaxRequestBytes,
                                           " bytes (one JSON object per line): closing")))) {
      Flush(c);
      Close(c.id, "oversize request");
    }
    return false;
  }
  if (line.find_first_not_of(" \t\r") == std::string::npos) return true;  // blank: ignored
  ++counters_.requests;
  const Json request = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) {
    return Answer(c, ErrorAnswer("request is not valid JSON (send one JSON object per line, "
                                 "e.g. {\"command\":\"status\"})"));
  }
  if (LogEnabled(LogLevel::kDebug)) {
    const auto command = request.is_object() ? request.find("command") : request.end();
    Log(LogLevel::kDebug, absl::StrCat("control: ", Who(c.peer), ": ",
                                       command != request.end() && command->is_string()
                                           ? command->get_ref<const std::string&>()
                                           : std::string("(no command)")));
  }
  return Answer(c, handler_(request));
}

bool ControlServer::Answer(Client& c, const Json& answer) {
  std::string line = ToLine(answer);
  if (c.pending() > 0 && c.pending() + line.size() > options_.max_pending_output) {
    ++counters_.dropped;
    Log(LogLevel::kWarn,
        absl::StrCat("control: dropped ", Who(c.peer), ": it does not read its answers (",
                     c.pending(), " bytes unsent)"));
    Close(c.id, "dropped");
    return false;
  }
  if (c.out_sent == c.out.size()) {
    c.out.clear();
    c.out_sent = 0;
  }
  c.out += line;
  return true;
}

bool ControlServer::Flush(Client& c) {
  while (c.pending() > 0) {
    const ssize_t n =
        send(c.fd.get(), c.out.data() + c.out_sent, c.pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out_sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      return true;
    } else {
      return false;
    }
  }
  c.out.clear();
  c.out_sent = 0;
  return true;
}

void ControlServer::Close(uint64_t id, const char* why) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  Log(LogLevel::kDebug, absl::StrCat("control: ", Who(it->second->peer), " closed: ", why));
  clients_.erase(it);
}

}  // namespace rmem::rmemd

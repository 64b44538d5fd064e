// rmemd's control socket server over real Unix sockets, with a handler that
// only says which command it got (what commands mean is control_commands'
// and is tested in control_commands_test.cc): the socket's mode, framing
// (split writes, pipelined requests, a half-closed client, garbage, lines
// over the size cap), many clients at once, a client that never reads its
// answers, and peers of another uid (a forked child that drops to uid
// 65534).
#include "broker/rmemd/control_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/event_loop.h"
#include "tests/broker/rmemd/control_test_client.h"

namespace rmem::rmemd {
namespace {

using ::testing::HasSubstr;

constexpr uid_t kNobody = 65534;

// The handler under the server: says which command came, and pads its
// answer to `pad` bytes when asked to (a large answer).
Json Echo(const Json& request, size_t pad) {
  Json answer = {{"ok", true}};
  const auto command = request.is_object() ? request.find("command") : request.end();
  answer["command"] = command != request.end() && command->is_string() ? *command : Json(nullptr);
  if (pad > 0) answer["pad"] = std::string(pad, 'x');
  return answer;
}

using Client = ControlTestClient;

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/rmemd-control-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/run/control";  // run/: created by the server
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = *std::move(loop);
  }
  void TearDown() override {
    StopLoop();
    server_.reset();
    loop_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  void Start(ControlServer::Options options = {}) {
    absl::StatusOr<std::unique_ptr<ControlServer>> s = ControlServer::Start(
        *loop_, path_, [this](const Json& r) { return Echo(r, pad_); }, options);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    thread_ = std::thread([this] { EXPECT_TRUE(loop_->Run().ok()); });
  }
  void StopLoop() {
    if (!thread_.joinable()) return;
    loop_->Stop();
    thread_.join();
  }

  std::string dir_, path_;
  size_t pad_ = 0;  // set before Start
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<ControlServer> server_;
  std::thread thread_;
};

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode;
}

TEST_F(ControlServerTest, Socket_Mode0600InDirectoryCreated0700_EvenWithUmask0) {
  const mode_t old = umask(0);
  Start();
  const mode_t now = umask(old);
  EXPECT_EQ(now, 0u) << "the umask is restored after bind";
  EXPECT_TRUE(S_ISSOCK(ModeOf(path_)));
  EXPECT_EQ(ModeOf(path_) & 07777, 0600u);
  EXPECT_EQ(ModeOf(dir_ + "/run") & 07777, 0700u);
}

TEST_F(ControlServerTest, Stop_RemovesTheSocket) {
  Start();
  StopLoop();
  server_.reset();
  EXPECT_EQ(ModeOf(path_), 0u);
}

TEST_F(ControlServerTest, LiveSocketAtPath_AlreadyExists) {
  Start();
  absl::StatusOr<std::unique_ptr<ControlServer>> second =
      ControlServer::Start(*loop_, path_, [](const Json& r) { return Echo(r, 0); });
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(second.status().message(), HasSubstr(path_));
}

TEST_F(ControlServerTest, Request_AnsweredOnOneLine) {
  Start();
  Client c(path_);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("{\"command\":\"status\"}\n"));
  Json a = c.Next();
  ASSERT_TRUE(a.is_object()) << a.dump();
  EXPECT_EQ(a["ok"], true);
  EXPECT_EQ(a["command"], "status");
}

TEST_F(ControlServerTest, SplitWrites_Reassembled) {
  Start();
  Client c(path_);
  const std::string request = "{\"command\":\"audit\",\"after\":1}\n";
  for (char ch : request) {
    ASSERT_TRUE(c.Send(std::string(1, ch)));
    absl::SleepFor(absl::Milliseconds(1));
  }
  Json a = c.Next();
  ASSERT_TRUE(a.is_object());
  EXPECT_EQ(a["command"], "audit");
}

TEST_F(ControlServerTest, Pipelined_AllAnsweredInOrder) {
  Start();
  Client c(path_);
  std::string batch;
  for (int i = 0; i < 100; ++i) absl::StrAppend(&batch, "{\"command\":\"c", i, "\"}\n");
  ASSERT_TRUE(c.Send(batch));  // more than kRequestsPerWakeup at once
  for (int i = 0; i < 100; ++i) {
    Json a = c.Next();
    ASSERT_TRUE(a.is_object()) << "answer " << i;
    EXPECT_EQ(a["command"], absl::StrCat("c", i));
  }
}

TEST_F(ControlServerTest, Garbage_ErrorAnswer_ConnectionServesOn) {
  Start();
  Client c(path_);
  ASSERT_TRUE(c.Send("garbage\n{\"command\":\n\xff\xfe\n{\"command\":\"status\"}\n"));
  for (int i = 0; i < 3; ++i) {
    Json e = c.Next();
    ASSERT_TRUE(e.is_object()) << "answer " << i;
    EXPECT_EQ(e["ok"], false);
    EXPECT_THAT(ErrorOf(e), HasSubstr("not valid JSON"));
  }
  EXPECT_EQ(c.Next()["command"], "status");
}

TEST_F(ControlServerTest, BlankLines_Ignored) {
  Start();
  Client c(path_);
  ASSERT_TRUE(c.Send("\n  \r\n{\"command\":\"status\"}\n"));
  EXPECT_EQ(c.Next()["command"], "status");
}

TEST_F(ControlServerTest, OversizeRequestWithoutNewline_ErrorThenClosed) {
  Start();
  Client c(path_);
  ASSERT_TRUE(c.Send(std::string(kMaxRequestBytes + 1, ' ')));
  Json e = c.Next();
  ASSERT_TRUE(e.is_object());
  EXPECT_EQ(e["ok"], false);
  EXPECT_THAT(ErrorOf(e), HasSubstr("request over 65536 bytes"));
  EXPECT_TRUE(c.AtEof());
}

TEST_F(ControlServerTest, OversizeLine_ErrorThenClosed) {
  Start();
  Client c(path_);
  // A JSON string: a valid request, but a line over the cap.
  const std::string big = "{\"command\":\"" + std::string(kMaxRequestBytes, 'a') + "\"}\n";
  c.Send(big);  // the server may close before it read it all
  Json e = c.Next();
  ASSERT_TRUE(e.is_object());
  EXPECT_THAT(ErrorOf(e), HasSubstr("request over"));
  EXPECT_TRUE(c.AtEof());
}

TEST_F(ControlServerTest, LineAtTheCap_Served) {
  Start();
  Client c(path_);
  std::string line = "{\"command\":\"x\",\"pad\":\"\"}";
  line.insert(line.size() - 2, kMaxRequestBytes - line.size(), 'p');
  ASSERT_EQ(line.size(), kMaxRequestBytes);
  ASSERT_TRUE(c.Send(line + "\n"));
  EXPECT_EQ(c.Next()["command"], "x");
}

TEST_F(ControlServerTest, DeeplyNested_NoCrash) {
  Start();
  Client c(path_);
  const size_t depth = kMaxRequestBytes / 2 - 1;
  ASSERT_TRUE(c.Send(std::string(depth, '[') + std::string(depth, ']') + "\n"));
  Json a = c.Next();
  ASSERT_TRUE(a.is_object());
  EXPECT_EQ(a["command"], nullptr);  // parsed (an array), answered
  ASSERT_TRUE(c.Send("{\"command\":\"status\"}\n"));
  EXPECT_EQ(c.Next()["command"], "status");
}

TEST_F(ControlServerTest, HalfClosed_StillAnswered_UnterminatedLastLineToo) {
  Start();
  Client c(path_);
  ASSERT_TRUE(c.Send("{\"command\":\"a\"}\n{\"command\":\"b\"}"));
  ASSERT_EQ(shutdown(c.fd(), SHUT_WR), 0);
  EXPECT_EQ(c.Next()["command"], "a");
  EXPECT_EQ(c.Next()["command"], "b");
  EXPECT_TRUE(c.AtEof());
}

TEST_F(ControlServerTest, ManyClients_AllServed) {
  Start();
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 48; ++i) {
    clients.push_back(std::make_unique<Client>(path_));
    ASSERT_TRUE(clients.back()->connected()) << i;
  }
  for (size_t i = 0; i < clients.size(); ++i) {
    ASSERT_TRUE(clients[i]->Send(absl::StrCat("{\"command\":\"c", i, "\"}\n")));
  }
  for (size_t i = 0; i < clients.size(); ++i) {
    EXPECT_EQ(clients[i]->Next()["command"], absl::StrCat("c", i));
  }
}

TEST_F(ControlServerTest, OverMaxClients_ToldAndClosed) {
  Start({.max_clients = 2});
  Client a(path_), b(path_);
  ASSERT_TRUE(a.Send("{\"command\":\"a\"}\n"));
  ASSERT_TRUE(b.Send("{\"command\":\"b\"}\n"));
  EXPECT_EQ(a.Next()["command"], "a");  // both accepted by now
  EXPECT_EQ(b.Next()["command"], "b");
  Client third(path_);
  Json e = third.Next();
  ASSERT_TRUE(e.is_object());
  EXPECT_THAT(ErrorOf(e), HasSubstr("at most 2 control clients"));
  EXPECT_TRUE(third.AtEof());
  ASSERT_TRUE(a.Send("{\"command\":\"again\"}\n"));
  EXPECT_EQ(a.Next()["command"], "again");
}

TEST_F(ControlServerTest, ClientThatNeverReads_Dropped_OthersServed) {
  pad_ = 4096;  // every answer about 4 KiB
  Start({.max_pending_output = 64 * 1024});
  Client lazy(path_);
  std::string batch;
  for (int i = 0; i < 2000; ++i) batch += "{\"command\":\"x\"}\n";  // 8 MiB of answers
  ASSERT_TRUE(lazy.Send(batch));
  // Meanwhile another client is served at once.
  Client other(path_);
  ASSERT_TRUE(other.Send("{\"command\":\"status\"}\n"));
  EXPECT_EQ(other.Next()["command"], "status");
  // The lazy one finds its connection ended after far fewer answers.
  int answers = 0;
  while (lazy.Next().is_object()) ++answers;
  EXPECT_LT(answers, 2000);
  EXPECT_TRUE(lazy.AtEof());
}

// A forked child that drops to `uid` connects and reports the first line
// it got (or "" for none). The socket and its directory are opened up first
// so that the credential check, not the file mode, is what decides.
std::string ConnectAs(const std::string& path, const std::string& dir, uid_t uid) {
  chmod(dir.c_str(), 0755);
  chmod((dir + "/run").c_str(), 0755);
  chmod(path.c_str(), 0666);
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return "pipe failed";
  const pid_t child = fork();
  if (child == 0) {
    close(pipe_fds[0]);
    if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) _exit(2);
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) _exit(3);
    const char request[] = "{\"command\":\"status\"}\n";
    // The server may have closed already (a refusal): no SIGPIPE.
    (void)!send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL);
    char buf[512];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
      (void)!write(pipe_fds[1], buf, static_cast<size_t>(n));
      if (std::memchr(buf, '\n', static_cast<size_t>(n)) != nullptr) break;
    }
    _exit(0);
  }
  close(pipe_fds[1]);
  std::string got;
  char buf[512];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof(buf))) > 0) got.append(buf, static_cast<size_t>(n));
  close(pipe_fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::StrCat("child failed: status ", status);
  }
  return got;
}

TEST_F(ControlServerTest, PeerOfAnotherUid_RefusedAndClosed) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: the child must setresuid to " << kNobody;
  Start();
  const std::string got = ConnectAs(path_, dir_, kNobody);
  EXPECT_THAT(got, HasSubstr("\"ok\":false"));
  EXPECT_THAT(got, HasSubstr("uid 65534 may not use rmemd's control socket"));
}

TEST_F(ControlServerTest, PeerOfRmemdsOwnUid_Served) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: the child must setresuid to " << kNobody;
  Start({.allowed_uid = kNobody});  // as if rmemd ran as 65534
  const std::string got = ConnectAs(path_, dir_, kNobody);
  EXPECT_THAT(got, HasSubstr("\"ok\":true"));
  EXPECT_THAT(got, HasSubstr("\"command\":\"status\""));
}

TEST(ControlProtocolTest, ToLine_ReplacesBytesThatAreNotUtf8) {
  const std::string line = ToLine(Json{{"name", std::string("fw\xff@1")}});
  EXPECT_EQ(line, "{\"name\":\"fw\xef\xbf\xbd@1\"}\n");
}

}  // namespace
}  // namespace rmem::rmemd

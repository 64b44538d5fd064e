// TEST ONLY: a client of rmemd's control socket for the tests of the server
// and of the commands: raw bytes out, one parsed answer line in, with a
// receive timeout as a hang guard. A missing answer is null (a test that
// reads a field of it fails; nlohmann built without exceptions would abort
// on a discarded value).
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "base/fd.h"
#include "broker/rmemd/control_protocol.h"

namespace rmem::rmemd {

class ControlTestClient {
 public:
  explicit ControlTestClient(const std::string& path)
      : fd_(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    connected_ = connect(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
    const timeval tv{10, 0};
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  bool connected() const { return connected_; }
  int fd() const { return fd_.get(); }

  bool Send(const std::string& bytes) {
    return send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // The next answer line, parsed; null when the connection ended or the
  // line is not JSON (that adds a failure).
  Json Next() {
    size_t nl;
    while ((nl = in_.find('\n')) == std::string::npos) {
      char buf[65536];
      const ssize_t n = recv(fd_.get(), buf, sizeof(buf), 0);
      if (n <= 0) return Json();
      in_.append(buf, static_cast<size_t>(n));
    }
    const std::string line = in_.substr(0, nl);
    in_.erase(0, nl + 1);
    Json answer = Json::parse(line, nullptr, false);
    if (answer.is_discarded()) {
      ADD_FAILURE() << "an answer that is not JSON: " << line.substr(0, 200);
      return Json();
    }
    return answer;
  }
  // Sends `line` and returns its answer (null, adding a failure, if none).
  Json Ask(const std::string& line) {
    EXPECT_TRUE(Send(line + "\n"));
    Json answer = Next();
    if (answer.is_null()) ADD_FAILURE() << "no answer to " << line.substr(0, 200);
    return answer;
  }
  // The error text of an {"ok":false} answer to `line` ("" otherwise, with
  // a failure added).
  std::string Error(const std::string& line) {
    Json a = Ask(line);
    if (!a.is_object() || a["ok"] != false || !a["error"].is_string()) {
      ADD_FAILURE() << "not an error answer: " << a.dump();
      return "";
    }
    return a["error"].get<std::string>();
  }
  // True when the server ended the connection with nothing more to read.
  // (A Unix socket closed with requests still unread is reset, not ended.)
  bool AtEof() {
    char c;
    if (!in_.empty()) return false;
    const ssize_t n = recv(fd_.get(), &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  Fd fd_;
  bool connected_ = false;
  std::string in_;
};

// The "error" of an answer, "(no error)" if it has none.
inline std::string ErrorOf(const Json& answer) {
  const auto e = answer.is_object() ? answer.find("error") : answer.end();
  return e != answer.end() && e->is_string() ? e->get<std::string>() : std::string("(no error)");
}

}  // namespace rmem::rmemd

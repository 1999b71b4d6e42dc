// control/client.cc - ControlClient: one blocking connection to a control socket; sends a
// request line and parses "OK LEN" / "ERR NAME message" responses (control.h).
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "control/control.h"
#include "control/internal.h"
#include "util/unix_socket.h"

namespace uzram {

using control_internal::next_word;
using control_internal::sys_error;

ControlClient::ControlClient(ControlClient&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)) {
  o.fd_ = -1;
}

ControlClient& ControlClient::operator=(ControlClient&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    buf_ = std::move(o.buf_);
    o.fd_ = -1;
  }
  return *this;
}

ControlClient::~ControlClient() {
  if (fd_ >= 0) ::close(fd_);
}

Result<ControlClient> ControlClient::connect(const std::string& path, std::string* msg,
                                             int timeout_ms) noexcept {
  auto fd = connect_unix_socket(path, msg, timeout_ms);
  if (!fd) return fd.error();
  ControlClient c;
  c.fd_ = *fd;
  return c;
}

Result<std::string> ControlClient::call(std::string_view request, std::string* msg) noexcept {
  auto proto = [msg](const std::string& why) -> Result<std::string> {
    if (msg) *msg = why;
    return std::error_code(EPROTO, std::generic_category());
  };
  if (fd_ < 0) return proto("not connected");
  if (request.find('\n') != std::string_view::npos) return proto("request contains a newline");
  std::string out(request);
  out += '\n';
  for (std::size_t off = 0; off < out.size();) {
    const ssize_t n = ::send(fd_, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(msg, "control socket send");
    off += static_cast<std::size_t>(n);
  }
  // Receives until buf_ holds a header line (header) or `want` bytes (!header).
  auto fill = [this, msg](bool header, std::size_t want) -> Result<void> {
    char b[65536];
    while (header ? buf_.find('\n') == std::string::npos : buf_.size() < want) {
      if (header && buf_.size() > kControlMaxLine + 64) {
        if (msg) *msg = "control socket: response header too long";
        return std::error_code(EPROTO, std::generic_category());
      }
      const ssize_t n = ::recv(fd_, b, sizeof b, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return sys_error(msg, "control socket receive");
      if (n == 0) {
        if (msg) *msg = "control socket: connection closed by the server";
        return std::error_code(EPROTO, std::generic_category());
      }
      buf_.append(b, static_cast<std::size_t>(n));
    }
    return {};
  };
  if (auto r = fill(true, 0); !r) return r.error();
  const std::size_t nl = buf_.find('\n');
  const std::string head = buf_.substr(0, nl);
  buf_.erase(0, nl + 1);
  if (head.rfind("ERR ", 0) == 0) {
    std::string_view rest = std::string_view(head).substr(4);
    const std::string_view name = next_word(&rest);
    if (msg) *msg = std::string(rest);
    return errno_from_name(name);
  }
  if (head.rfind("OK ", 0) != 0)
    return proto("control socket: malformed response '" + head.substr(0, 64) + "'");
  char* end = nullptr;
  const unsigned long long len = std::strtoull(head.c_str() + 3, &end, 10);
  if (head.size() == 3 || *end != '\0' || len > kControlMaxPayload) {
    return proto("control socket: bad response length '" + head.substr(0, 64) + "'");
  }
  if (auto r = fill(false, len); !r) return r.error();
  std::string payload = buf_.substr(0, len);
  buf_.erase(0, len);
  return payload;
}

Result<std::string> ControlClient::read_attr(std::string_view attr, std::string* msg) noexcept {
  return call("READ " + std::string(attr), msg);
}

Result<void> ControlClient::write_attr(std::string_view attr, std::string_view value,
                                       std::string* msg) noexcept {
  auto r = call("WRITE " + std::string(attr) + " " + std::string(value), msg);
  if (!r) return r.error();
  return {};
}

Result<std::vector<std::string>> ControlClient::list(std::string* msg) noexcept {
  auto r = call("LIST", msg);
  if (!r) return r.error();
  std::vector<std::string> names;
  std::string_view p = *r;
  while (!p.empty()) {
    const std::size_t nl = std::min(p.find('\n'), p.size());
    if (nl) names.emplace_back(p.substr(0, nl));
    p.remove_prefix(std::min(nl + 1, p.size()));
  }
  return names;
}

Result<void> ControlClient::use(std::string_view store, std::string* msg) noexcept {
  auto r = call("USE " + std::string(store), msg);
  if (!r) return r.error();
  return {};
}

Result<std::string> control_request(const std::string& path, std::string_view request,
                                    std::string* msg) noexcept {
  auto c = ControlClient::connect(path, msg);
  if (!c) return c.error();
  return c->call(request, msg);
}

}  // namespace uzram
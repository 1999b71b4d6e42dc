// control/server.cc - ControlServer: binds the socket and serves requests from one
// background thread with poll(): non-blocking connections, one response in flight per
// connection, bounded request lines (control.h describes the protocol).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <thread>

#include "control/control.h"
#include "control/internal.h"
#include "util/unix_socket.h"
#include "uzram/store.h"

namespace uzram {

using control_internal::err_response;
using control_internal::sys_error;

struct ControlServer::State {
  // Immutable while the thread runs (set by start(), released by stop() after the join):
  std::string path;
  ControlTargets targets{std::vector<Store*>{}};
  ControlServerOptions options;
  int listen_fd = -1;
  int wake[2] = {-1, -1};  // stop() writes wake[1]; the loop polls wake[0]
  std::thread thread;

  // Protects: stopped, bound, and the teardown in stop(). Leaf; never held by the loop.
  std::mutex stop_mu;
  bool stopped = false;
  bool bound = false;  // the socket file is ours to remove

  // Owned by the server thread (stop() touches them only after the join):

  struct Conn {
    int fd;
    std::string in, out;
    ControlSelection selected;  // holds a USE'd store (a removed one stays valid)
    bool close_after_flush = false;
    bool eof = false;  // the client will send no more (then no POLLIN: it would spin)
  };
  std::vector<Conn> conns;

  void loop() noexcept;
  bool on_readable(Conn& c) noexcept;  // false: drop the connection
  bool on_writable(Conn& c) noexcept;
  void process(Conn& c) noexcept;
};

Result<std::unique_ptr<ControlServer>> ControlServer::start(
    const std::string& path, ControlTargets targets, std::string* msg,
    const ControlServerOptions& options) noexcept {
  const std::vector<std::shared_ptr<Store>> stores = targets.stores();
  for (std::size_t i = 0; i < stores.size(); i++) {
    for (std::size_t j = 0; j < i; j++) {
      if (stores[i]->name() == stores[j]->name()) {
        if (msg) *msg = "control: two stores named '" + stores[i]->name() + "'";
        return Errc::invalid_argument;
      }
    }
  }
  UnixListenOptions lo;
  lo.backlog = 16;
  lo.nonblocking = true;
  std::string why;
  auto listened = listen_unix_socket(path, &why, lo);  // secure directory, stale probe, 0600
  if (!listened) {
    if (msg) *msg = "control: " + why;
    const std::error_code e = listened.error();
    if (e == std::errc::device_or_resource_busy) return Errc::busy;  // a live server
    if (e == std::errc::file_exists) return Errc::invalid_argument;  // not a socket
    return e;
  }
  const int listen_fd = *listened;
  std::unique_ptr<ControlServer> server(new (std::nothrow) ControlServer);
  if (server) server->state_.reset(new (std::nothrow) State);
  if (!server || !server->state_) {
    ::close(listen_fd);
    ::unlink(path.c_str());
    if (msg) *msg = "control: out of memory";
    return Errc::no_memory;
  }
  State& s = *server->state_;
  s.listen_fd = listen_fd;  // closed, and the socket file removed, by stop() from here on
  s.bound = true;
  s.path = path;
  s.targets = std::move(targets);
  s.options = options;
  if (::pipe2(s.wake, O_CLOEXEC | O_NONBLOCK) != 0) return sys_error(msg, "control: pipe");
  try {
    s.thread = std::thread([&s] { s.loop(); });
  } catch (const std::system_error& e) {  // the destructor closes and removes the socket
    if (msg) *msg = std::string("control: cannot start the server thread: ") + e.what();
    return e.code();
  } catch (...) {
    if (msg) *msg = "control: cannot start the server thread: out of memory";
    return Errc::no_memory;
  }
  return server;
}

ControlServer::~ControlServer() { stop(); }

void ControlServer::stop() noexcept {
  if (!state_) return;
  State& s = *state_;
  std::lock_guard l(s.stop_mu);
  if (s.stopped) return;
  s.stopped = true;
  if (s.thread.joinable()) {
    const char b = 1;
    (void)!::write(s.wake[1], &b, 1);
    s.thread.join();
  }
  for (const State::Conn& c : s.conns) ::close(c.fd);
  s.conns.clear();
  for (int fd : {s.listen_fd, s.wake[0], s.wake[1]}) {
    if (fd >= 0) ::close(fd);
  }
  if (s.bound) ::unlink(s.path.c_str());
  s.bound = false;
  s.listen_fd = s.wake[0] = s.wake[1] = -1;
}

const std::string& ControlServer::path() const noexcept { return state_->path; }

void ControlServer::State::loop() noexcept {
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake[0], POLLIN, 0});
    fds.push_back({listen_fd, POLLIN, 0});
    for (const Conn& c : conns)
      fds.push_back({c.fd, static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents) return;  // stop()
    std::vector<bool> keep(conns.size(), true);
    for (std::size_t i = 0; i < conns.size(); i++) {
      const short ev = fds[i + 2].revents;
      if (!ev) continue;
      if (ev & POLLOUT) {
        keep[i] = on_writable(conns[i]);
      } else if (ev & (POLLIN | POLLHUP | POLLERR)) {
        keep[i] = on_readable(conns[i]);
      }
    }
    for (std::size_t i = conns.size(); i-- > 0;) {
      if (!keep[i]) {
        ::close(conns[i].fd);
        conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
    if (fds[1].revents & POLLIN) {
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) continue;
      if (conns.size() >= options.max_clients) {
        const std::string r = err_response(EBUSY, "too many control connections");
        (void)!::send(fd, r.data(), r.size(), MSG_NOSIGNAL);
        ::close(fd);
        continue;
      }
      try {
        conns.push_back(Conn{fd, {}, {}, {}, false, false});
      } catch (...) {  // out of memory: this client is not served
        ::close(fd);
      }
    }
  }
}

bool ControlServer::State::on_readable(Conn& c) noexcept {
  char buf[4096];
  const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n == 0) c.eof = true;  // the client's half-close: answer what it sent, then close
  c.in.append(buf, static_cast<std::size_t>(n));
  process(c);
  if (c.out.empty()) return !c.close_after_flush && !c.eof;
  return on_writable(c);
}

bool ControlServer::State::on_writable(Conn& c) noexcept {
  while (!c.out.empty()) {
    const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    c.out.erase(0, static_cast<std::size_t>(n));
  }
  if (c.close_after_flush) return false;
  process(c);  // pipelined requests waiting behind the response
  return !c.out.empty() || !c.eof;
}

// Answers the complete lines in c.in, as long as nothing is waiting to be sent (one
// response in flight per connection bounds the server's memory).
void ControlServer::State::process(Conn& c) noexcept {
  while (c.out.empty() && !c.close_after_flush) {
    const std::size_t nl = c.in.find('\n');
    if (nl == std::string::npos) {
      if (c.in.size() >= kControlMaxLine) {
        c.out = err_response(
            E2BIG, "request line longer than " + std::to_string(kControlMaxLine) + " bytes");
        c.close_after_flush = true;
      }
      return;
    }
    if (nl + 1 > kControlMaxLine) {
      c.out = err_response(
          E2BIG, "request line longer than " + std::to_string(kControlMaxLine) + " bytes");
      c.close_after_flush = true;
      return;
    }
    c.out = respond(targets, std::string_view(c.in).substr(0, nl), &c.selected);
    c.in.erase(0, nl + 1);
  }
}

}  // namespace uzram

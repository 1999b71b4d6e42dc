// nbd/server.cc - listening sockets, starting and stopping the server (its threads:
// acceptor.cc, connection.cc; their shared state: server_state.h). Nothing here throws; a
// connection that cannot get a thread or memory is refused alone (logged).
#include "nbd/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "nbd/server_state.h"
#include "nbd/store_backend.h"
#include "nbd/tls.h"
#include "nbd/transport.h"
#include "util/errno_text.h"
#include "util/unix_socket.h"

namespace uzram::nbd {

namespace {

bool loopback(const sockaddr* a) {
  if (a->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(a);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (a->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a);
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) != 0;
  }
  return false;
}

Result<int> listen_unix(const std::string& path, std::string* uri, std::string* msg) {
  // Private directory (0700, owner checked), stale-socket probe, socket born 0600.
  auto fd = listen_unix_socket(path, msg);
  if (!fd) return fd.error();
  std::error_code ec;
  const std::string abs = std::filesystem::absolute(path, ec).lexically_normal().string();
  *uri = "nbd+unix:///?socket=" + abs;
  return *fd;
}

Result<int> listen_tcp(const ServerOptions& o, std::string* uri, bool* is_loopback,
                       std::string* msg) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(o.bind.c_str(), o.port.c_str(), &hints, &res); rc != 0) {
    *msg = o.bind + ":" + o.port + ": " + ::gai_strerror(rc);
    return Errc::invalid_argument;
  }
  struct Free {
    addrinfo* r;
    ~Free() { ::freeaddrinfo(r); }
  } guard{res};
  const bool authenticated = o.tls.required && o.tls.context && o.tls.context->authenticates();
  if (!loopback(res->ai_addr) && !o.force_insecure && !authenticated) {
    *msg = o.bind +
           ": refusing a non-loopback address without TLS that authenticates clients "
           "(--tls=require with --tls-psk, or --tls-certificates with --tls-verify-peer; "
           "--force-insecure overrides)";
    return Errc::invalid_argument;
  }
  *is_loopback = loopback(res->ai_addr);
  const int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
  int one = 1;
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
    *msg = o.bind + ":" + o.port + ": " + errno_text(errno);
    if (fd >= 0) ::close(fd);
    return Errc::io_error;
  }
  sockaddr_storage ss{};
  socklen_t sl = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl);
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), sl, host, sizeof host, serv, sizeof serv,
                NI_NUMERICHOST | NI_NUMERICSERV);
  const std::string h = ss.ss_family == AF_INET6 ? "[" + std::string(host) + "]" : host;
  *uri = "nbd://" + h + ":" + serv + "/";
  return fd;
}

}  // namespace

Result<std::unique_ptr<Server>> Server::start(Backend& backend, const ServerOptions& options,
                                              std::string* msg) noexcept {
  std::unique_ptr<SingleExport> one(new (std::nothrow) SingleExport(backend));
  if (!one) {
    if (msg) *msg = "out of memory";
    return Errc::no_memory;
  }
  auto s = start(*one, options, msg);
  if (s) (*s)->state_->single = std::move(one);  // the acceptor reads only st.exports
  return s;
}

Result<std::unique_ptr<Server>> Server::start(Exports& exports, const ServerOptions& options,
                                              std::string* msg) noexcept {
  std::string ignored;
  if (msg == nullptr) msg = &ignored;
  std::unique_ptr<Server> s(new (std::nothrow) Server());
  if (!s || !(s->state_ = std::unique_ptr<State>(new (std::nothrow) State()))) {
    *msg = "out of memory";
    return Errc::no_memory;
  }
  State& st = *s->state_;
  st.exports = &exports;
  st.options = options;
  ServerOptions& o = st.options;
  o.session.stats = &st.stats;
  o.max_connections = std::max(1u, o.max_connections);
  o.max_negotiating = std::clamp(o.max_negotiating, 1u, o.max_connections);
  o.handshake_timeout = std::max(o.handshake_timeout, std::chrono::milliseconds(1));
  o.handshake_grace = std::min(o.handshake_grace, o.handshake_timeout);
  st.limits = {o.max_connections, o.max_negotiating, o.handshake_grace};
  st.tcp = !o.port.empty();
  auto fd = st.tcp ? listen_tcp(o, &st.uri, &st.tcp_loopback, msg)
                   : listen_unix(o.unix_path, &st.uri, msg);
  if (!fd) return fd.error();
  st.listen_fd = *fd;
  // A deep listen queue: while every negotiating slot is young, new clients wait there in
  // arrival order instead of being refused (Linux caps it at net.core.somaxconn).
  ::listen(st.listen_fd, SOMAXCONN);
  if (!st.tcp) st.unix_path = o.unix_path;
  // Waiting connections hold a descriptor each: leave room for the rest.
  rlimit rl{};
  st.max_waiting = std::max(1u, o.max_waiting);
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    const rlim_t other = 64 + 2 * rlim_t{o.max_connections + o.max_negotiating};
    st.max_waiting = static_cast<unsigned>(
        std::clamp<rlim_t>(rl.rlim_cur > other ? rl.rlim_cur - other : 0, 16, st.max_waiting));
  }
  st.waiting = new (std::nothrow) State::Waiting[st.max_waiting];
  st.pfds = new (std::nothrow) pollfd[2 + st.max_waiting];
  if (!st.waiting || !st.pfds || ::fcntl(st.listen_fd, F_SETFL, O_NONBLOCK) != 0 ||
      ::pipe2(st.wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    *msg = std::string("cannot set up the accept thread: ") + errno_text(errno ? errno : ENOMEM);
    ::close(st.listen_fd);
    if (!st.unix_path.empty()) ::unlink(st.unix_path.c_str());
    return Errc::io_error;
  }
  {
    MutexLock l(st.mu);  // no thread yet: for the analysis
    st.stopped = false;
  }
  if (const int e = st.acceptor.start([&st]() noexcept { st.accept_loop(); }); e != 0) {
    *msg = std::string("cannot start the accept thread: ") + errno_text(e);
    ::close(st.listen_fd);
    ::close(st.wake[0]);
    ::close(st.wake[1]);
    if (!st.unix_path.empty()) ::unlink(st.unix_path.c_str());
    MutexLock l(st.mu);
    st.stopped = true;
    return Errc::io_error;
  }
  return s;
}

Server::~Server() { stop(); }

void Server::stop() noexcept {
  if (!state_) return;
  State& st = *state_;
  {
    MutexLock l(st.mu);
    if (st.stopped) return;
    st.stopped = true;
  }
  st.nudge();
  st.acceptor.join();
  State::Conn* all = nullptr;
  {
    MutexLock l(st.mu);  // no connection is added once stopped is set
    for (State::Conn* c = st.head; c; c = c->next) {
      if (c->fd >= 0) ::shutdown(c->fd, SHUT_RDWR);
    }
    all = st.head;
    st.head = st.tail = nullptr;
  }
  while (all) {
    State::Conn* c = all;
    all = c->next;
    c->thread.join();
    delete c;
  }
  while (st.nwaiting > 0) st.drop_waiting(st.nwaiting - 1);
  ::close(st.listen_fd);
  ::close(st.wake[0]);
  ::close(st.wake[1]);
  if (!st.unix_path.empty()) ::unlink(st.unix_path.c_str());
}

const std::string& Server::uri() const noexcept { return state_->uri; }
bool Server::tcp_loopback() const noexcept { return state_->tcp && state_->tcp_loopback; }
bool Server::tcp_network() const noexcept { return state_->tcp && !state_->tcp_loopback; }

std::uint64_t Server::buffer_bytes() const noexcept {
  return state_->stats.snapshot().buffer_bytes;
}

StatsSnapshot Server::stats() const noexcept {
  StatsSnapshot s = state_->stats.snapshot();
  MutexLock l(state_->mu);
  s.negotiating = state_->counts.negotiating;
  s.transmitting = state_->counts.transmitting;
  return s;
}

}  // namespace uzram::nbd

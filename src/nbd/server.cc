// nbd/server.cc - listening sockets, the accept thread and the connection threads.
#include "nbd/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <list>
#include <mutex>
#include <thread>

#include "nbd/store_backend.h"
#include "nbd/transport.h"
#include "util/unix_socket.h"

namespace uzram::nbd {

struct Server::State {
  Backend* backend = nullptr;
  ServerOptions options;
  std::string uri;
  std::string unix_path;  // to remove on stop
  int listen_fd = -1;
  int wake[2] = {-1, -1};
  std::thread acceptor;
  struct Conn {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::mutex mu;
  std::list<std::unique_ptr<Conn>> conns;
  bool stopped = false;

  void log(const std::string& m) const {
    if (options.log) options.log(m);
  }
  void reap(bool all) {
    std::list<std::unique_ptr<Conn>> finished;
    {
      std::lock_guard l(mu);
      for (auto it = conns.begin(); it != conns.end();) {
        if (all || (*it)->done) {
          finished.push_back(std::move(*it));
          it = conns.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& c : finished) c->thread.join();
  }
  void accept_loop() {
    for (;;) {
      pollfd p[2] = {{listen_fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        log(std::string("poll: ") + std::strerror(errno));
        return;
      }
      if (p[1].revents) return;
      if (!(p[0].revents & POLLIN)) continue;
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      reap(false);
      std::lock_guard l(mu);
      if (stopped) {
        ::close(fd);
        return;
      }
      if (conns.size() >= options.max_connections) {
        log("too many connections; refusing one");
        ::close(fd);
        continue;
      }
      if (!options.port.empty()) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one);
      }
      auto c = std::make_unique<Conn>();
      c->fd = fd;
      Conn* raw = c.get();
      c->thread = std::thread([this, raw] { serve(raw); });
      conns.push_back(std::move(c));
    }
  }
  void serve(Conn* c) {
    const LogFn lg = [this](const std::string& m) { log(m); };
    Negotiated neg;
    std::unique_ptr<Transport> t;
    timeval tv{static_cast<time_t>(options.handshake_timeout_s), 0};
    ::setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const bool go = handshake(c->fd, t, *backend, options.tls, &neg, lg);
    tv = timeval{0, 0};  // transmission: idle clients may stay
    ::setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (go) serve_session(c->fd, *t, *backend, neg, lg, options.session);
    t.reset();  // TLS: close_notify before the socket closes
    {
      std::lock_guard l(mu);
      ::close(c->fd);
      c->fd = -1;
    }
    c->done = true;
  }
};

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

Result<int> listen_tcp(const ServerOptions& o, std::string* uri, std::string* msg) {
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
  if (!loopback(res->ai_addr) && !o.force_insecure && !o.tls.required) {
    *msg = o.bind + ": refusing a non-loopback address without TLS (--tls=require with "
           "--tls-psk or --tls-certificates; --force-insecure overrides)";
    return Errc::invalid_argument;
  }
  const int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
    *msg = o.bind + ":" + o.port + ": " + std::strerror(errno);
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
  std::string ignored;
  if (msg == nullptr) msg = &ignored;
  std::unique_ptr<Server> s(new Server());
  s->state_ = std::make_unique<State>();
  State& st = *s->state_;
  st.backend = &backend;
  st.options = options;
  auto fd = options.port.empty() ? listen_unix(options.unix_path, &st.uri, msg)
                                 : listen_tcp(options, &st.uri, msg);
  if (!fd) return fd.error();
  st.listen_fd = *fd;
  if (options.port.empty()) st.unix_path = options.unix_path;
  if (::pipe2(st.wake, O_CLOEXEC) != 0) {
    *msg = std::string("pipe: ") + std::strerror(errno);
    ::close(st.listen_fd);
    return Errc::io_error;
  }
  st.acceptor = std::thread([&st] { st.accept_loop(); });
  return s;
}

Server::~Server() { stop(); }

void Server::stop() noexcept {
  if (!state_) return;
  State& st = *state_;
  {
    std::lock_guard l(st.mu);
    if (st.stopped) return;
    st.stopped = true;
    for (auto& c : st.conns) {
      if (c->fd >= 0) ::shutdown(c->fd, SHUT_RDWR);
    }
  }
  const char b = 1;
  (void)!::write(st.wake[1], &b, 1);
  if (st.acceptor.joinable()) st.acceptor.join();
  {
    std::lock_guard l(st.mu);  // connections accepted meanwhile
    for (auto& c : st.conns) {
      if (c->fd >= 0) ::shutdown(c->fd, SHUT_RDWR);
    }
  }
  st.reap(true);
  ::close(st.listen_fd);
  ::close(st.wake[0]);
  ::close(st.wake[1]);
  if (!st.unix_path.empty()) ::unlink(st.unix_path.c_str());
}

const std::string& Server::uri() const noexcept { return state_->uri; }

}  // namespace uzram::nbd

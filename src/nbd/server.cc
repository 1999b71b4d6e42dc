// nbd/server.cc - listening sockets, the accept thread (admission, handshake deadlines)
// and the connection threads. Nothing here throws; a connection that cannot get a thread
// or memory is refused alone (logged).
#include "nbd/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "nbd/admission.h"
#include "nbd/store_backend.h"
#include "nbd/tls.h"
#include "nbd/transport.h"
#include "util/thread.h"

namespace uzram::nbd {
namespace {

// A connection's thread ends its handshake at the deadline itself (every read, write and
// TLS call is bounded by it); the accept thread shuts down, this much later, any socket
// whose thread has not, whatever it is blocked in.
constexpr auto kBackstop = std::chrono::milliseconds(200);

}  // namespace

struct Server::State {
  enum class Phase { negotiating, transmission, closing };
  struct Conn {
    Conn* prev = nullptr;  // State::conns, in accept order
    Conn* next = nullptr;
    std::uint64_t id = 0;
    int fd = -1;  // closed (and -1) only by the connection's thread, under mu
    Phase phase = Phase::negotiating;
    Clock::time_point born;
    Deadline deadline;  // of the handshake
    bool done = false;  // the thread is finishing: join it
    Thread thread;
  };

  Backend* backend = nullptr;
  ServerOptions options;
  AdmissionLimits limits;
  std::string uri;
  std::string unix_path;  // to remove on stop
  bool tcp = false, tcp_loopback = false;
  int listen_fd = -1;
  int wake[2] = {-1, -1};  // non-blocking: connection threads and stop() nudge the acceptor
  Thread acceptor;         // running: stopped is false

  // Protects the connection list, the counts, stopped, and each Conn's fd, phase and done.
  // A leaf: nothing is locked under it (the log sink does not block).
  std::mutex mu;
  Conn* head = nullptr;
  Conn* tail = nullptr;
  AdmissionState counts;
  bool stopped = true;  // until the acceptor runs
  std::uint64_t next_id = 1;
  Clock::time_point quiet_until;  // refusals logged at most once a second
  unsigned unlogged = 0;

  void nudge() noexcept {
    const char b = 1;
    (void)!::write(wake[1], &b, 1);  // full pipe: a nudge is already pending
  }
  void unlink(Conn* c) noexcept {
    (c->prev ? c->prev->next : head) = c->next;
    (c->next ? c->next->prev : tail) = c->prev;
    c->prev = c->next = nullptr;
  }
  void link(Conn* c) noexcept {
    c->prev = tail;
    (tail ? tail->next : head) = c;
    tail = c;
  }
  // A negotiating connection leaves its slot: evicted, timed out, or the server stopping.
  void close_negotiating_locked(Conn* c) noexcept {
    c->phase = Phase::closing;
    counts.negotiating--;
    if (c->fd >= 0) ::shutdown(c->fd, SHUT_RDWR);  // its thread's next or current I/O fails
  }
  Conn* oldest_negotiating_locked() const noexcept {
    for (Conn* c = head; c; c = c->next) {
      if (c->phase == Phase::negotiating) return c;
    }
    return nullptr;
  }
  void refresh_oldest_locked() noexcept {
    if (Conn* o = oldest_negotiating_locked()) counts.oldest_negotiating = o->born;
  }

  // ---- The accept thread ----
  void accept_loop() noexcept;
  // Closes handshakes past their deadline (+ kBackstop); unlinks finished connections
  // into *done. Returns when to sweep next (or none).
  Deadline sweep_locked(Clock::time_point now, Conn** done) noexcept;
  void admit(int fd, Clock::time_point now) noexcept;
  void refuse_locked(int fd, const char* why, Clock::time_point now) noexcept;

  // ---- A connection's thread ----
  void serve(Conn* c) noexcept;
  void finish(Conn* c) noexcept;
};

void Server::State::accept_loop() noexcept {
  Clock::time_point backoff_until{};  // after EMFILE and the like
  for (;;) {
    Conn* done = nullptr;
    AdmitDecision d{Admit::yes};
    Deadline next;
    const Clock::time_point now = Clock::now();
    {
      std::lock_guard l(mu);
      if (stopped) return;
      next = sweep_locked(now, &done);
      refresh_oldest_locked();
      d = admission(limits, counts, now);
    }
    while (done) {  // join outside the lock: a finishing thread takes mu
      Conn* c = done;
      done = c->next;
      c->thread.join();
      delete c;
    }
    const bool backoff = now < backoff_until;
    const bool listen = !backoff && d.what != Admit::wait;
    Clock::time_point wake_at = next.set() ? next.at() : Clock::time_point::max();
    if (d.what == Admit::wait && d.timed && d.until < wake_at) wake_at = d.until;
    if (backoff && backoff_until < wake_at) wake_at = backoff_until;
    const Deadline until = wake_at == Clock::time_point::max() ? Deadline() : Deadline(wake_at);
    pollfd p[2] = {{wake[0], POLLIN, 0}, {listen_fd, POLLIN, 0}};
    const int r = ::poll(p, listen ? 2 : 1, until.poll_ms());
    if (r < 0 && errno != EINTR) {
      logf(options.log, "poll: %s; no longer accepting", std::strerror(errno));
      return;
    }
    if (r <= 0) continue;
    if (p[0].revents) {
      char buf[64];
      while (::read(wake[0], buf, sizeof buf) > 0) {
      }
    }
    if (!listen || !(p[1].revents & POLLIN)) continue;
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        logf(options.log, "accept: %s; pausing 100 ms", std::strerror(errno));
        backoff_until = Clock::now() + std::chrono::milliseconds(100);
      }
      continue;
    }
    admit(fd, Clock::now());
  }
}

Deadline Server::State::sweep_locked(Clock::time_point now, Conn** done) noexcept {
  Deadline next;
  for (Conn* c = head; c;) {
    Conn* n = c->next;
    if (c->done) {
      unlink(c);
      counts.threads--;
      c->next = *done;
      *done = c;
    } else if (c->phase == Phase::negotiating) {
      if (c->deadline.at() + kBackstop <= now) {
        logf(options.log, "connection %llu: handshake not finished within %lld ms; closing",
             static_cast<unsigned long long>(c->id),
             static_cast<long long>(options.handshake_timeout.count()));
        close_negotiating_locked(c);
      } else if (!next.set() || c->deadline.at() + kBackstop < next.at()) {
        next = Deadline(c->deadline.at() + kBackstop);
      }
    }
    c = n;
  }
  return next;
}

void Server::State::refuse_locked(int fd, const char* why, Clock::time_point now) noexcept {
  ::close(fd);
  if (now < quiet_until) {
    unlogged++;
    return;
  }
  if (unlogged) {
    logf(options.log, "refused a connection: %s (and %u more in the last second)", why, unlogged);
  } else {
    logf(options.log, "refused a connection: %s", why);
  }
  unlogged = 0;
  quiet_until = now + std::chrono::seconds(1);
}

void Server::State::admit(int fd, Clock::time_point now) noexcept {
  std::lock_guard l(mu);
  if (stopped) {
    ::close(fd);
    return;
  }
  refresh_oldest_locked();
  // Since the poll, slots only freed up and time passed: the decision is no worse.
  const AdmitDecision d = admission(limits, counts, now);
  if (d.what == Admit::refuse)
    return refuse_locked(fd, "every connection slot is in transmission", now);
  if (d.what == Admit::wait) return refuse_locked(fd, "no connection slot", now);
  auto* c = new (std::nothrow) Conn;
  if (c == nullptr) return refuse_locked(fd, "out of memory", now);
  if (d.what == Admit::evict_oldest) {
    Conn* o = oldest_negotiating_locked();
    logf(options.log,
         "connection %llu: still negotiating after %lld ms, and a new client waits; closing it",
         static_cast<unsigned long long>(o->id),
         static_cast<long long>(
             std::chrono::duration_cast<std::chrono::milliseconds>(now - o->born).count()));
    close_negotiating_locked(o);
  }
  c->id = next_id++;
  c->fd = fd;
  c->born = now;
  c->deadline = Deadline(now + options.handshake_timeout);
  if (const int e = c->thread.start([this, c]() noexcept { serve(c); }); e != 0) {
    logf(options.log, "cannot start a thread for connection %llu: %s; refusing it",
         static_cast<unsigned long long>(c->id), std::strerror(e));
    ::close(fd);
    delete c;
    return;
  }
  link(c);
  counts.negotiating++;
  counts.threads++;
}

void Server::State::serve(Conn* c) noexcept {
  const int fd = c->fd;  // only this thread closes it
  const std::uint64_t id = c->id;
  State* self = this;
  const LogFn log = [self, id](std::string_view m) {  // fits std::function's inline buffer
    logf(self->options.log, "connection %llu: %.*s", static_cast<unsigned long long>(id),
         static_cast<int>(m.size()), m.data());
  };
  // The transports enforce the send timeout themselves (poll between two bytes of
  // progress); SO_SNDTIMEO bounds any blocking send as well.
  timeval tv{static_cast<time_t>(options.send_timeout.count() / 1000),
             static_cast<suseconds_t>(options.send_timeout.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (tcp) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  }
  std::unique_ptr<Transport> t;
  Negotiated neg;
  const bool claimed = handshake(fd, t, *backend, options.tls, c->deadline, &neg, log);
  if (t) t->set_send_timeout(options.send_timeout);
  bool go = claimed;
  if (go) {
    std::lock_guard l(mu);
    go = c->phase == Phase::negotiating;  // not evicted, timed out or stopped meanwhile
    if (go) {
      c->phase = Phase::transmission;
      counts.negotiating--;
      counts.transmitting++;
    }
  }
  if (go) {
    nudge();  // a negotiating slot is free
    t->set_deadline(Deadline());
    serve_session(fd, *t, *backend, neg, log, options.session);
  }
  if (claimed) backend->close_user();
  t.reset();  // TLS: close_notify (bounded) if the session is healthy
  finish(c);
}

void Server::State::finish(Conn* c) noexcept {
  {
    std::lock_guard l(mu);
    ::close(c->fd);
    c->fd = -1;
    if (c->phase == Phase::negotiating) counts.negotiating--;
    if (c->phase == Phase::transmission) counts.transmitting--;
    c->phase = Phase::closing;
    c->done = true;
  }
  nudge();
}

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
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) {
    *msg = path + ": socket path too long";
    return Errc::invalid_argument;
  }
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    std::filesystem::create_directories(parent, ec);
    ::chmod(parent.c_str(), 0700);
  }
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *msg = path + ": exists and is not a socket";
      return Errc::invalid_argument;
    }
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(probe);
    if (live) {
      *msg = path + ": another server is listening there";
      return Errc::busy;
    }
    ::unlink(path.c_str());
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *msg = std::string("socket: ") + std::strerror(errno);
    return Errc::io_error;
  }
  const mode_t old = ::umask(077);  // the socket is born 0600
  const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  ::umask(old);
  if (rc != 0 || ::chmod(path.c_str(), 0600) != 0 || ::listen(fd, 64) != 0) {
    *msg = path + ": " + std::strerror(errno);
    ::close(fd);
    return Errc::io_error;
  }
  const std::string abs = std::filesystem::absolute(path, ec).lexically_normal().string();
  *uri = "nbd+unix:///?socket=" + abs;
  return fd;
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
  std::unique_ptr<Server> s(new (std::nothrow) Server());
  if (!s || !(s->state_ = std::unique_ptr<State>(new (std::nothrow) State()))) {
    *msg = "out of memory";
    return Errc::no_memory;
  }
  State& st = *s->state_;
  st.backend = &backend;
  st.options = options;
  ServerOptions& o = st.options;
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
  if (::pipe2(st.wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    *msg = std::string("pipe: ") + std::strerror(errno);
    ::close(st.listen_fd);
    return Errc::io_error;
  }
  st.stopped = false;
  if (const int e = st.acceptor.start([&st]() noexcept { st.accept_loop(); }); e != 0) {
    *msg = std::string("cannot start the accept thread: ") + std::strerror(e);
    ::close(st.listen_fd);
    ::close(st.wake[0]);
    ::close(st.wake[1]);
    if (!st.unix_path.empty()) ::unlink(st.unix_path.c_str());
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
    std::lock_guard l(st.mu);
    if (st.stopped) return;
    st.stopped = true;
  }
  st.nudge();
  st.acceptor.join();
  State::Conn* all = nullptr;
  {
    std::lock_guard l(st.mu);  // no connection is added once stopped is set
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
  ::close(st.listen_fd);
  ::close(st.wake[0]);
  ::close(st.wake[1]);
  if (!st.unix_path.empty()) ::unlink(st.unix_path.c_str());
}

const std::string& Server::uri() const noexcept { return state_->uri; }
bool Server::tcp_loopback() const noexcept { return state_->tcp && state_->tcp_loopback; }
bool Server::tcp_network() const noexcept { return state_->tcp && !state_->tcp_loopback; }

}  // namespace uzram::nbd

// nbd/connection.cc - a connection's thread: the rest of the handshake (its first bytes
// were collected by the accept thread), then the session; the store is claimed for
// transmission and released after it.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "nbd/handshake.h"
#include "nbd/log.h"
#include "nbd/server_state.h"
#include "nbd/session.h"
#include "nbd/store_backend.h"
#include "nbd/transport.h"

namespace uzram::nbd {
namespace {

// What a Unix connection's send buffer is raised to. A Unix stream socket's replies queue
// against the sender's buffer alone (the peer's receive buffer plays no part), 208 KiB by
// default: a 256 KiB READ reply then blocked its worker in sendmsg, holding the send lock,
// until the client had read most of it, and the other workers, their units decoded, waited
// for the lock. Reads ran at about one CPU's decoding speed whatever the connections and
// workers (docs/benchmarks.md#nbd-reads-and-the-unix-send-buffer: 1.3-1.4x the read rate
// with 4 MiB, on 2 vCPUs). Memory: the kernel's, and only while replies wait for the
// client; a connection's requests in flight are bounded apart (64 MiB).
constexpr int kUnixSendBuffer = 4 << 20;

// Raises a Unix socket's send buffer: SO_SNDBUFFORCE where the server may (CAP_NET_ADMIN),
// else SO_SNDBUF, which the kernel caps at net.core.wmem_max. Returns the buffer's size as
// the kernel reports it (twice what it holds of data: it counts its own bookkeeping), or 0
// for a socket that is not a Unix one: TCP keeps the kernel's autotuning, which an
// explicit SO_SNDBUF would turn off.
int widen_unix_send_buffer(int fd) noexcept {
  int domain = 0;
  socklen_t len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) return 0;
  int size = kUnixSendBuffer;
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);  // best effort
  }
  size = 0;
  len = sizeof size;
  ::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &len);
  return size;
}

}  // namespace

UnixSendBuffer probe_unix_send_buffer() noexcept {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return {};
  const UnixSendBuffer b{widen_unix_send_buffer(fds[0]) / 2, kUnixSendBuffer};
  ::close(fds[0]);
  ::close(fds[1]);
  return b;
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
  widen_unix_send_buffer(fd);
  if (tcp) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  }
  std::unique_ptr<Transport> t;
  Handshaken h;  // holds the export's backend (and so its store) until the session ends
  const bool claimed = handshake(fd, t, *exports, options.tls, c->deadline, &h, log, true,
                                 std::span<const std::uint8_t>(c->preread), &stats);
  if (t) t->set_send_timeout(options.send_timeout);
  bool go = claimed;
  if (go) {
    MutexLock l(mu);
    go = c->phase == Phase::negotiating;  // not evicted, timed out or stopped meanwhile
    if (go) {
      c->phase = Phase::transmission;
      counts.negotiating--;
      counts.transmitting++;
    }
  }
  if (go) {
    nudge();  // a negotiating slot is free
    stats.session_started();
    t->set_deadline(Deadline());
    serve_session(fd, *t, *h.backend, h.neg, log, options.session);
  }
  if (claimed) h.backend->close_user();
  t.reset();  // TLS: close_notify (bounded) if the session is healthy
  finish(c);
}

void Server::State::finish(Conn* c) noexcept {
  {
    MutexLock l(mu);
    ::close(c->fd);
    c->fd = -1;
    if (c->phase == Phase::negotiating) counts.negotiating--;
    if (c->phase == Phase::transmission) counts.transmitting--;
    c->phase = Phase::closing;
    c->done = true;
  }
  nudge();
}

}  // namespace uzram::nbd

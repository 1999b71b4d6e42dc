// nbd/acceptor.cc - the accept thread: accepts and greets connections, collects each
// client's first bytes without a thread (the waiting stage), gives threads to those that
// sent them as the admission policy allows (nbd/admission.h), and enforces the handshake
// deadline on both stages.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "nbd/log.h"
#include "nbd/protocol.h"
#include "nbd/server_state.h"
#include "util/errno_text.h"

namespace uzram::nbd {
namespace {

long long ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

void earliest(Deadline* d, Clock::time_point t) {
  if (!d->set() || t < d->at()) *d = Deadline(t);
}

}  // namespace

void Server::State::link(Conn* c) noexcept {
  c->prev = tail;
  (tail ? tail->next : head) = c;
  tail = c;
}

void Server::State::unlink(Conn* c) noexcept {
  (c->prev ? c->prev->next : head) = c->next;
  (c->next ? c->next->prev : tail) = c->prev;
  c->prev = c->next = nullptr;
}

// A negotiating connection leaves its slot: evicted, timed out, or the server stopping.
void Server::State::close_negotiating_locked(Conn* c) noexcept {
  c->phase = Phase::closing;
  counts.negotiating--;
  if (c->fd >= 0) ::shutdown(c->fd, SHUT_RDWR);  // its thread's next or current I/O fails
}

Server::State::Conn* Server::State::oldest_negotiating_locked() const noexcept {
  for (Conn* c = head; c; c = c->next) {
    if (c->phase == Phase::negotiating) return c;
  }
  return nullptr;
}

void Server::State::log_closed_locked(Clock::time_point now, const char* what) noexcept {
  if (now < quiet_until) {
    unlogged++;
    return;
  }
  if (unlogged) {
    logf(options.log, "%s (and %u more closed in the last second)", what, unlogged);
  } else {
    logf(options.log, "%s", what);
  }
  unlogged = 0;
  quiet_until = now + std::chrono::seconds(1);
}

void Server::State::accept_loop() noexcept {
  Clock::time_point backoff_until{};  // after EMFILE and the like
  pollfd* p = pfds;                   // [0] wake, [1] listen, [2 + i] waiting[i]
  for (;;) {
    Clock::time_point now = Clock::now();
    Conn* done = nullptr;
    Deadline next;
    {
      std::lock_guard l(mu);
      if (stopped) return;
      next = sweep_locked(now, &done);
      promote_locked(now, &next);
    }
    while (done) {  // join outside the lock: a finishing thread takes mu
      Conn* c = done;
      done = c->next;
      c->thread.join();
      delete c;
    }
    // Waiting connections past their deadline; room for new ones?
    for (unsigned i = nwaiting; i-- > 0;) {
      if (waiting[i].deadline.at() <= now) {
        {
          std::lock_guard l(mu);
          log_closed_locked(now,
                            "a connection sent too little before its handshake deadline; closed");
        }
        drop_waiting(i);
      } else {
        earliest(&next, waiting[i].deadline.at());
      }
    }
    bool room = nwaiting < max_waiting;
    if (!room) {  // full: the oldest not yet ready may go once it had its grace
      for (unsigned i = 0; i < nwaiting; i++) {
        const Waiting& w = waiting[i];
        if (w.n == kPromoteBytes) continue;
        if (now - w.born >= options.handshake_grace) {
          room = true;
          break;
        }
        earliest(&next, w.born + options.handshake_grace);
      }
    }
    const bool listen = room && now >= backoff_until;
    if (!listen && now < backoff_until) earliest(&next, backoff_until);
    p[0] = {wake[0], POLLIN, 0};
    p[1] = {listen ? listen_fd : -1, POLLIN, 0};
    for (unsigned i = 0; i < nwaiting; i++) {
      p[2 + i] = {waiting[i].n == kPromoteBytes ? -1 : waiting[i].fd, POLLIN, 0};
    }
    const int r = ::poll(p, 2 + nwaiting, next.poll_ms());
    if (r < 0 && errno != EINTR) {
      logf(options.log, "poll: %s; no longer accepting", errno_text(errno));
      return;
    }
    if (r <= 0) continue;
    if (p[0].revents) {
      char buf[64];
      while (::read(wake[0], buf, sizeof buf) > 0) {
      }
    }
    for (unsigned i = nwaiting; i-- > 0;) {  // descending: drop_waiting moves the last to i
      if (p[2 + i].fd >= 0 && p[2 + i].revents) read_waiting(waiting[i], p[2 + i].revents);
      if (waiting[i].fd < 0) drop_waiting(i);
    }
    if (listen && (p[1].revents & POLLIN)) {
      now = Clock::now();
      if (const int e = accept_new(now); e != 0) {
        logf(options.log, "accept: %s; pausing 100 ms", errno_text(e));
        backoff_until = now + std::chrono::milliseconds(100);
      }
    }
  }
}

void Server::State::read_waiting(Waiting& w, short revents) noexcept {
  for (;;) {
    const ssize_t r = ::recv(w.fd, w.got + w.n, kPromoteBytes - w.n, MSG_DONTWAIT);
    if (r > 0) {
      w.n += static_cast<std::size_t>(r);
      // Garbage is refused at once, as the handshake would: no thread for it.
      const char* bad = nullptr;
      if (w.n >= 4 && (get32(w.got) & ~(kClientFixedNewstyle | kClientNoZeroes)) != 0) {
        bad = "unknown client flags";
      } else if (w.n >= 12 && get64(w.got + 4) != kIHaveOpt) {
        bad = "bad option magic";
      }
      if (bad != nullptr) {
        logf(options.log, "connection %llu: %s; closing", static_cast<unsigned long long>(w.id),
             bad);
        ::close(w.fd);
        w.fd = -1;
      }
      return;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN && !(revents & (POLLHUP | POLLERR))) return;
    ::close(w.fd);  // the client left (or the socket failed) before it got a thread
    w.fd = -1;
    return;
  }
}

void Server::State::drop_waiting(unsigned i) noexcept {
  if (waiting[i].fd >= 0) ::close(waiting[i].fd);
  waiting[i] = waiting[--nwaiting];
  waiting[nwaiting] = Waiting{};
}

int Server::State::accept_new(Clock::time_point now) noexcept {
  for (int burst = 0; burst < 256; burst++) {
    if (nwaiting == max_waiting) {  // evict the oldest not ready, if it had its grace
      unsigned oldest = max_waiting;
      for (unsigned i = 0; i < nwaiting; i++) {
        if (waiting[i].n < kPromoteBytes &&
            (oldest == max_waiting || waiting[i].born < waiting[oldest].born)) {
          oldest = i;
        }
      }
      if (oldest == max_waiting || now - waiting[oldest].born < options.handshake_grace) return 0;
      {
        std::lock_guard l(mu);
        log_closed_locked(now, "a connection sent too little while others waited; closed");
      }
      drop_waiting(oldest);
    }
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      const bool starved =
          errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM;
      return starved ? errno : 0;  // else EAGAIN: the queue is empty
    }
    stats.accepted();
    if (!send_greeting(fd)) {
      ::close(fd);
      continue;
    }
    Waiting& w = waiting[nwaiting++];
    w = Waiting{};
    w.fd = fd;
    w.id = next_id++;
    w.born = now;
    w.deadline = Deadline(now + options.handshake_timeout);
  }
  return 0;
}

void Server::State::promote_locked(Clock::time_point now, Deadline* next) noexcept {
  for (;;) {
    unsigned pick = nwaiting;  // the oldest ready one
    for (unsigned i = 0; i < nwaiting; i++) {
      if (waiting[i].n == kPromoteBytes &&
          (pick == nwaiting || waiting[i].born < waiting[pick].born))
        pick = i;
    }
    if (pick == nwaiting) return;
    if (Conn* o = oldest_negotiating_locked()) counts.oldest_negotiating = o->born;
    const AdmitDecision d = admission(limits, counts, now);
    if (d.what == Admit::wait) {
      if (d.timed) earliest(next, d.until);
      return;
    }
    if (d.what == Admit::refuse) {
      log_closed_locked(now, "refused a connection: every connection slot is in transmission");
    } else {
      if (d.what == Admit::evict_oldest) {
        Conn* o = oldest_negotiating_locked();
        logf(options.log,
             "connection %llu: still negotiating after %lld ms, and a new client waits; closing it",
             static_cast<unsigned long long>(o->id), ms_between(o->born, now));
        close_negotiating_locked(o);
      }
      if (start_thread_locked(waiting[pick], now)) waiting[pick].fd = -1;  // the thread owns it now
    }
    drop_waiting(pick);
  }
}

bool Server::State::start_thread_locked(Waiting& w, Clock::time_point now) noexcept {
  auto* c = new (std::nothrow) Conn;
  if (c == nullptr) {
    logf(options.log, "out of memory for connection %llu; closing it",
         static_cast<unsigned long long>(w.id));
    return false;
  }
  c->id = w.id;
  c->fd = w.fd;
  c->born = now;
  c->deadline = w.deadline;
  std::memcpy(c->preread, w.got, sizeof c->preread);
  if (const int e = c->thread.start([this, c]() noexcept { serve(c); }); e != 0) {
    logf(options.log, "cannot start a thread for connection %llu: %s; closing it",
         static_cast<unsigned long long>(c->id), errno_text(e));
    delete c;
    return false;
  }
  link(c);
  counts.negotiating++;
  counts.threads++;
  return true;
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
      } else {
        earliest(&next, c->deadline.at() + kBackstop);
      }
    }
    c = n;
  }
  return next;
}

}  // namespace uzram::nbd

// store/nbd_io_thread.cc - the remote backing tier's I/O thread: requests issued on the
// libnbd handle with deadlines, completions, the connection dropped and reopened with
// backoff, the marker checked, trims batched, reader links opened (store/nbd_tier.h).
#include <unistd.h>

#include <algorithm>

#include "store/libnbd_api.h"
#include "store/nbd_tier.h"
#include "uzram/store.h"

namespace uzram::nbdtier {

void NbdTier::run() noexcept {
  for (;;) {
    Req* fresh;
    bool stop;
    {
      MutexLock l(mu_);
      fresh = queue_;
      queue_ = nullptr;
      queue_tail_ = &queue_;
      stop = stop_;
    }
    for (Req* r = fresh; r;) {
      Req* next = r->next;
      if (stop) {
        complete(r, ECANCELED);
      } else {
        start(r);
      }
      r = next;
    }
    if (stop) break;
    step_link(Clock::now());
    open_links(Clock::now());
    issue_trims(Clock::now());
    finish_drains(Clock::now());
    bool woke = false;
    nbdlink::poll_once(link_ == Link::down ? nullptr : h_, wake_fd_, next_timeout_ms(Clock::now()),
                       &woke);
    if (woke) {
      std::uint64_t v;
      (void)!::read(wake_fd_, &v, sizeof v);
    }
  }
  drop(ECANCELED);
  finish_drains(Clock::now());
}

void NbdTier::start(Req* r) noexcept {
  if (r->op == Req::kDrain) {
    r->next = drains_;
    drains_ = r;
    trim_at_ = Clock::now();  // trim what waits now
    return;
  }
  if (link_ != Link::up) return complete(r, ENOTCONN);
  BackingAlloc* a = alloc_.load(std::memory_order_acquire);
  if (r->check_gen && a && r->gen != a->gen()) return complete(r, EIO);  // lost since
  if (r->op == Req::kFlush) {
    if (r->session != session_.load(std::memory_order_relaxed)) return complete(r, EIO);
    if (!can_flush_.load(std::memory_order_relaxed)) return complete(r, 0);
  }
  // In flight before the command is issued: its callback unlinks it.
  r->prev = nullptr;
  r->next = inflight_;
  if (inflight_) inflight_->prev = r;
  inflight_ = r;
  const nbd_completion_callback cb = {
      .callback = &NbdTier::on_done, .user_data = r, .free = nullptr};
  std::int64_t c = -1;
  switch (r->op) {
    case Req::kRead: c = libnbd().nbd_aio_pread(h_, r->buf, r->len, r->off, cb, 0); break;
    case Req::kWrite:
      c = libnbd().nbd_aio_pwrite(h_, r->buf, r->len, r->off, cb,
                                  fua_.load(std::memory_order_relaxed) ? LIBNBD_CMD_FLAG_FUA : 0);
      break;
    case Req::kFlush: c = libnbd().nbd_aio_flush(h_, cb, 0); break;
    case Req::kTrim: c = libnbd().nbd_aio_trim(h_, r->len, r->off, cb, 0); break;
    case Req::kDrain: break;
  }
  if (c == -1) {  // not issued: libnbd will not call the callback
    const int e = libnbd().nbd_get_errno();
    unlink(r);
    complete(r, e ? e : EIO);
  }
}

// libnbd's completion callback, on the I/O thread (inside a notify or nbd_close).
int NbdTier::on_done(void* user, int* error) noexcept {
  auto* r = static_cast<Req*>(user);
  NbdTier* t = r->tier;
  t->unlink(r);
  t->complete(r, *error);
  return 1;  // retire the command
}

void NbdTier::unlink(Req* r) noexcept {
  if (r->prev) {
    r->prev->next = r->next;
  } else {
    inflight_ = r->next;
  }
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = nullptr;
}

void NbdTier::complete(Req* r, int err) noexcept {
  if (r->internal) {  // a trim: its blocks are free, trimmed or not
    if (BackingAlloc* a = alloc_.load(std::memory_order_acquire)) {
      a->trim_done(r->off / kBlockSize, static_cast<std::uint32_t>(r->len / kBlockSize));
    }
    if (err == 0) trimmed_.fetch_add(r->len / kBlockSize, std::memory_order_relaxed);
    trims_inflight_--;
    r->next = trim_free_;
    trim_free_ = r;
    return;
  }
  MutexLock l(done_mu_);  // the last touch of r (see done_mu_)
  r->err = err;
  if (--*r->remaining == 0) done_cv_.notify_all();
}

void NbdTier::step_link(Clock::time_point now) noexcept {
  switch (link_) {
    case Link::up: {
      if (libnbd().nbd_aio_is_dead(h_) == 1 || libnbd().nbd_aio_is_closed(h_) == 1)
        return drop(ECONNRESET);
      for (Req* r = inflight_; r; r = r->next) {
        if (now > r->deadline) return drop(ETIMEDOUT);
      }
      return;
    }
    case Link::connecting:
      if (libnbd().nbd_aio_is_ready(h_) == 1) {
        if (!finish_connect()) drop(ECONNRESET);
      } else if (libnbd().nbd_aio_is_dead(h_) == 1 || libnbd().nbd_aio_is_closed(h_) == 1 ||
                 now > connect_deadline_) {
        drop(ECONNREFUSED);
      }
      return;
    case Link::down:
      if (now < retry_at_) return;
      h_ = nbdlink::start_connect(uri_, nullptr);
      if (!h_) return drop(ECONNREFUSED);
      link_ = Link::connecting;
      connect_deadline_ = now + timeout();
      return;
  }
}

// Connected again: check the export and the marker before taking requests. Synchronous,
// with the deadline; queued requests wait (new ones fail fast: up_ is still false).
bool NbdTier::finish_connect() noexcept {
  const auto deadline = Clock::now() + timeout();
  nbdlink::Info info;
  if (nbdlink::query(h_, &info, nullptr) != 0 || info.read_only) return false;
  alignas(4096) unsigned char block[kBlockSize];
  if (nbdlink::pread(h_, block, kBlockSize, 0, deadline) != 0) return false;
  if (!nbdlink::has_marker(block, id_) || info.size < size_blocks_ * kBlockSize) {
    // A new or restarted remote: whatever it was given is gone.
    if (BackingAlloc* a = alloc_.load(std::memory_order_acquire)) a->mark_lost();
    nbdlink::make_marker(block, id_);
    if (nbdlink::pwrite(h_, block, kBlockSize, 0, deadline) != 0) return false;
    if (info.can_flush && nbdlink::flush(h_, deadline) != 0) return false;
  }
  can_flush_.store(info.can_flush, std::memory_order_relaxed);
  fua_.store(info.can_flush && info.can_fua, std::memory_order_relaxed);
  links_dirty_.store(true, std::memory_order_relaxed);  // theirs are of the old session
  links_at_ = {};
  link_ = Link::up;
  session_.fetch_add(1, std::memory_order_release);  // pairs: session()
  up_.store(true, std::memory_order_relaxed);
  reconnects_.fetch_add(1, std::memory_order_relaxed);
  backoff_ = kMinBackoff;
  return true;
}

// The connection is gone (or never came): close the handle first, so that libnbd touches
// no request's buffer any more, then fail what was in flight; retry after the backoff.
void NbdTier::drop(int err) noexcept {
  up_.store(false, std::memory_order_relaxed);
  if (h_) libnbd().nbd_close(h_);  // may complete requests through their callbacks
  h_ = nullptr;
  while (inflight_) {
    Req* r = inflight_;
    unlink(r);
    complete(r, err);
  }
  link_ = Link::down;
  retry_at_ = Clock::now() + backoff_;
  backoff_ = std::min<Clock::duration>(backoff_ * 2, kMaxBackoff);
}

void NbdTier::issue_trims(Clock::time_point now) noexcept {
  BackingAlloc* a = alloc_.load(std::memory_order_acquire);
  if (!a || link_ != Link::up || !info_.can_trim) return;
  const std::uint64_t waiting = a->trims_waiting();
  if (waiting == 0) {
    trim_at_ = {};
    return;
  }
  if (trim_at_ == Clock::time_point{}) trim_at_ = now + kTrimDelay;
  if (waiting < kTrimBatch && now < trim_at_) return;
  trim_at_ = {};
  std::uint64_t first[kMaxTrims];
  std::uint32_t count[kMaxTrims];
  const std::size_t runs = a->take_trims(first, count, kMaxTrims - trims_inflight_);
  for (std::size_t i = 0; i < runs; i++) {
    Req* r = trim_free_;
    trim_free_ = r->next;
    *r = Req{};
    r->op = Req::kTrim;
    r->internal = true;
    r->tier = this;
    r->off = first[i] * kBlockSize;
    r->len = std::uint64_t{count[i]} * kBlockSize;
    r->deadline = now + timeout();
    trims_inflight_++;
    start(r);
  }
}

void NbdTier::finish_drains(Clock::time_point now) noexcept {
  if (!drains_) return;
  BackingAlloc* a = alloc_.load(std::memory_order_acquire);
  const bool waiting = a && a->trims_waiting() > 0 && trims_inflight_ < kMaxTrims;
  if (link_ == Link::up && (trims_inflight_ > 0 || waiting) && now < drains_->deadline) return;
  while (drains_) {
    Req* r = drains_;
    drains_ = r->next;
    complete(r, 0);
  }
}

// (Re)opens a direct link that is missing or of an older session, when the main link is
// up: one per call, so the thread serves its queue and deadlines in between. Synchronous,
// with a deadline of at most kLinkConnect (a local socket takes well under a millisecond),
// so a remote that hangs right after a reconnect delays the thread's other work by at
// most that; a link in use is left for later. After a failure, waits a second.
void NbdTier::open_links(Clock::time_point now) noexcept {
  links_more_ = false;
  if (!info_.multi_conn || link_ != Link::up || now < links_at_ ||
      !links_dirty_.exchange(false, std::memory_order_relaxed)) {
    return;
  }
  const std::uint64_t session = session_.load(std::memory_order_relaxed);
  for (DirectLink& rl : links_) {
    if (!rl.mu.try_lock()) {
      links_dirty_.store(true, std::memory_order_relaxed);  // try again
      continue;
    }
    const bool fresh = !(rl.h && rl.session == session);
    const bool ok = reopen_link(rl, session);
    rl.mu.unlock();
    if (!ok) {
      links_at_ = Clock::now() + milliseconds(1000);
      links_dirty_.store(true, std::memory_order_relaxed);
      return;
    }
    if (fresh) {  // the next one on the next turn of the loop, at once
      links_dirty_.store(true, std::memory_order_relaxed);
      links_more_ = true;
      return;
    }
  }
}

// A link of the current session, opened if it is not (false: it could not be).
bool NbdTier::reopen_link(DirectLink& rl, std::uint64_t session) noexcept {
  if (rl.h && rl.session == session) return true;
  if (rl.h) libnbd().nbd_close(rl.h);
  rl.h = nbdlink::start_connect(uri_, nullptr);
  const auto deadline = Clock::now() + std::min<Clock::duration>(timeout(), kLinkConnect);
  if (rl.h && nbdlink::wait_ready(rl.h, deadline, nullptr) != 0) {
    libnbd().nbd_close(rl.h);
    rl.h = nullptr;
  }
  if (!rl.h) return false;
  rl.session = session;
  return true;
}

int NbdTier::next_timeout_ms(Clock::time_point now) const noexcept {
  Clock::time_point t = now + milliseconds(1000);
  if (link_ == Link::up) {
    for (const Req* r = inflight_; r; r = r->next) t = std::min(t, r->deadline);
  }
  if (link_ == Link::connecting) t = std::min(t, connect_deadline_);
  if (link_ == Link::down) t = std::min(t, retry_at_);
  if (trim_at_ != Clock::time_point{}) t = std::min(t, trim_at_);
  if (drains_) t = std::min(t, drains_->deadline);
  if (links_more_) t = now;  // more direct links to open
  const auto ms = std::chrono::ceil<milliseconds>(t - now).count();
  return static_cast<int>(std::max<std::int64_t>(ms, 0));
}

}  // namespace uzram::nbdtier

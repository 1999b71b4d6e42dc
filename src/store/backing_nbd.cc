// store/backing_nbd.cc - the remote backing tier: NbdTier, its I/O thread, deadlines,
// reconnection, the marker and batched trims (store/backing_nbd.h).
#include "store/backing_nbd.h"

#include <libnbd.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <new>

#include "store/backing_alloc.h"
#include "store/nbd_link.h"
#include "util/thread.h"
#include "uzram/store.h"

namespace uzram {
namespace {

using Clock = nbdlink::Clock;
using std::chrono::milliseconds;

constexpr auto kMinBackoff = milliseconds(50);
constexpr auto kMaxBackoff = milliseconds(2000);
constexpr auto kTrimDelay = milliseconds(50);  // a freed block waits at most this for its trim
constexpr std::uint64_t kTrimBatch = 256;      // ... or until this many wait
constexpr unsigned kMaxTrims = 64;             // trim commands in flight
constexpr std::size_t kChunk = 64;             // requests queued per submission

class NbdTier;

// One request. Submitters own it (on their stack) until it completes; the I/O thread
// owns the trims (internal).
struct Req {
  enum Op : std::uint8_t { kRead, kWrite, kFlush, kTrim, kDrain };
  Op op = kRead;
  bool check_gen = false;  // reads and writes: refused if the loss generation moved
  bool internal = false;   // a trim of the I/O thread
  void* buf = nullptr;
  std::uint64_t len = 0, off = 0;
  std::uint64_t gen = 0;      // loss generation the caller saw
  std::uint64_t session = 0;  // flush: the connection its writes completed on
  Clock::time_point deadline;
  int err = 0;
  unsigned* remaining = nullptr;  // the submitter's count (NbdTier::done_mu_)
  NbdTier* tier = nullptr;
  Req* prev = nullptr;
  Req* next = nullptr;
};

class NbdTier final : public BackingTier {
 public:
  NbdTier(std::string uri, const std::atomic<std::uint32_t>& timeout_ms) noexcept
      : uri_(std::move(uri)), timeout_ms_(timeout_ms) {}
  ~NbdTier() override;
  NbdTier(const NbdTier&) = delete;
  NbdTier& operator=(const NbdTier&) = delete;

  Result<void> open(std::string* msg) noexcept;

  void write(TierWrite* ops, std::size_t n, std::uint64_t gen) noexcept override;
  int read(void* buf, std::size_t len, std::uint64_t off, std::uint64_t gen) noexcept override;
  std::uint64_t session() const noexcept override {
    return session_.load(std::memory_order_acquire);  // pairs: the thread's connect
  }
  int sync(std::uint64_t session) noexcept override;
  bool volatile_writes() const noexcept override {
    return can_flush_.load(std::memory_order_relaxed);
  }
  std::size_t read_align() const noexcept override { return info_.min_block; }
  bool trims() const noexcept override { return info_.can_trim; }
  bool tracks_loss() const noexcept override { return true; }
  void attach(BackingAlloc* a) noexcept override { alloc_.store(a, std::memory_order_release); }
  void drain_trims() noexcept override;
  bool connected() const noexcept override { return up_.load(std::memory_order_relaxed); }
  std::uint64_t reconnects() const noexcept override {
    return reconnects_.load(std::memory_order_relaxed);
  }
  std::uint64_t trimmed() const noexcept override {
    return trimmed_.load(std::memory_order_relaxed);
  }

 private:
  Clock::duration timeout() const noexcept {
    return milliseconds(timeout_ms_.load(std::memory_order_relaxed));
  }
  void submit_wait(Req* reqs, std::size_t n) noexcept;
  void wake() noexcept {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  Result<void> fail(std::string* msg, std::error_code e, const std::string& text) noexcept;

  // The I/O thread.
  void run() noexcept;
  void start(Req* r) noexcept;
  static int on_done(void* user, int* error) noexcept;
  void unlink(Req* r) noexcept;
  void complete(Req* r, int err) noexcept;
  void step_link(Clock::time_point now) noexcept;
  bool finish_connect() noexcept;
  void drop(int err) noexcept;
  void issue_trims(Clock::time_point now) noexcept;
  void finish_drains(Clock::time_point now) noexcept;
  int next_timeout_ms(Clock::time_point now) const noexcept;

  const std::string uri_;
  const std::atomic<std::uint32_t>& timeout_ms_;
  nbdlink::Info info_;  // as opened; immutable after open()
  unsigned char id_[nbdlink::kIdBytes] = {};
  int wake_fd_ = -1;  // eventfd: a submission or stop wakes the thread's poll
  Thread thread_;

  // Protects queue_ and stop_. A leaf: taken by submitters (possibly under a slot lock)
  // and the I/O thread; nothing is taken or called inside it.
  std::mutex mu_;
  Req* queue_ = nullptr;
  Req** queue_tail_ = &queue_;
  bool stop_ = false;
  // Protects every submission's remaining count; done_cv_ wakes submitters. A leaf, as mu_.
  // The I/O thread touches a submitter's request last under it, so the submitter, which
  // sees its count reach 0 only under it, never frees a request the thread still uses.
  std::mutex done_mu_;
  std::condition_variable done_cv_;

  // Set by the I/O thread, read by anyone (relaxed hints, or as noted).
  std::atomic<bool> up_{false};                // connected: submitters fail fast when not
  std::atomic<std::uint64_t> session_{0};      // connection number; release at each connect
  std::atomic<bool> can_flush_{false};         // of the current connection
  std::atomic<BackingAlloc*> alloc_{nullptr};  // release by attach (under init_lock_)
  std::atomic<std::uint64_t> reconnects_{0}, trimmed_{0};

  // The I/O thread's own (the opener's before the thread starts).
  nbd_handle* h_ = nullptr;
  enum class Link { up, connecting, down } link_ = Link::down;
  Clock::time_point retry_at_{}, connect_deadline_{}, trim_at_{};
  Clock::duration backoff_ = kMinBackoff;
  Req* inflight_ = nullptr;  // issued on h_, doubly linked
  Req* drains_ = nullptr;    // drain_trims() callers waiting
  unsigned trims_inflight_ = 0;
  Req trims_[kMaxTrims];
  Req* trim_free_ = nullptr;
};

// ---- submitters ------------------------------------------------------------------------

NbdTier::~NbdTier() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  if (thread_.joinable()) {
    wake();
    thread_.join();
  } else if (h_) {
    nbd_close(h_);
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void NbdTier::submit_wait(Req* reqs, std::size_t n) noexcept {
  unsigned remaining = static_cast<unsigned>(n);
  const auto deadline = Clock::now() + timeout();
  for (std::size_t i = 0; i < n; i++) {
    reqs[i].tier = this;
    reqs[i].remaining = &remaining;
    reqs[i].deadline = deadline;
    reqs[i].err = ENOTCONN;
  }
  if (!up_.load(std::memory_order_relaxed) && reqs[0].op != Req::kDrain) return;  // fail fast
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return;
    for (std::size_t i = 0; i < n; i++) {
      reqs[i].next = nullptr;
      *queue_tail_ = &reqs[i];
      queue_tail_ = &reqs[i].next;
    }
  }
  wake();
  std::unique_lock<std::mutex> l(done_mu_);
  done_cv_.wait(l, [&] { return remaining == 0; });
}

void NbdTier::write(TierWrite* ops, std::size_t n, std::uint64_t gen) noexcept {
  Req reqs[kChunk];
  TierWrite* owner[kChunk];
  std::size_t q = 0;
  const auto flush_chunk = [&] {
    submit_wait(reqs, q);
    for (std::size_t i = 0; i < q; i++) {
      if (reqs[i].err != 0 && owner[i]->err == 0) owner[i]->err = reqs[i].err;
    }
    q = 0;
  };
  for (std::size_t i = 0; i < n; i++) {
    ops[i].err = 0;
    for (std::size_t done = 0; done < ops[i].len;) {
      const std::size_t len = std::min(ops[i].len - done, info_.max_payload);
      Req& r = reqs[q];
      r = Req{};
      r.op = Req::kWrite;
      r.check_gen = true;
      r.gen = gen;
      r.buf = const_cast<unsigned char*>(ops[i].buf + done);
      r.len = len;
      r.off = ops[i].off + done;
      owner[q++] = &ops[i];
      done += len;
      if (q == kChunk) flush_chunk();
    }
  }
  if (q) flush_chunk();
}

int NbdTier::read(void* buf, std::size_t len, std::uint64_t off, std::uint64_t gen) noexcept {
  Req r;
  r.op = Req::kRead;
  r.check_gen = true;
  r.gen = gen;
  r.buf = buf;
  r.len = len;
  r.off = off;
  submit_wait(&r, 1);
  return r.err;
}

int NbdTier::sync(std::uint64_t session) noexcept {
  Req r;
  r.op = Req::kFlush;
  r.session = session;
  submit_wait(&r, 1);
  return r.err;
}

void NbdTier::drain_trims() noexcept {
  Req r;
  r.op = Req::kDrain;
  submit_wait(&r, 1);
}

// ---- open ----------------------------------------------------------------------------------

Result<void> NbdTier::fail(std::string* msg, std::error_code e, const std::string& text) noexcept {
  if (msg) *msg = "backing_dev: " + text;
  if (h_) nbd_close(h_);
  h_ = nullptr;
  return e;
}

Result<void> NbdTier::open(std::string* msg) noexcept {
  const std::string q = "'" + uri_ + "'";
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return fail(msg, Errc::no_memory, "eventfd: " + std::string(strerror(errno)));
  std::string why;
  h_ = nbdlink::start_connect(uri_, &why);
  if (!h_) return fail(msg, Errc::invalid_argument, "cannot use " + q + ": " + why);
  auto deadline = Clock::now() + timeout();
  if (const int e = nbdlink::wait_ready(h_, deadline, &why); e != 0) {
    return fail(msg, Errc::io_error, "cannot connect to " + q + ": " + why);
  }
  if (nbdlink::query(h_, &info_, &why) != 0) {
    return fail(msg, Errc::io_error, "cannot query " + q + ": " + why);
  }
  if (info_.read_only) return fail(msg, Errc::invalid_argument, q + " is a read-only export");
  if (info_.size < 2 * kBlockSize) {
    return fail(msg, Errc::invalid_argument,
                q + " holds " + std::to_string(info_.size) +
                    " bytes: at least 8 KiB are needed (4 KiB blocks, block 0 holds a marker)");
  }
  if (info_.min_block > kBlockSize) {
    return fail(msg, Errc::invalid_argument,
                q + " needs requests aligned to " + std::to_string(info_.min_block) +
                    " bytes; at most 4096 work");
  }
  info_.max_payload =
      std::max<std::size_t>(info_.max_payload / kBlockSize * kBlockSize, kBlockSize);
  size_blocks_ = std::min<std::uint64_t>(info_.size / kBlockSize, kWbMaxBlocks);
  shown_ = uri_;
  if (::getrandom(id_, sizeof id_, 0) != static_cast<ssize_t>(sizeof id_)) {
    return fail(msg, Errc::io_error, "getrandom: " + std::string(strerror(errno)));
  }
  // The tier starts empty: what the export held is not ours to keep (trim frees the
  // memory of `nbdkit memory`). Then the marker, made durable.
  deadline = Clock::now() + timeout();
  if (info_.can_trim) {
    if (const int e = nbdlink::trim_all(h_, size_blocks_ * kBlockSize, deadline); e != 0) {
      return fail(msg, Errc::io_error, "cannot trim " + q + ": " + strerror(e));
    }
  }
  alignas(4096) unsigned char marker[kBlockSize];
  nbdlink::make_marker(marker, id_);
  int e = nbdlink::pwrite(h_, marker, kBlockSize, 0, deadline);
  if (e == 0 && info_.can_flush) e = nbdlink::flush(h_, deadline);
  if (e != 0) return fail(msg, Errc::io_error, "cannot write to " + q + ": " + strerror(e));
  for (Req& r : trims_) {
    r.next = trim_free_;
    trim_free_ = &r;
  }
  link_ = Link::up;
  can_flush_.store(info_.can_flush, std::memory_order_relaxed);
  session_.store(1, std::memory_order_relaxed);
  up_.store(true, std::memory_order_relaxed);
  if (const int te = thread_.start([this]() noexcept { run(); }); te != 0) {
    return fail(msg, std::error_code(te, std::generic_category()),
                "cannot start the I/O thread for " + q + ": " + strerror(te));
  }
  return {};
}

// ---- the I/O thread ------------------------------------------------------------------------

void NbdTier::run() noexcept {
  for (;;) {
    Req* fresh;
    bool stop;
    {
      std::lock_guard<std::mutex> l(mu_);
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
    case Req::kRead: c = nbd_aio_pread(h_, r->buf, r->len, r->off, cb, 0); break;
    case Req::kWrite: c = nbd_aio_pwrite(h_, r->buf, r->len, r->off, cb, 0); break;
    case Req::kFlush: c = nbd_aio_flush(h_, cb, 0); break;
    case Req::kTrim: c = nbd_aio_trim(h_, r->len, r->off, cb, 0); break;
    case Req::kDrain: break;
  }
  if (c == -1) {  // not issued: libnbd will not call the callback
    const int e = nbd_get_errno();
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
  std::lock_guard<std::mutex> l(done_mu_);  // the last touch of r (see done_mu_)
  r->err = err;
  if (--*r->remaining == 0) done_cv_.notify_all();
}

void NbdTier::step_link(Clock::time_point now) noexcept {
  switch (link_) {
    case Link::up: {
      if (nbd_aio_is_dead(h_) == 1 || nbd_aio_is_closed(h_) == 1) return drop(ECONNRESET);
      for (Req* r = inflight_; r; r = r->next) {
        if (now > r->deadline) return drop(ETIMEDOUT);
      }
      return;
    }
    case Link::connecting:
      if (nbd_aio_is_ready(h_) == 1) {
        if (!finish_connect()) drop(ECONNRESET);
      } else if (nbd_aio_is_dead(h_) == 1 || nbd_aio_is_closed(h_) == 1 ||
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
  if (h_) nbd_close(h_);  // may complete requests through their callbacks
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

int NbdTier::next_timeout_ms(Clock::time_point now) const noexcept {
  Clock::time_point t = now + milliseconds(1000);
  if (link_ == Link::up) {
    for (const Req* r = inflight_; r; r = r->next) t = std::min(t, r->deadline);
  }
  if (link_ == Link::connecting) t = std::min(t, connect_deadline_);
  if (link_ == Link::down) t = std::min(t, retry_at_);
  if (trim_at_ != Clock::time_point{}) t = std::min(t, trim_at_);
  if (drains_) t = std::min(t, drains_->deadline);
  const auto ms = std::chrono::ceil<milliseconds>(t - now).count();
  return static_cast<int>(std::max<std::int64_t>(ms, 0));
}

}  // namespace

Result<std::unique_ptr<BackingTier>> open_nbd_tier(const std::string& uri,
                                                   const std::atomic<std::uint32_t>& timeout_ms,
                                                   std::string* msg) noexcept {
  std::unique_ptr<NbdTier> t(new (std::nothrow) NbdTier(uri, timeout_ms));
  if (!t) {
    if (msg) *msg = "backing_dev: out of memory";
    return Errc::no_memory;
  }
  if (auto r = t->open(msg); !r) return r.error();
  return std::unique_ptr<BackingTier>(std::move(t));
}

}  // namespace uzram

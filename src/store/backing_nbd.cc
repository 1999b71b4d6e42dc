// store/backing_nbd.cc - the remote backing tier: NbdTier's submitters, its opening, and
// its reader links (store/backing_nbd.h, store/nbd_tier.h). The I/O thread is
// nbd_io_thread.cc.
#include "store/backing_nbd.h"

#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "store/libnbd_api.h"
#include "store/nbd_tier.h"
#include "util/errno_text.h"
#include "uzram/store.h"

namespace uzram {
namespace nbdtier {

// ---- submitters ------------------------------------------------------------------------

NbdTier::~NbdTier() {
  {
    MutexLock l(mu_);
    stop_ = true;
  }
  if (thread_.joinable()) {
    wake();
    thread_.join();
  } else if (h_) {
    libnbd().nbd_close(h_);
  }
  for (DirectLink& rl : links_) {  // no caller is left: the store let the tier go
    if (rl.h) libnbd().nbd_close(rl.h);
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
    MutexLock l(mu_);
    if (stop_) return;
    for (std::size_t i = 0; i < n; i++) {
      reqs[i].next = nullptr;
      *queue_tail_ = &reqs[i];
      queue_tail_ = &reqs[i].next;
    }
  }
  wake();
  MutexLock l(done_mu_);
  while (remaining != 0) done_cv_.wait(done_mu_);
}

// ---- direct links --------------------------------------------------------------------------

template <typename Fn>
bool NbdTier::on_link(Fn&& fn) noexcept {
  if (!info_.multi_conn || !up_.load(std::memory_order_relaxed)) return false;
  for (DirectLink& dl : links_) {
    if (!dl.mu.try_lock()) continue;
    if (!dl.h || dl.session != session_.load(std::memory_order_acquire)) {
      if (dl.h) links_dirty_.store(true, std::memory_order_relaxed);  // an older session's
      dl.mu.unlock();
      continue;
    }
    // Broken, or a command still in flight (a timeout: "ready" holds while replies are
    // awaited): closed before the caller's buffers go, so libnbd never touches them again.
    if (fn(dl.h) != 0 &&
        (libnbd().nbd_aio_in_flight(dl.h) != 0 || libnbd().nbd_aio_is_ready(dl.h) != 1)) {
      libnbd().nbd_close(dl.h);
      dl.h = nullptr;
      links_dirty_.store(true, std::memory_order_relaxed);
    }
    dl.mu.unlock();
    return true;
  }
  return false;
}

// A batch's writes: on a direct link if one is free, else through the I/O thread; either
// way durable when this returns without error (FUA, or a flush on the same connection).
void NbdTier::write(TierWrite* ops, std::size_t n, std::uint64_t gen) noexcept {
  for (std::size_t i = 0; i < n; i++) ops[i].err = 0;
  const bool direct = on_link([&](nbd_handle* h) {
    BackingAlloc* a = alloc_.load(std::memory_order_acquire);
    const int e = a && gen != a->gen() ? EIO : write_on(h, ops, n);  // lost since filled
    for (std::size_t i = 0; i < n; i++) {
      if (e != 0 && ops[i].err == 0) ops[i].err = e;
    }
    return e;
  });
  if (!direct) write_queued(ops, n, gen);
}

// Every piece in flight at once on h, then a flush if needed: 0 or the first error.
int NbdTier::write_on(nbd_handle* h, TierWrite* ops, std::size_t n) noexcept {
  const auto deadline = Clock::now() + timeout();
  const std::uint32_t flags = fua_.load(std::memory_order_relaxed) ? LIBNBD_CMD_FLAG_FUA : 0;
  std::int64_t cookies[kChunk];
  TierWrite* owner[kChunk];
  int err = 0;
  std::size_t q = 0;
  const auto wait_all = [&] {
    for (std::size_t i = 0; i < q; i++) {
      const int e = nbdlink::wait_command(h, cookies[i], deadline);
      if (e != 0 && owner[i]->err == 0) owner[i]->err = e;
      if (e != 0 && err == 0) err = e;
    }
    q = 0;
  };
  for (std::size_t i = 0; i < n && err == 0; i++) {
    for (std::size_t done = 0; done < ops[i].len && err == 0;) {
      const std::size_t len = std::min(ops[i].len - done, info_.max_payload);
      cookies[q] = libnbd().nbd_aio_pwrite(h, ops[i].buf + done, len, ops[i].off + done,
                                           NBD_NULL_COMPLETION, flags);
      owner[q++] = &ops[i];
      done += len;
      if (q == kChunk) wait_all();
    }
  }
  wait_all();
  if (err == 0 && flush_needed()) err = nbdlink::flush(h, deadline);
  return err;
}

// Through the I/O thread: the writes, then a flush refused if the connection changed.
void NbdTier::write_queued(TierWrite* ops, std::size_t n, std::uint64_t gen) noexcept {
  const std::uint64_t session = session_.load(std::memory_order_acquire);
  Req reqs[kChunk];
  TierWrite* owner[kChunk];
  std::size_t q = 0;
  int err = 0;
  const auto flush_chunk = [&] {
    submit_wait(reqs, q);
    for (std::size_t i = 0; i < q; i++) {
      if (reqs[i].err != 0 && owner[i]->err == 0) owner[i]->err = reqs[i].err;
      if (reqs[i].err != 0 && err == 0) err = reqs[i].err;
    }
    q = 0;
  };
  for (std::size_t i = 0; i < n; i++) {
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
  if (err == 0 && flush_needed()) {
    if (const int e = sync(session); e != 0) {
      for (std::size_t i = 0; i < n; i++) ops[i].err = e;
    }
  }
}

// A read on a direct link if one is free (a link that breaks hands the read to the I/O
// thread, whose connection may still serve it; a timeout does not: it waited enough).
int NbdTier::read(void* buf, std::size_t len, std::uint64_t off, std::uint64_t gen) noexcept {
  int e = 0;
  bool broken = false;
  const bool direct = on_link([&](nbd_handle* h) {
    BackingAlloc* a = alloc_.load(std::memory_order_acquire);
    e = a && gen != a->gen() ? EIO : nbdlink::pread(h, buf, len, off, Clock::now() + timeout());
    broken = e != 0 && e != ETIMEDOUT && libnbd().nbd_aio_is_ready(h) != 1;
    return e;
  });
  if (direct && !broken) return e;
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
  if (h_) libnbd().nbd_close(h_);
  h_ = nullptr;
  return e;
}

Result<void> NbdTier::open(std::string* msg) noexcept {
  const std::string q = "'" + uri_ + "'";
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return fail(msg, Errc::no_memory, "eventfd: " + std::string(errno_text(errno)));
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
    return fail(msg, Errc::io_error, "getrandom: " + std::string(errno_text(errno)));
  }
  // The tier starts empty: what the export held is not ours to keep (trim frees the
  // memory of `nbdkit memory`). Then the marker, made durable.
  deadline = Clock::now() + timeout();
  if (info_.can_trim) {
    if (const int e = nbdlink::trim_all(h_, size_blocks_ * kBlockSize, deadline); e != 0) {
      return fail(msg, Errc::io_error, "cannot trim " + q + ": " + errno_text(e));
    }
  }
  alignas(4096) unsigned char marker[kBlockSize];
  nbdlink::make_marker(marker, id_);
  int e = nbdlink::pwrite(h_, marker, kBlockSize, 0, deadline);
  if (e == 0 && info_.can_flush) e = nbdlink::flush(h_, deadline);
  if (e != 0) return fail(msg, Errc::io_error, "cannot write to " + q + ": " + errno_text(e));
  for (Req& r : trims_) {
    r.next = trim_free_;
    trim_free_ = &r;
  }
  link_ = Link::up;
  can_flush_.store(info_.can_flush, std::memory_order_relaxed);
  fua_.store(info_.can_flush && info_.can_fua, std::memory_order_relaxed);
  session_.store(1, std::memory_order_relaxed);
  up_.store(true, std::memory_order_relaxed);
  links_dirty_.store(true, std::memory_order_relaxed);
  if (const int te = thread_.start([this]() noexcept { run(); }); te != 0) {
    return fail(msg, std::error_code(te, std::generic_category()),
                "cannot start the I/O thread for " + q + ": " + errno_text(te));
  }
  return {};
}

}  // namespace nbdtier

Result<std::unique_ptr<BackingTier>> open_nbd_tier(const std::string& uri,
                                                   const std::atomic<std::uint32_t>& timeout_ms,
                                                   std::string* msg) noexcept {
  if (const LibNbd& lib = libnbd(); !lib.error.empty()) {  // loaded here, once
    if (msg) *msg = "backing_dev: '" + uri + "': " + lib.error;
    return Errc::not_supported;
  }
  std::unique_ptr<nbdtier::NbdTier> t(new (std::nothrow) nbdtier::NbdTier(uri, timeout_ms));
  if (!t) {
    if (msg) *msg = "backing_dev: out of memory";
    return Errc::no_memory;
  }
  if (auto r = t->open(msg); !r) return r.error();
  return std::unique_ptr<BackingTier>(std::move(t));
}

}  // namespace uzram

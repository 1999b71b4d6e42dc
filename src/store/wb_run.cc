// store/wb_run.cc - WbRun: batches filled, written, made durable and published (wb_run.h).
#include "store/wb_run.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "store/fail.h"
#include "util/errno_text.h"

namespace uzram {
namespace {

// Errors after which a remote tier takes no more writes for now: the pass stops (as it
// does after any error that left the remote disconnected: EPIPE, EIO of a dying server).
bool unreachable(int e) { return e == ENOTCONN || e == ETIMEDOUT || e == ECONNRESET; }

}  // namespace

WbRun::WbRun(StoreImpl& s, const char* what, bool charge) noexcept
    : s_(s), b_(*s.backing_), what_(what), charge_(charge) {}

WbRun::~WbRun() {
  writer_.reset();
  std::free(pages_);
}

Result<void> WbRun::init(std::string* msg) noexcept {
  s_.init_lock_.assert_held_shared();  // held by the pass's caller (pp_pass.h)
  const std::uint32_t want = s_.wb_batch_size_.load(std::memory_order_relaxed);
  batch_pages_ = want < 1 ? 1 : want > kWbBatchMax ? kWbBatchMax : want;
  // A unit's members go in one batch (they are published together): a batch holds a
  // unit whatever its placement (WbRun::room), N + 1 pages.
  if (s_.unit_blocks_ > 1) batch_pages_ = std::max<unsigned>(batch_pages_, s_.unit_blocks_ + 1);
  const unsigned objcap = batch_pages_ * 64;  // objects of 64 bytes on average fill a batch
  nbatches_ = std::clamp(b_.tier->batches(), 2u, kWbMaxBatches);
  pages_ = static_cast<unsigned char*>(
      std::aligned_alloc(4096, std::size_t{nbatches_} * batch_pages_ * kBlockSize));
  batches_.reset(new (std::nothrow) WbBatch[nbatches_]);
  blocks_.reset(new (std::nothrow) std::uint64_t[std::size_t{nbatches_} * batch_pages_]);
  objs_.reset(new (std::nothrow) WbObj[std::size_t{nbatches_} * objcap]);
  writer_.reset(new (std::nothrow) BlockWriter(*b_.tier));
  if (!pages_ || !batches_ || !blocks_ || !objs_ || !writer_) {
    return fail(msg, Errc::no_memory, std::string(what_) + ": out of memory");
  }
  for (unsigned i = 0; i < nbatches_; i++) {
    WbBatch& b = batches_[i];
    b.pages = pages_ + std::size_t{i} * batch_pages_ * kBlockSize;
    b.blocks = &blocks_[std::size_t{i} * batch_pages_];
    b.objs = &objs_[std::size_t{i} * objcap];
    b.cap = batch_pages_;
    b.objcap = objcap;
    b.next = free_;
    free_ = &b;
  }
  return {};
}

Result<void> WbRun::run(std::string* msg) noexcept {
  for (;;) {
    if (free_ && !exhausted_ && stop_ == Errc::ok) {
      WbBatch* b = free_;
      free_ = b->next;
      fill(b);
      submit(b);
      continue;
    }
    if (in_flight_ == 0) break;
    finish(writer_->reap());
  }
  if (carry_) release(carry_index_);
  return report(msg);
}

int WbRun::charge() noexcept {
  if (!charge_ || !s_.wb_limit_enable_.load(std::memory_order_relaxed)) return 0;
  std::uint64_t cur = s_.wb_limit_pages_.load(std::memory_order_relaxed);
  do {
    if (cur == 0) return -1;
  } while (!s_.wb_limit_pages_.compare_exchange_weak(cur, cur - 1, std::memory_order_relaxed));
  return 1;
}

// A new page at the end of b: its block reserved (pinned), charged to the limit.
WbRun::Place WbRun::add_page(WbBatch* b) noexcept {
  if (b->npages == b->cap) return Place::full;
  const int c = charge();
  if (c < 0) {
    stop_ = Errc::io_error;
    return Place::stop;
  }
  std::uint64_t block;
  bool got = b_.alloc.alloc(&block);
  if (!got && b_.alloc.trimming() > 0) {  // freed blocks wait for their trim: have it now
    b_.tier->drain_trims();
    got = b_.alloc.alloc(&block);
  }
  if (!got) {
    refund(c > 0 ? 1 : 0);
    stop_ = Errc::no_memory;
    return Place::stop;
  }
  b->charged += c > 0 ? 1 : 0;
  std::memset(b->page(b->npages), 0, kBlockSize);  // no stale bytes between objects
  b->blocks[b->npages++] = block;
  return Place::placed;
}

WbRun::Place WbRun::reserve(WbBatch* b, std::uint32_t bytes, bool raw, std::uint64_t* off,
                            WbAddr* addr) noexcept {
  if (b->nobjs == b->objcap) return Place::full;
  std::uint64_t start = raw ? (pos_ + kBlockSize - 1) / kBlockSize * kBlockSize : pos_;
  for (;;) {
    const std::uint64_t end = start + bytes;
    while (b->npages * kBlockSize < end) {
      if (const Place p = add_page(b); p != Place::placed) return p;
    }
    const std::uint64_t page = start / kBlockSize;
    if (end > (page + 1) * kBlockSize && b->blocks[page + 1] != b->blocks[page] + 1) {
      start = (page + 1) * kBlockSize;  // the next block is not adjacent: start there
      continue;
    }
    *off = start;
    addr->block = b->blocks[page];
    addr->offset = static_cast<std::uint32_t>(start % kBlockSize);
    addr->len = raw ? 0 : bytes;
    return Place::placed;
  }
}

void WbRun::fill(WbBatch* b) noexcept {
  b->reset();
  b->gen = b_.alloc.gen();
  b->session = b_.tier->session();
  pos_ = 0;
  for (;;) {
    std::uint64_t index;
    if (carry_) {
      index = carry_index_;
      carry_ = false;
    } else if (!next(&index)) {
      exhausted_ = true;
      return;
    }
    switch (place(b, index)) {
      case Place::placed:
      case Place::skipped: continue;
      case Place::full:
        carry_ = true;
        carry_index_ = index;
        return;
      case Place::stop: release(index); return;
    }
  }
}

// Pages past the cursor hold nothing (reserved for an object whose slot then changed):
// they go back unwritten. An empty batch goes straight back.
void WbRun::submit(WbBatch* b) noexcept {
  drop_pages(b, static_cast<unsigned>((pos_ + kBlockSize - 1) / kBlockSize), false);
  if (b->nobjs == 0) {
    drop_pages(b, 0, false);
    b->next = free_;
    free_ = b;
    return;
  }
  in_flight_++;
  writer_->queue(b);
}

// Unpins pages [keep, npages) of b; pages never written give their charge back.
void WbRun::drop_pages(WbBatch* b, unsigned keep, bool written) noexcept {
  for (unsigned i = keep; i < b->npages; i++) b_.alloc.unpin(b->blocks[i], written, b->gen);
  if (!written && b->npages > keep) {
    const unsigned back = std::min(b->charged, b->npages - keep);
    refund(back);
    b->charged -= back;
  }
  b->npages = std::min(b->npages, keep);
}

// A written batch is durable (the writer synced it if the tier cached it); a loss detected
// since the batch was filled (a remote restarted empty) fails it.
void WbRun::finish(WbBatch* b) noexcept {
  in_flight_--;
  if (b->err == 0 && b_.alloc.gen() != b->gen) b->err = EIO;
  const bool ok = b->err == 0;
  if (ok) s_.stats_.bd_writes.fetch_add(b->npages, std::memory_order_relaxed);
  for (unsigned i = 0; i < b->nobjs; i++) publish(b->objs[i], ok);
  if (!ok) {  // the RAM copies stay; the blocks and the budget go back
    if (charge_) s_.stats_.wb_failed.fetch_add(b->nobjs, std::memory_order_relaxed);
    failed_ += b->nobjs;
    last_err_ = make_error_code(Errc::io_error);
    last_errno_ = b->err;
    if ((unreachable(b->err) || !b_.tier->connected()) && stop_ == Errc::ok) {
      stop_ = Errc::io_error;
      unreachable_ = true;
    }
  }
  drop_pages(b, 0, ok);
  b->next = free_;
  free_ = b;
}

Result<void> WbRun::report(std::string* msg) const noexcept {
  s_.init_lock_.assert_held_shared();
  const std::string w(what_);
  const std::string n = std::to_string(failed_);
  const std::string why = last_errno_ ? ": " + std::string(errno_text(last_errno_)) : "";
  if (stop_ == Errc::io_error && unreachable_) {
    return fail(msg, stop_,
                w + ": backing tier '" + s_.backing_path_ + "' unreachable, " + n +
                    " block(s) not written" + why + " (it reconnects by itself)");
  }
  if (stop_ == Errc::io_error) {
    return fail(msg, stop_, w + ": writeback_limit exhausted (writeback_limit_enable is 1)");
  }
  if (stop_ == Errc::no_memory) {
    return fail(msg, stop_,
                w + ": backing device '" + s_.backing_path_ + "' is full (" +
                    std::to_string(b_.alloc.nblocks() - 1) + " blocks)");
  }
  const char* what = charge_ ? " block(s) not written back" : " block(s) not moved";
  if (last_err_) return fail(msg, last_err_, w + ": " + n + what + why);
  return {};
}

}  // namespace uzram

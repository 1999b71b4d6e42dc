// store/block_writer.cc - BlockWriter: batches written by on-demand writer threads, as
// runs of consecutive blocks (block_writer.h).
#include "store/block_writer.h"

#include "uzram/store.h"

namespace uzram {

BlockWriter::~BlockWriter() {
  {
    MutexLock l(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  mu_.lock();
  const unsigned n = nthreads_;  // no thread starts any more: queue() is not called now
  mu_.unlock();
  for (unsigned i = 0; i < n; i++) threads_[i].join();
}

void BlockWriter::queue(WbBatch* b) noexcept {
  MutexLock l(mu_);
  b->next = todo_;
  todo_ = b;
  // No thread (EAGAIN, ENOMEM): the ones we have, or the inline path below, will do.
  if (idle_ == 0 && nthreads_ < kWbWorkers &&
      threads_[nthreads_].start([this]() noexcept { run(); }) == 0) {
    nthreads_++;
  }
  if (nthreads_ > 0) {
    l.unlock();
    work_cv_.notify_one();
    return;
  }
  todo_ = b->next;
  l.unlock();
  write(b);
}

WbBatch* BlockWriter::reap() noexcept {
  MutexLock l(mu_);
  while (done_ == nullptr) done_cv_.wait(mu_);
  WbBatch* d = done_;
  done_ = d->next;
  return d;
}

void BlockWriter::run() noexcept {
  MutexLock l(mu_);
  for (;;) {
    idle_++;
    while (todo_ == nullptr && !stop_) work_cv_.wait(mu_);
    idle_--;
    if (!todo_) return;  // stopping
    WbBatch* b = todo_;
    todo_ = b->next;
    l.unlock();
    write(b);
    l.lock();
  }
}

// Runs of consecutive blocks, one tier write each; the first error is the batch's.
void BlockWriter::write(WbBatch* b) noexcept {
  TierWrite ops[64];
  std::size_t n = 0;
  int err = 0;
  const auto flush = [&] {
    t_.write(ops, n, b->gen);
    for (std::size_t i = 0; i < n; i++) {
      if (ops[i].err != 0 && err == 0) err = ops[i].err;
    }
    n = 0;
  };
  for (unsigned i = 0; i < b->npages;) {
    unsigned j = i + 1;
    while (j < b->npages && b->blocks[j] == b->blocks[j - 1] + 1) j++;
    ops[n].buf = b->page(i);
    ops[n].len = std::size_t{j - i} * kBlockSize;
    ops[n].off = b->blocks[i] * kBlockSize;
    if (++n == sizeof ops / sizeof ops[0]) flush();
    i = j;
  }
  if (n) flush();
  // Durable before published: a file whose O_DIRECT was dropped during the writes, or a
  // remote with a write cache, is synced here, in the writer thread, so the pass goes on
  // filling meanwhile; if that fails, none of the batch is trusted.
  if (err == 0 && t_.volatile_writes()) {
    b->buffered = true;
    err = t_.sync(b->session);
  }
  b->err = err;
  {
    MutexLock l(mu_);
    b->next = done_;
    done_ = b;
  }
  done_cv_.notify_one();
}

}  // namespace uzram

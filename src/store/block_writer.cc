// store/block_writer.cc - BlockWriter: queued backing-block writes, coalesced into runs and
// written by on-demand writer threads (block_writer.h).
#include "store/block_writer.h"

#include <sys/uio.h>

namespace uzram {

BlockWriter::~BlockWriter() {
  unsigned n;
  {
    MutexLock l(mu_);
    stop_ = true;
    n = nthreads_;
  }
  work_cv_.notify_all();
  for (unsigned i = 0; i < n; i++) threads_[i].join();
}

void BlockWriter::queue(WbReq* r) noexcept {
  r->next = nullptr;
  MutexLock l(mu_);
  *todo_tail_ = r;
  todo_tail_ = &r->next;
  if (++queued_ >= kRunBlocks) kick_locked();
}

WbReq* BlockWriter::reap() noexcept {
  MutexLock l(mu_);
  if (queued_ > 0) {
    flush_ = true;
    kick_locked();
  }
  while (done_ == nullptr) done_cv_.wait(mu_);
  WbReq* d = done_;
  done_ = nullptr;
  return d;
}

// Wakes a writer thread, starting one if none is idle (up to kWbWorkers); without any
// thread, writes the queue inline. May drop and retake the lock.
void BlockWriter::kick_locked() noexcept {
  // No thread (EAGAIN, ENOMEM): the ones we have, or the inline path below, will do.
  if (idle_ == 0 && nthreads_ < kWbWorkers &&
      threads_[nthreads_].start([this]() noexcept { run(); }) == 0) {
    nthreads_++;
  }
  if (nthreads_ > 0) {
    work_cv_.notify_one();
    return;
  }
  while (todo_) {
    WbReq* head = take_run_locked();
    mu_.unlock();
    write_run(head);
    mu_.lock();
  }
}

// Pops the queue head and the requests behind it whose blocks follow it.
WbReq* BlockWriter::take_run_locked() noexcept {
  WbReq* head = todo_;
  WbReq* last = head;
  unsigned n = 1;
  while (last->next && last->next->block == last->block + 1 && n < kRunBlocks) {
    last = last->next;
    n++;
  }
  todo_ = last->next;
  if (!todo_) {
    todo_tail_ = &todo_;
    flush_ = false;
  }
  last->next = nullptr;
  queued_ -= n;
  return head;
}

void BlockWriter::run() noexcept {
  MutexLock l(mu_);
  for (;;) {
    idle_++;
    while (!ready_locked() && !stop_) work_cv_.wait(mu_);
    idle_--;
    if (!ready_locked()) return;  // stopping
    WbReq* head = take_run_locked();
    l.unlock();
    write_run(head);
    l.lock();
  }
}

void BlockWriter::write_run(WbReq* head) noexcept {
  iovec iov[kRunBlocks];
  int n = 0;
  WbReq* tail = head;
  for (WbReq* r = head; r; r = r->next) {
    iov[n].iov_base = r->page;
    iov[n].iov_len = kBlockSize;
    n++;
    tail = r;
  }
  const int err = backing_pwritev(b_, iov, n, static_cast<off_t>(head->block * kBlockSize));
  // O_DIRECT is dropped for good on the first EINVAL: still set after the write, it
  // carried the whole run.
  const bool buffered = !b_.direct.load(std::memory_order_relaxed);
  for (WbReq* r = head; r; r = r->next) {
    r->err = err;
    r->buffered = buffered;
  }
  {
    MutexLock l(mu_);
    tail->next = done_;
    done_ = head;
  }
  done_cv_.notify_one();
}

}  // namespace uzram

// sync/spin_lock.h - SpinLock: a small exclusive spinning lock (layer 1), the kernel's
// spinlock_t. Used for size-class locks and handle-table shards: short critical sections
// whose holders never block (might_sleep() aborts under it in debug builds).
//
// Lock word, bit by bit: bit 0 = held; bits 1..31 = number of threads waiting (x2).
// Invariant: waiters are counted only while they spin, so is_contended() == (word >= 2).
#ifndef UZRAM_SYNC_SPIN_LOCK_H_
#define UZRAM_SYNC_SPIN_LOCK_H_

#include <atomic>
#include <cstdint>

#include "sync/annotations.h"
#include "sync/lock_order.h"
#include "sync/spin.h"

namespace uzram {

class ZS_CAPABILITY("mutex") SpinLock {
 public:
  SpinLock(LockLevel level, const char* name) noexcept : level_(level), name_(name) {
    ZS_TSAN_MUTEX_CREATE(this, ZS_TSAN_NOT_STATIC);
  }
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock(SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE() {
    lockdep::acquire(level_, LockKind::spinning, this, name_, false, false, site);
    ZS_TSAN_MUTEX_PRE_LOCK(this, 0);
    // acquire: pairs with the release in unlock().
    if (__builtin_expect((word_.fetch_or(1, std::memory_order_acquire) & 1) != 0, 0)) {
      lock_slow();
    }
    ZS_TSAN_MUTEX_POST_LOCK(this, 0, 0);
  }

  bool try_lock(SiteLoc site = SiteLoc::current()) noexcept ZS_TRY_ACQUIRE(true) {
    ZS_TSAN_MUTEX_PRE_LOCK(this, ZS_TSAN_TRY_LOCK);
    // acquire: pairs with the release in unlock().
    const bool ok = (word_.fetch_or(1, std::memory_order_acquire) & 1) == 0;
    ZS_TSAN_MUTEX_POST_LOCK(this,
                            ok ? ZS_TSAN_TRY_LOCK : ZS_TSAN_TRY_LOCK | ZS_TSAN_TRY_LOCK_FAILED, 0);
    if (ok) lockdep::acquire(level_, LockKind::spinning, this, name_, true, false, site);
    return ok;
  }

  void unlock(SiteLoc site = SiteLoc::current()) noexcept ZS_RELEASE() {
    lockdep::release(this, site);
    ZS_TSAN_MUTEX_PRE_UNLOCK(this, 0);
    // release: pairs with the acquire in lock()/try_lock().
    word_.fetch_and(~1u, std::memory_order_release);
    ZS_TSAN_MUTEX_POST_UNLOCK(this, 0);
  }

  // True when another thread is spinning for this lock (the holder should yield it).
  bool is_contended() const noexcept { return word_.load(std::memory_order_relaxed) >= 2; }

 private:
  void lock_slow() noexcept {
    word_.fetch_add(2, std::memory_order_relaxed);  // relaxed: a hint for is_contended()
    Backoff backoff;
    for (;;) {
      while (word_.load(std::memory_order_relaxed) & 1) backoff.pause();
      // acquire: pairs with the release in unlock().
      if ((word_.fetch_or(1, std::memory_order_acquire) & 1) == 0) break;
    }
    word_.fetch_sub(2, std::memory_order_relaxed);
  }

  std::atomic<std::uint32_t> word_{0};
  const LockLevel level_;
  const char* const name_;
};

// RAII holder for SpinLock.
class ZS_SCOPED_CAPABILITY SpinGuard {
 public:
  explicit SpinGuard(SpinLock& l, SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE(l)
      : l_(l) {
    l_.lock(site);
  }
  ~SpinGuard() ZS_RELEASE() { l_.unlock(); }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  SpinLock& l_;
};

}  // namespace uzram

#endif  // UZRAM_SYNC_SPIN_LOCK_H_

// sync/rw_spin_lock.h - RwSpinLock: a spinning reader/writer lock (layer 1), the kernel's
// rwlock_t. It is the pool lock of the kernel-faithful translation mode: every read, write
// and free takes it in read mode to translate a handle; compaction and migration take it
// in write mode. Holders never block.
//
// Lock word, bit by bit: bits 0..29 = readers holding; bit 30 = a writer is waiting (new
// readers hold off, so a writer cannot starve); bit 31 = a writer holds it.
// Invariant: bit 31 set => readers == 0. Separate counter `waiting_` = threads spinning
// (either mode), so the writer can tell it is contended and yield (rwlock_is_contended).
#ifndef UZRAM_SYNC_RW_SPIN_LOCK_H_
#define UZRAM_SYNC_RW_SPIN_LOCK_H_

#include <atomic>
#include <cstdint>

#include "sync/annotations.h"
#include "sync/lock_order.h"
#include "sync/spin.h"

namespace uzram {

class ZS_CAPABILITY("rwlock") RwSpinLock {
 public:
  static constexpr std::uint32_t kWriter = 1u << 31;
  static constexpr std::uint32_t kWriterWaiting = 1u << 30;
  static constexpr std::uint32_t kReaderMask = kWriterWaiting - 1;

  RwSpinLock(LockLevel level, const char* name) noexcept : level_(level), name_(name) {
    ZS_TSAN_MUTEX_CREATE(this, ZS_TSAN_NOT_STATIC);
  }
  RwSpinLock(const RwSpinLock&) = delete;
  RwSpinLock& operator=(const RwSpinLock&) = delete;

  void lock_shared(SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE_SHARED() {
    lockdep::acquire(level_, LockKind::spinning, this, name_, false, true, site);
    ZS_TSAN_MUTEX_PRE_LOCK(this, ZS_TSAN_READ_LOCK);
    std::uint32_t v = word_.load(std::memory_order_relaxed);
    // acquire: pairs with the release in unlock() (writer) and unlock_shared().
    if (__builtin_expect((v & (kWriter | kWriterWaiting)) != 0 ||
                             !word_.compare_exchange_weak(v, v + 1, std::memory_order_acquire,
                                                          std::memory_order_relaxed),
                         0)) {
      lock_shared_slow();
    }
    ZS_TSAN_MUTEX_POST_LOCK(this, ZS_TSAN_READ_LOCK, 0);
  }

  void unlock_shared(SiteLoc site = SiteLoc::current()) noexcept ZS_RELEASE_SHARED() {
    lockdep::release(this, site);
    ZS_TSAN_MUTEX_PRE_UNLOCK(this, ZS_TSAN_READ_LOCK);
    // release: pairs with the acquire in lock() of the next writer.
    word_.fetch_sub(1, std::memory_order_release);
    ZS_TSAN_MUTEX_POST_UNLOCK(this, ZS_TSAN_READ_LOCK);
  }

  void lock(SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE() {
    lockdep::acquire(level_, LockKind::spinning, this, name_, false, false, site);
    ZS_TSAN_MUTEX_PRE_LOCK(this, 0);
    std::uint32_t expected = 0;
    // acquire: pairs with the release in unlock_shared() and unlock().
    if (!word_.compare_exchange_strong(expected, kWriter, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      lock_slow();
    }
    ZS_TSAN_MUTEX_POST_LOCK(this, 0, 0);
  }

  void unlock(SiteLoc site = SiteLoc::current()) noexcept ZS_RELEASE() {
    lockdep::release(this, site);
    ZS_TSAN_MUTEX_PRE_UNLOCK(this, 0);
    // release: pairs with the acquire in lock_shared()/lock().
    word_.fetch_and(~kWriter, std::memory_order_release);
    ZS_TSAN_MUTEX_POST_UNLOCK(this, 0);
  }

  // True when some thread spins for the lock: a writer holding it should yield.
  bool is_contended() const noexcept { return waiting_.load(std::memory_order_relaxed) != 0; }

 private:
  void lock_shared_slow() noexcept {
    waiting_.fetch_add(1, std::memory_order_relaxed);  // relaxed: contention hint only
    Backoff backoff;
    for (;;) {
      std::uint32_t v = word_.load(std::memory_order_relaxed);
      if ((v & (kWriter | kWriterWaiting)) == 0 &&
          word_.compare_exchange_weak(v, v + 1, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        break;
      }
      backoff.pause();
    }
    waiting_.fetch_sub(1, std::memory_order_relaxed);
  }

  void lock_slow() noexcept {
    waiting_.fetch_add(1, std::memory_order_relaxed);
    Backoff backoff;
    for (;;) {
      std::uint32_t v = word_.load(std::memory_order_relaxed);
      if ((v & (kWriter | kReaderMask)) == 0) {
        // acquire: pairs with the release in unlock_shared()/unlock().
        if (word_.compare_exchange_weak(v, kWriter, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
          break;
        }
        continue;
      }
      if (!(v & kWriterWaiting)) word_.fetch_or(kWriterWaiting, std::memory_order_relaxed);
      backoff.pause();
    }
    waiting_.fetch_sub(1, std::memory_order_relaxed);
  }

  std::atomic<std::uint32_t> word_{0};
  std::atomic<std::uint32_t> waiting_{0};
  const LockLevel level_;
  const char* const name_;
};

}  // namespace uzram

#endif  // UZRAM_SYNC_RW_SPIN_LOCK_H_

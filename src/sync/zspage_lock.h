// sync/zspage_lock.h - ZsPageLock: the per-zspage lock of the 2025 "preemptible" design
// (layer 1). Four bytes.
//
// Rules (the spec; docs/locking.md "The three rules"):
//   1. A writer (compaction, migration) never sleeps while holding it: its critical
//      section is short and does nothing that can block.
//   2. A writer never waits: the only way to write-lock is try_lock_write(); there is no
//      blocking write lock in this API, so a writer cannot block by construction.
//   3. Readers may sleep while holding it, and may spin waiting for a writer (which is
//      short by rule 1). Readers never block new readers; writers always unlock.
//
// Lock word, bit by bit: bits 0..30 = number of read holders; bit 31 = write-locked.
// Invariant: bit 31 set => bits 0..30 == 0 (readers only enter with a CAS that sees bit 31
// clear, and the writer only enters with a CAS from 0).
//
// A shared capability for clang's analysis: readers hold it shared, the writer (try only)
// exclusively. Pool::read_begin returns with the read lock held and read_end releases it:
// leave_read_held() and assert_read_held() tell the analysis so at those two API edges.
#ifndef UZRAM_SYNC_ZSPAGE_LOCK_H_
#define UZRAM_SYNC_ZSPAGE_LOCK_H_

#include <atomic>
#include <cstdint>

#include "sync/annotations.h"
#include "sync/lock_order.h"
#include "sync/spin.h"
#include "util/check.h"

namespace uzram {

class ZS_CAPABILITY("zspage lock") ZsPageLock {
 public:
  static constexpr std::uint32_t kWriter = 1u << 31;
  static constexpr std::uint32_t kReaderMask = kWriter - 1;

  ZsPageLock() noexcept = default;
  ZsPageLock(const ZsPageLock&) = delete;
  ZsPageLock& operator=(const ZsPageLock&) = delete;

  // Read-lock; spins while a writer holds the lock (writers are short and never wait).
  void lock_read(SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE_SHARED() {
    lockdep::acquire(LockLevel::zspage, LockKind::sleepable, this, "zspage", false, true, site);
    ZS_TSAN_MUTEX_PRE_LOCK(this, ZS_TSAN_READ_LOCK);
    std::uint32_t v = word_.load(std::memory_order_relaxed);
    for (Backoff backoff;;) {
      if (v & kWriter) {
        backoff.pause();
        v = word_.load(std::memory_order_relaxed);
        continue;
      }
      // acquire: pairs with the release in unlock_write(), so the reader sees everything
      // a writer (a compactor or migrator) did to this zspage.
      if (word_.compare_exchange_weak(v, v + 1, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        break;
      }
    }
    ZS_TSAN_MUTEX_POST_LOCK(this, ZS_TSAN_READ_LOCK, 0);
  }

  void unlock_read(SiteLoc site = SiteLoc::current()) noexcept ZS_RELEASE_SHARED() {
    ZS_TSAN_MUTEX_PRE_UNLOCK(this, ZS_TSAN_READ_LOCK);
    // release: pairs with the acquire in try_lock_write(): a writer that gets the lock
    // sees every access the readers made.
    const std::uint32_t old = word_.fetch_sub(1, std::memory_order_release);
    ZS_CHECK((old & kReaderMask) != 0 && !(old & kWriter),
             "zspage lock: read unlock of a zspage that is not read-locked (unbalanced "
             "read_begin/read_end?), word=0x%x",
             old);
    ZS_TSAN_MUTEX_POST_UNLOCK(this, ZS_TSAN_READ_LOCK);
    lockdep::release(this, site);
  }

  // Write-lock if nobody holds the lock; never waits. The caller must unlock_write()
  // without blocking in between (rule 1; might_sleep() checks it in debug builds).
  [[nodiscard]] bool try_lock_write(SiteLoc site = SiteLoc::current()) noexcept
      ZS_TRY_ACQUIRE(true) {
    ZS_TSAN_MUTEX_PRE_LOCK(this, ZS_TSAN_TRY_LOCK);
    std::uint32_t expected = 0;
    // acquire: pairs with the release in unlock_read()/unlock_write().
    const bool ok = word_.compare_exchange_strong(expected, kWriter, std::memory_order_acquire,
                                                  std::memory_order_relaxed);
    ZS_TSAN_MUTEX_POST_LOCK(this,
                            ok ? ZS_TSAN_TRY_LOCK : ZS_TSAN_TRY_LOCK | ZS_TSAN_TRY_LOCK_FAILED, 0);
    if (ok)
      lockdep::acquire(LockLevel::zspage, LockKind::spinning, this, "zspage", true, false, site);
    return ok;
  }

  void unlock_write(SiteLoc site = SiteLoc::current()) noexcept ZS_RELEASE() {
    ZS_TSAN_MUTEX_PRE_UNLOCK(this, 0);
    // release: pairs with the acquire in lock_read()/try_lock_write().
    const std::uint32_t old = word_.exchange(0, std::memory_order_release);
    ZS_CHECK(old == kWriter, "zspage lock: write unlock of a zspage not write-locked (0x%x)", old);
    ZS_TSAN_MUTEX_POST_UNLOCK(this, 0);
    lockdep::release(this, site);
  }

  // The read lock outlives the caller's scope (read_begin returns holding it): for the
  // analysis only, no code.
  void leave_read_held() const noexcept ZS_RELEASE_SHARED() {}
  // The caller holds the read lock taken in another scope (read_end): for the analysis
  // only; unlock_read() checks that the lock was read-locked.
  void assert_read_held() const noexcept ZS_ASSERT_SHARED_CAPABILITY() {}

  // Snapshot for stats and invariant checks (relaxed: advisory only).
  std::uint32_t readers() const noexcept {
    return word_.load(std::memory_order_relaxed) & kReaderMask;
  }
  bool write_locked() const noexcept { return word_.load(std::memory_order_relaxed) & kWriter; }

 private:
  std::atomic<std::uint32_t> word_{0};
};

static_assert(sizeof(ZsPageLock) <= 8, "the zspage lock must stay within 8 bytes");

}  // namespace uzram

#endif  // UZRAM_SYNC_ZSPAGE_LOCK_H_

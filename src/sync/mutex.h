// sync/mutex.h - Mutex, its scoped guard MutexLock, and CondVar (layer 1): the sleeping
// lock of the annotated family, for every lock that is not a hot-path spinning lock.
//
// The family (each a clang capability carrying its LockLevel and name, each seen by the
// lock-order checker before it blocks):
//   Mutex           std::mutex inside (TSan sees it natively)     this file
//   MutexLock       scoped guard of a Mutex, may unlock and relock this file
//   CondVar         condition variable waiting on a held Mutex    this file
//   ShardedRwMutex  sleepable rwlock with per-thread-shard readers sync/sharded_rw_mutex.h
//   SpinLock        spinning exclusive lock (+ SpinGuard)         sync/spin_lock.h
//   RwSpinLock      spinning reader/writer lock                   sync/rw_spin_lock.h
//   ReaderLock, WriterLock  scoped guards of either rwlock        sync/scoped_lock.h
//   ZsPageLock      the zspage lock (shared capability)           sync/zspage_lock.h
//   BitLock<Traits> a sleepable lock in one bit of a data word    sync/bit_lock.h
#ifndef UZRAM_SYNC_MUTEX_H_
#define UZRAM_SYNC_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "sync/annotations.h"
#include "sync/lock_order.h"

namespace uzram {

class ZS_CAPABILITY("mutex") Mutex {
 public:
  Mutex(LockLevel level, const char* name) noexcept : level_(level), name_(name) {}
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  // Checks the order (and that the caller may sleep) before it waits.
  void lock(SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE() {
    might_sleep(site);
    lockdep::acquire(level_, LockKind::sleepable, this, name_, false, false, site);
    m_.lock();
  }
  [[nodiscard]] bool try_lock(SiteLoc site = SiteLoc::current()) noexcept ZS_TRY_ACQUIRE(true) {
    if (!m_.try_lock()) return false;
    lockdep::acquire(level_, LockKind::sleepable, this, name_, true, false, site);
    return true;
  }
  void unlock(SiteLoc site = SiteLoc::current()) noexcept ZS_RELEASE() {
    lockdep::release(this, site);
    m_.unlock();
  }
  // Tells the analysis the caller holds it; checks so at UZRAM_DEBUG_LEVEL 2.
  void assert_held() const noexcept ZS_ASSERT_CAPABILITY() {
    ZS_CHECK(lockdep::holds(this), "%s: not held by this thread", name_);
  }

  LockLevel level() const noexcept { return level_; }
  const char* name() const noexcept { return name_; }

 private:
  friend class CondVar;
  std::mutex m_;
  const LockLevel level_;
  const char* const name_;
};

// Holds a Mutex for its scope; unlock() and lock() drop and retake it within the scope.
class ZS_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& m, SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE(m)
      : m_(m), site_(site) {
    m_.lock(site_);
  }
  ~MutexLock() ZS_RELEASE() {
    if (held_) m_.unlock(site_);
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void unlock() noexcept ZS_RELEASE() {
    m_.unlock(site_);
    held_ = false;
  }
  void lock() noexcept ZS_ACQUIRE() {
    m_.lock(site_);
    held_ = true;
  }

 private:
  Mutex& m_;
  const SiteLoc site_;
  bool held_ = true;
};

// A condition variable for a Mutex. wait() releases the mutex while it sleeps and holds it
// again on return; the checker validates the re-acquisition before the thread sleeps (so
// waiting while holding a lock ranked after the mutex aborts instead of deadlocking).
// Spurious wake-ups happen: wait in a loop on the condition.
class CondVar {
 public:
  CondVar() noexcept = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void wait(Mutex& m, SiteLoc site = SiteLoc::current()) noexcept ZS_REQUIRES(m) {
    before_wait(m, site);
    std::unique_lock<std::mutex> l(m.m_, std::adopt_lock);
    cv_.wait(l);
    l.release();
  }
  // False when `deadline` passed (the mutex is held again either way).
  template <typename Clock, typename Duration>
  bool wait_until(Mutex& m, const std::chrono::time_point<Clock, Duration>& deadline,
                  SiteLoc site = SiteLoc::current()) noexcept ZS_REQUIRES(m) {
    before_wait(m, site);
    std::unique_lock<std::mutex> l(m.m_, std::adopt_lock);
    const bool woken = cv_.wait_until(l, deadline) == std::cv_status::no_timeout;
    l.release();
    return woken;
  }
  template <typename Rep, typename Period>
  bool wait_for(Mutex& m, const std::chrono::duration<Rep, Period>& d,
                SiteLoc site = SiteLoc::current()) noexcept ZS_REQUIRES(m) {
    return wait_until(m, std::chrono::steady_clock::now() + d, site);
  }
  void notify_one() noexcept { cv_.notify_one(); }
  void notify_all() noexcept { cv_.notify_all(); }

 private:
  static void before_wait(Mutex& m, SiteLoc site) noexcept {
    might_sleep(site);
    lockdep::release(&m, site);
    lockdep::acquire(m.level_, LockKind::sleepable, &m, m.name_, false, false, site);
  }
  std::condition_variable cv_;
};

}  // namespace uzram

#endif  // UZRAM_SYNC_MUTEX_H_

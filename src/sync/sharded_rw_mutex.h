// sync/sharded_rw_mutex.h - ShardedRwMutex: a sleepable reader-writer lock whose readers
// touch only their own cache line (layer 1), for a lock that every I/O takes shared and
// only rare configuration changes take exclusive (the store's init lock). A
// std::shared_mutex makes every reader write one shared word; two CPUs doing I/O then
// bounce that line on every request.
//
// State: one reader count per shard (a thread always uses the same shard, picked once
// per thread) and one writer flag. Readers and the writer meet Dekker-style: a reader
// increments its count, then reads the flag; the writer sets the flag, then reads every
// count. Both sides are seq_cst, so at least one of them sees the other. A reader that
// sees the flag backs out and sleeps until the writer is done. The writer sleeps
// until every count drains. Readers may sleep while holding it; so may the writer.
// Writers are serialised by a std::mutex and exclude new readers while they wait, so a
// stream of readers cannot starve them.
//
// A capability of the annotated family (sync/mutex.h): hold it with ReaderLock / WriterLock
// (sync/scoped_lock.h). Both sides are checked by the lock-order checker before they wait.
// It also meets the SharedMutex requirements of std::shared_lock and std::unique_lock.
#ifndef UZRAM_SYNC_SHARDED_RW_MUTEX_H_
#define UZRAM_SYNC_SHARDED_RW_MUTEX_H_

#include <atomic>
#include <cstdint>
#include <mutex>

#include "sync/annotations.h"
#include "sync/lock_order.h"

namespace uzram {

class ZS_CAPABILITY("shared mutex") ShardedRwMutex {
 public:
  ShardedRwMutex(LockLevel level, const char* name) noexcept : level_(level), name_(name) {}
  // Not seen by the lock-order checker: only until the store names its init lock's level
  // (issue 10 phase 2 removes it).
  ShardedRwMutex() noexcept = default;
  ShardedRwMutex(const ShardedRwMutex&) = delete;
  ShardedRwMutex& operator=(const ShardedRwMutex&) = delete;

  void lock_shared(SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE_SHARED() {
    check(true, site);
    Shard& s = shards_[my_shard()];
    for (;;) {
      // seq_cst (both): the Dekker pair with lock()'s flag store and count loads.
      s.readers.fetch_add(1, std::memory_order_seq_cst);
      if (writer_.load(std::memory_order_seq_cst) == 0) return;
      leave(s);
      writer_.wait(1, std::memory_order_seq_cst);  // until unlock() clears the flag
    }
  }

  void unlock_shared(SiteLoc site = SiteLoc::current()) noexcept ZS_RELEASE_SHARED() {
    if (name_) lockdep::release(this, site);
    leave(shards_[my_shard()]);
  }

  void lock(SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE() {
    check(false, site);
    writers_.lock();
    // seq_cst: the Dekker pair with lock_shared()'s increment and flag load.
    writer_.store(1, std::memory_order_seq_cst);
    for (Shard& s : shards_) {
      std::uint32_t n;
      // seq_cst load; it reads from a reader's decrement in leave(), so that reader's
      // critical section happens before ours.
      while ((n = s.readers.load(std::memory_order_seq_cst)) != 0) s.readers.wait(n);
    }
  }

  void unlock(SiteLoc site = SiteLoc::current()) noexcept ZS_RELEASE() {
    if (name_) lockdep::release(this, site);
    // release: pairs with the flag load in lock_shared(), which then sees our writes.
    writer_.store(0, std::memory_order_release);
    writer_.notify_all();
    writers_.unlock();
  }

 private:
  static constexpr unsigned kShards = 16;
  struct alignas(64) Shard {
    std::atomic<std::uint32_t> readers{0};  // readers inside (or backing out) on this shard
  };

  static unsigned my_shard() noexcept {
    static std::atomic<unsigned> next{0};
    // relaxed: any distribution of threads over shards is correct; this one spreads them.
    thread_local const unsigned shard = next.fetch_add(1, std::memory_order_relaxed) % kShards;
    return shard;
  }

  void check(bool is_read, SiteLoc site) noexcept {
    if (!name_) return;
    might_sleep(site);
    lockdep::acquire(level_, LockKind::sleepable, this, name_, false, is_read, site);
  }

  void leave(Shard& s) noexcept {
    // seq_cst: releases our critical section to the count loads in lock(), and orders the
    // decrement before the flag load, so a writer that saw our count always gets woken.
    if (s.readers.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        writer_.load(std::memory_order_seq_cst) != 0) {
      s.readers.notify_all();
    }
  }

  Shard shards_[kShards];
  // 1 while a writer holds the lock or waits for readers to drain. Written under writers_.
  alignas(64) std::atomic<std::uint32_t> writer_{0};
  std::mutex writers_;  // serialises writers (internal: never held with another lock)
  const LockLevel level_ = LockLevel::store_init;
  const char* const name_ = nullptr;  // null: not checked (the default constructor)
};

}  // namespace uzram

#endif  // UZRAM_SYNC_SHARDED_RW_MUTEX_H_

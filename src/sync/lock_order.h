// sync/lock_order.h - THE lock order (layer 1) and the debug-build checker.
//
// Locks are acquired in strictly increasing level. Two locks of the same level may be
// held together only if the later one was taken with a try_ call, or both are zspage
// *read* locks (safe: a reader only ever spins on a writer, and writers never wait).
// docs/locking.md repeats this table; change both in one commit.
//
// At UZRAM_DEBUG_LEVEL >= 2 every lock records (level, address, name, site) on a per-thread
// stack. A non-try acquire that does not raise the level aborts, naming both locks and both
// acquisition sites. might_sleep() aborts when the thread holds a spinning lock or a
// zspage write lock (the kernel's "writers are atomic" rule). Below level 2 everything here
// is an empty inline: zero cost in release builds.
#ifndef UZRAM_SYNC_LOCK_ORDER_H_
#define UZRAM_SYNC_LOCK_ORDER_H_

#include <cstdint>

#include "util/check.h"

namespace uzram {

enum class LockLevel : std::uint8_t {
  memory = 1,         // store: the process's memory breakdown registry (memory.cc); sleepable
  store_init = 2,     // store: configuration rwlock (std::shared_mutex); sleepable
  store_slot = 4,     // store: per-slot lock bit; holder may sleep (decompression)
  stream = 6,         // store: compression stream mutex; holder may sleep (codec calls)
  frame = 10,         // per-frame isolation bit (the kernel's page lock); holder may sleep
  pool = 20,          // pool rwlock (kernel-faithful translation mode); spinning
  size_class = 30,    // per size class; spinning
  zspage = 40,        // ZsPageLock; read holders may sleep, writers atomic and try-only
  handle_table = 50,  // handle free-list shards (leaf); spinning
  frame_arena = 60,   // frame allocator (leaf); sleeping mutex, calls mmap/madvise
};

// How the holder of a lock must behave.
enum class LockKind : std::uint8_t {
  sleepable,  // holder may block
  spinning,   // holder is in atomic context: must not block
};

// Where a lock was taken: std::source_location's role (clang 14 lacks it), built from the
// __builtin_FILE/LINE/FUNCTION default arguments that GCC and clang both support.
struct SiteLoc {
  const char* file;
  unsigned ln;
  const char* func;
  static constexpr SiteLoc current(const char* f = __builtin_FILE(), unsigned l = __builtin_LINE(),
                                   const char* fn = __builtin_FUNCTION()) noexcept {
    return {f, l, fn};
  }
  constexpr const char* file_name() const noexcept { return file; }
  constexpr unsigned line() const noexcept { return ln; }
  constexpr const char* function_name() const noexcept { return func; }
};

#if UZRAM_DEBUG_LEVEL >= 2
inline constexpr bool kLockDebug = true;
namespace lockdep {
void acquire(LockLevel level, LockKind kind, const void* lock, const char* name, bool is_try,
             bool is_read, SiteLoc site);
void release(const void* lock, SiteLoc site);
void might_sleep(SiteLoc site);
// Depth of the calling thread's held-lock stack (tests).
int held_count();
}  // namespace lockdep
#else
inline constexpr bool kLockDebug = false;
namespace lockdep {
inline void acquire(LockLevel, LockKind, const void*, const char*, bool, bool, SiteLoc) {}
inline void release(const void*, SiteLoc) {}
inline void might_sleep(SiteLoc) {}
inline int held_count() { return 0; }
}  // namespace lockdep
#endif

// Called by every path that can block (frame allocation, waits, codec calls).
inline void might_sleep(SiteLoc site = SiteLoc::current()) { lockdep::might_sleep(site); }

}  // namespace uzram

#endif  // UZRAM_SYNC_LOCK_ORDER_H_

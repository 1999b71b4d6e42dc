// sync/lock_order.h - THE lock order (layer 1) and the debug-build checker.
//
// Locks are acquired in strictly increasing level. Two locks of the same level may be
// held together only if the later one was taken with a try_ call, or both are zspage
// *read* locks (safe: a reader only ever spins on a writer, and writers never wait).
// docs/locking.md#lock-inventory-and-order repeats this table with what each lock
// protects; change both in one commit. The enum lists exactly the locks the program takes
// (tests/lockorder drives each layer and checks that the checker counted its levels).
//
// At UZRAM_DEBUG_LEVEL >= 2 every lock records (level, address, name, site) on a per-thread
// stack *before* it blocks, so an inversion is reported, not deadlocked on. A non-try
// acquire that does not raise the level aborts, naming both locks and both acquisition
// sites. might_sleep() aborts when the thread holds a spinning lock or a zspage write lock
// (the kernel's "writers are atomic" rule). Every acquisition is counted per level
// (lockdep::acquisitions). Below level 2 everything here is an empty inline: zero cost in
// release builds.
#ifndef UZRAM_SYNC_LOCK_ORDER_H_
#define UZRAM_SYNC_LOCK_ORDER_H_

#include <cstdint>

#include "util/check.h"

namespace uzram {

// In acquisition order, outermost first. "Leaf": nothing is acquired under it.
enum class LockLevel : std::uint8_t {
  // The servers (src/nbd, the control socket, src/cli).
  control_stop = 4,  // control server's stop mutex; held while joining its loop thread
  nbd_server = 8,    // NBD server's connection list (Server::State::mu); log sink under it
  nbd_queue = 12,    // NBD session's request queue and byte budget (Session::mu_)
  nbd_send = 16,     // NBD session's socket write side (Session::send_mu_)
  nbd_stripe = 20,   // NBD backend's per-block stripe bits; held across store calls
  // The store (src/store).
  memory = 22,      // the process's memory breakdown registry (memory.cc); sleepable
  store_init = 24,  // configuration rwlock (ShardedRwMutex); sleepable
  store_slot = 28,  // per-slot lock bit; holder may sleep (decompression)
  stream = 32,      // compression stream mutex; holder may sleep (codec calls)
  wb_queue = 36,    // writeback's block-writer queue (leaf)
  backing = 40,     // backing device's block allocator (leaf; under the slot lock)
  // The pool (src/pool).
  frame = 48,         // per-frame isolation bit (the kernel's page lock); holder may sleep
  pool = 52,          // pool rwlock (kernel-faithful translation only); spinning
  size_class = 56,    // per size class; spinning
  zspage = 60,        // ZsPageLock; read holders may sleep, writers atomic and try-only
  handle_table = 64,  // handle-table growth mutex (leaf); sleepable, calls mmap
  frame_arena = 68,   // frame allocator (leaf); sleepable, calls mmap/madvise
  // Leaves that any layer may take last.
  worker = 72,    // a background worker's flags and timer (sync/worker.h)
  cli_load = 76,  // uzram load's shared error state (leaf)
  log_sink = 80,  // uzram serve's log output (leaf)
};

// Every level, in order (tests iterate over it).
inline constexpr LockLevel kLockLevels[] = {
    LockLevel::control_stop, LockLevel::nbd_server, LockLevel::nbd_queue,    LockLevel::nbd_send,
    LockLevel::nbd_stripe,   LockLevel::memory,       LockLevel::store_init, LockLevel::store_slot,   LockLevel::stream,
    LockLevel::wb_queue,     LockLevel::backing,    LockLevel::frame,        LockLevel::pool,
    LockLevel::size_class,   LockLevel::zspage,     LockLevel::handle_table, LockLevel::frame_arena,
    LockLevel::worker,       LockLevel::cli_load,   LockLevel::log_sink,
};
inline constexpr unsigned kMaxLockLevel = 128;  // every level is below this

constexpr const char* lock_level_name(LockLevel l) noexcept {
  switch (l) {
    case LockLevel::control_stop: return "control_stop";
    case LockLevel::nbd_server: return "nbd_server";
    case LockLevel::nbd_queue: return "nbd_queue";
    case LockLevel::nbd_send: return "nbd_send";
    case LockLevel::nbd_stripe: return "nbd_stripe";
    case LockLevel::memory: return "memory";
    case LockLevel::store_init: return "store_init";
    case LockLevel::store_slot: return "store_slot";
    case LockLevel::stream: return "stream";
    case LockLevel::wb_queue: return "wb_queue";
    case LockLevel::backing: return "backing";
    case LockLevel::frame: return "frame";
    case LockLevel::pool: return "pool";
    case LockLevel::size_class: return "size_class";
    case LockLevel::zspage: return "zspage";
    case LockLevel::handle_table: return "handle_table";
    case LockLevel::frame_arena: return "frame_arena";
    case LockLevel::worker: return "worker";
    case LockLevel::cli_load: return "cli_load";
    case LockLevel::log_sink: return "log_sink";
  }
  return "?";
}

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
// Checks the order against the locks the thread holds, then records the lock as held.
// Blocking locks call it before they wait.
void acquire(LockLevel level, LockKind kind, const void* lock, const char* name, bool is_try,
             bool is_read, SiteLoc site);
void release(const void* lock, SiteLoc site);
void might_sleep(SiteLoc site);
// Depth of the calling thread's held-lock stack (tests).
int held_count();
// Whether the calling thread holds `lock` (assert_held()).
bool holds(const void* lock);
// Acquisitions of `level` so far, by every thread. Exact for threads that have exited;
// a live thread's count is published at its first acquisition of the level and then
// every 64, so it may lag by at most 63 per thread (never "0" once taken).
std::uint64_t acquisitions(LockLevel level);
}  // namespace lockdep
#else
inline constexpr bool kLockDebug = false;
namespace lockdep {
inline void acquire(LockLevel, LockKind, const void*, const char*, bool, bool, SiteLoc) {}
inline void release(const void*, SiteLoc) {}
inline void might_sleep(SiteLoc) {}
inline int held_count() { return 0; }
inline bool holds(const void*) { return true; }
inline std::uint64_t acquisitions(LockLevel) { return 0; }
}  // namespace lockdep
#endif

// Called by every path that can block (frame allocation, waits, codec calls).
inline void might_sleep(SiteLoc site = SiteLoc::current()) { lockdep::might_sleep(site); }

}  // namespace uzram

#endif  // UZRAM_SYNC_LOCK_ORDER_H_

// sync/lock_order.cc - the per-thread held-lock stack and the per-level acquisition counts
// behind lock_order.h (debug builds).
#include "sync/lock_order.h"

#if UZRAM_DEBUG_LEVEL >= 2

#include <atomic>

namespace uzram::lockdep {
namespace {

struct Held {
  LockLevel level;
  LockKind kind;
  bool is_read;
  const void* lock;
  const char* name;
  SiteLoc site;
};

constexpr int kMaxHeld = 32;
constexpr std::uint32_t kPublishEvery = 64;

// Acquisitions per level by every thread. relaxed: counts for tests, read after the
// threads they count have published (or exited); no ordering with anything else.
std::atomic<std::uint64_t> g_acquired[kMaxLockLevel];

struct HeldStack {
  Held held[kMaxHeld];
  int depth = 0;
  // Acquisitions not yet added to g_acquired, and whether the level was ever published by
  // this thread (the first acquisition is published at once).
  std::uint32_t pending[kMaxLockLevel] = {};
  bool published[kMaxLockLevel] = {};

  void count(LockLevel level) noexcept;
  void flush() noexcept {
    for (unsigned i = 0; i < kMaxLockLevel; i++) {
      if (pending[i]) g_acquired[i].fetch_add(pending[i], std::memory_order_relaxed);
      pending[i] = 0;
    }
  }
};

// Trivially destructible and constant-initialised: usable until the thread is gone, even
// from other thread_local or static destructors that take locks.
thread_local HeldStack t_stack;

// Publishes the thread's pending counts when it exits. Constructed (so its destructor
// registered) at the thread's first published acquisition.
struct FlushAtExit {
  ~FlushAtExit() { t_stack.flush(); }
};
thread_local FlushAtExit t_flush_at_exit;

void HeldStack::count(LockLevel level) noexcept {
  const unsigned i = static_cast<unsigned>(level);
  if (++pending[i] < kPublishEvery && published[i]) return;
  if (!published[i]) (void)&t_flush_at_exit;
  g_acquired[i].fetch_add(pending[i], std::memory_order_relaxed);
  pending[i] = 0;
  published[i] = true;
}

static_assert([] {
  for (LockLevel l : kLockLevels) {
    if (static_cast<unsigned>(l) >= kMaxLockLevel) return false;
  }
  return true;
}());

}  // namespace

void acquire(LockLevel level, LockKind kind, const void* lock, const char* name, bool is_try,
             bool is_read, SiteLoc site) {
  HeldStack& s = t_stack;
  for (int i = 0; i < s.depth; i++) {
    const Held& h = s.held[i];
    if (h.lock == lock && !(is_read && h.is_read && level == LockLevel::zspage)) {
      ZS_FATAL("lock order: recursive acquire of %s (%s) at %s:%u; already held since %s:%u", name,
               lock_level_name(level), site.file_name(), site.line(), h.site.file_name(),
               h.site.line());
    }
    if (is_try || h.level < level) continue;
    if (h.level == level && level == LockLevel::zspage && is_read && h.is_read) continue;
    ZS_FATAL(
        "lock order violation: acquiring %s (level %s=%d) at %s:%u while holding %s (level "
        "%s=%d) acquired at %s:%u",
        name, lock_level_name(level), static_cast<int>(level), site.file_name(), site.line(),
        h.name, lock_level_name(h.level), static_cast<int>(h.level), h.site.file_name(),
        h.site.line());
  }
  ZS_CHECK(s.depth < kMaxHeld, "lock order: more than %d locks held", kMaxHeld);
  s.held[s.depth++] = Held{level, kind, is_read, lock, name, site};
  s.count(level);
}

void release(const void* lock, SiteLoc site) {
  HeldStack& s = t_stack;
  for (int i = s.depth - 1; i >= 0; i--) {
    if (s.held[i].lock != lock) continue;
    for (int j = i; j + 1 < s.depth; j++) s.held[j] = s.held[j + 1];
    s.depth--;
    return;
  }
  ZS_FATAL("lock order: release at %s:%u of a lock this thread does not hold (%p)",
           site.file_name(), site.line(), lock);
}

void might_sleep(SiteLoc site) {
  const HeldStack& s = t_stack;
  for (int i = 0; i < s.depth; i++) {
    const Held& h = s.held[i];
    const bool atomic =
        h.kind == LockKind::spinning || (h.level == LockLevel::zspage && !h.is_read);
    if (!atomic) continue;
    ZS_FATAL(
        "might_sleep: a path that can block was entered at %s:%u (%s) while holding %s "
        "(%s, %s) acquired at %s:%u",
        site.file_name(), site.line(), site.function_name(), h.name, lock_level_name(h.level),
        h.level == LockLevel::zspage ? "zspage write lock" : "spinning lock", h.site.file_name(),
        h.site.line());
  }
}

int held_count() { return t_stack.depth; }

bool holds(const void* lock) {
  const HeldStack& s = t_stack;
  for (int i = 0; i < s.depth; i++) {
    if (s.held[i].lock == lock) return true;
  }
  return false;
}

std::uint64_t acquisitions(LockLevel level) {
  const unsigned i = static_cast<unsigned>(level);
  return g_acquired[i].load(std::memory_order_relaxed) + t_stack.pending[i];
}

}  // namespace uzram::lockdep

#endif  // UZRAM_DEBUG_LEVEL >= 2

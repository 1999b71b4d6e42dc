// sync/lock_order.cc - the per-thread held-lock stack behind lock_order.h (debug builds).
#include "sync/lock_order.h"

#if UZRAM_DEBUG_LEVEL >= 2

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

struct HeldStack {
  Held held[kMaxHeld];
  int depth = 0;
};

thread_local HeldStack t_stack;

const char* level_name(LockLevel l) {
  switch (l) {
    case LockLevel::memory: return "memory";
    case LockLevel::store_init: return "store_init";
    case LockLevel::store_slot: return "store_slot";
    case LockLevel::stream: return "stream";
    case LockLevel::frame: return "frame";
    case LockLevel::pool: return "pool";
    case LockLevel::size_class: return "size_class";
    case LockLevel::zspage: return "zspage";
    case LockLevel::handle_table: return "handle_table";
    case LockLevel::frame_arena: return "frame_arena";
  }
  return "?";
}

}  // namespace

void acquire(LockLevel level, LockKind kind, const void* lock, const char* name, bool is_try,
             bool is_read, SiteLoc site) {
  HeldStack& s = t_stack;
  for (int i = 0; i < s.depth; i++) {
    const Held& h = s.held[i];
    if (h.lock == lock && !(is_read && h.is_read && level == LockLevel::zspage)) {
      ZS_FATAL("lock order: recursive acquire of %s (%s) at %s:%u; already held since %s:%u",
               name, level_name(level), site.file_name(), site.line(), h.site.file_name(),
               h.site.line());
    }
    if (is_try || h.level < level) continue;
    if (h.level == level && level == LockLevel::zspage && is_read && h.is_read) continue;
    ZS_FATAL(
        "lock order violation: acquiring %s (level %s=%d) at %s:%u while holding %s (level "
        "%s=%d) acquired at %s:%u",
        name, level_name(level), static_cast<int>(level), site.file_name(), site.line(), h.name,
        level_name(h.level), static_cast<int>(h.level), h.site.file_name(), h.site.line());
  }
  ZS_CHECK(s.depth < kMaxHeld, "lock order: more than %d locks held", kMaxHeld);
  s.held[s.depth++] = Held{level, kind, is_read, lock, name, site};
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
    const bool atomic = h.kind == LockKind::spinning ||
                        (h.level == LockLevel::zspage && !h.is_read);
    if (!atomic) continue;
    ZS_FATAL("might_sleep: a path that can block was entered at %s:%u (%s) while holding %s "
             "(%s, %s) acquired at %s:%u",
             site.file_name(), site.line(), site.function_name(), h.name, level_name(h.level),
             h.level == LockLevel::zspage ? "zspage write lock" : "spinning lock",
             h.site.file_name(), h.site.line());
  }
}

int held_count() { return t_stack.depth; }

}  // namespace uzram::lockdep

#endif  // UZRAM_DEBUG_LEVEL >= 2

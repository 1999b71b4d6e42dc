// sync/spin.h - cpu_relax() and a bounded spin-then-yield backoff (layer 1).
#ifndef UZRAM_SYNC_SPIN_H_
#define UZRAM_SYNC_SPIN_H_

#include <sched.h>

namespace uzram {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Spin a little, then give the CPU away: a userspace holder of a spinning lock can be
// preempted, and burning our time slice would only delay it.
class Backoff {
 public:
  void pause() noexcept {
    if (++n_ < 64) {
      cpu_relax();
    } else {
      sched_yield();
    }
  }

 private:
  unsigned n_ = 0;
};

}  // namespace uzram

#endif  // UZRAM_SYNC_SPIN_H_

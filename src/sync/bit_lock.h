// sync/bit_lock.h - a sleepable lock living in one bit of an atomic word (layer 1): the
// userspace analogue of wait_on_bit_lock / clear_and_wake_up_bit. Costs zero extra bytes.
// Used for frame isolation locks here, and for zram slot locks above.
//
// lock() waits with std::atomic::wait (a futex); try_lock() never waits; unlock() clears
// the bit and wakes waiters. The other bits of the word are left alone.
#ifndef UZRAM_SYNC_BIT_LOCK_H_
#define UZRAM_SYNC_BIT_LOCK_H_

#include <atomic>
#include <cstdint>

#include "sync/lock_order.h"

namespace uzram {

template <typename Word>
[[nodiscard]] inline bool bit_try_lock(std::atomic<Word>& w, Word bit) noexcept {
  // acquire: pairs with the release in bit_unlock().
  return (w.fetch_or(bit, std::memory_order_acquire) & bit) == 0;
}

template <typename Word>
inline void bit_lock(std::atomic<Word>& w, Word bit, SiteLoc site = SiteLoc::current()) noexcept {
  might_sleep(site);
  for (;;) {
    const Word v = w.load(std::memory_order_relaxed);
    if (!(v & bit)) {
      if (bit_try_lock(w, bit)) return;
      continue;
    }
    w.wait(v, std::memory_order_relaxed);
  }
}

template <typename Word>
inline void bit_unlock(std::atomic<Word>& w, Word bit) noexcept {
  // release: pairs with the acquire in bit_try_lock().
  w.fetch_and(static_cast<Word>(~bit), std::memory_order_release);
  w.notify_all();
}

// Takes every bit of `mask` at once: waits until all of them are clear, then sets them
// with one compare-and-swap. Release with bit_unlock(w, mask). Several words are taken in
// a fixed order (lowest address first) by whoever holds more than one.
template <typename Word>
inline void bits_lock(std::atomic<Word>& w, Word mask, SiteLoc site = SiteLoc::current()) noexcept {
  might_sleep(site);
  Word v = w.load(std::memory_order_relaxed);
  for (;;) {
    if (v & mask) {
      w.wait(v, std::memory_order_relaxed);
      v = w.load(std::memory_order_relaxed);
      continue;
    }
    // acquire: pairs with the release in bit_unlock().
    if (w.compare_exchange_weak(v, v | mask, std::memory_order_acquire,
                                std::memory_order_relaxed)) {
      return;
    }
  }
}

// Waits until `bit` is clear, without taking it.
template <typename Word>
inline void bit_wait_clear(std::atomic<Word>& w, Word bit, SiteLoc site = SiteLoc::current()) noexcept {
  might_sleep(site);
  for (Word v = w.load(std::memory_order_acquire); v & bit; v = w.load(std::memory_order_acquire)) {
    w.wait(v, std::memory_order_relaxed);
  }
}

}  // namespace uzram

#endif  // UZRAM_SYNC_BIT_LOCK_H_

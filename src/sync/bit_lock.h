// sync/bit_lock.h - a sleepable lock living in one bit of an atomic word (layer 1): the
// userspace analogue of wait_on_bit_lock / clear_and_wake_up_bit. Costs zero extra bytes.
// Used for frame isolation locks here, and for zram slot locks above.
//
// BitLock<Traits> is the lock as a member of the annotated family (a capability that
// carries its level and name, sync/mutex.h); the free functions below are its raw
// operations, for code that takes a *set* of bit locks at once (all frames of a zspage,
// a run of NBD stripes), which the analysis cannot name as one capability: such code
// registers each lock with the checker itself.
//
// lock() waits with std::atomic::wait (a futex); try_lock() never waits; unlock() clears
// the bit and wakes waiters. The other bits of the word are left alone.
#ifndef UZRAM_SYNC_BIT_LOCK_H_
#define UZRAM_SYNC_BIT_LOCK_H_

#include <atomic>
#include <cstdint>

#include "sync/annotations.h"
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
inline void bit_wait_clear(std::atomic<Word>& w, Word bit,
                           SiteLoc site = SiteLoc::current()) noexcept {
  might_sleep(site);
  for (Word v = w.load(std::memory_order_acquire); v & bit; v = w.load(std::memory_order_acquire)) {
    w.wait(v, std::memory_order_relaxed);
  }
}

// One bit of a word that also holds its owner's data. Traits: `Word` (an unsigned type),
// `kBit` (the lock bit), `kLevel` (its LockLevel) and `kName`. Layout: exactly the atomic
// word, so an array of them may live in zero-filled mmap'ed memory (all unlocked).
template <typename Traits>
class ZS_CAPABILITY("bit lock") BitLock {
 public:
  using Word = typename Traits::Word;
  static constexpr Word kBit = Traits::kBit;

  BitLock() noexcept = default;
  BitLock(const BitLock&) = delete;
  BitLock& operator=(const BitLock&) = delete;

  // The whole word: the lock bit and the owner's data bits. Data writers that keep the
  // lock bit as it is need not hold the lock (the owner's rules say who may write them).
  std::atomic<Word>& word() noexcept { return w_; }
  const std::atomic<Word>& word() const noexcept { return w_; }

  // Checks the order (and that the caller may sleep), then waits for the bit.
  void lock(SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE() {
    lockdep::acquire(Traits::kLevel, LockKind::sleepable, this, Traits::kName, false, false, site);
    bit_lock(w_, kBit, site);
  }
  [[nodiscard]] bool try_lock(SiteLoc site = SiteLoc::current()) noexcept ZS_TRY_ACQUIRE(true) {
    if (!bit_try_lock(w_, kBit)) return false;
    lockdep::acquire(Traits::kLevel, LockKind::sleepable, this, Traits::kName, true, false, site);
    return true;
  }
  void unlock(SiteLoc site = SiteLoc::current()) noexcept ZS_RELEASE() {
    lockdep::release(this, site);
    bit_unlock(w_, kBit);
  }
  // Waits until the bit is clear, without taking it (the caller holds no spinning lock).
  void wait_unlocked(SiteLoc site = SiteLoc::current()) noexcept { bit_wait_clear(w_, kBit, site); }
  // Snapshot (relaxed: advisory).
  bool is_locked() const noexcept { return (w_.load(std::memory_order_relaxed) & kBit) != 0; }

 private:
  std::atomic<Word> w_{0};
};

}  // namespace uzram

#endif  // UZRAM_SYNC_BIT_LOCK_H_

// store/slot.h - Slot: one 4 KiB block's entry in the slot table (layer 3), 16 bytes.
//
//   handle  (8 bytes): the pool handle; or the fill word of a same-filled block; or the
//                      backing-device block of a written-back block.
//   flags   (4 bytes): bits 0..12 object size (0..4096), then the kernel's flags:
//                      13 SAME, 14 LOCK (the slot lock), 15 WB, 16 PP_SLOT, 17 HUGE,
//                      18 IDLE, 19 INCOMPRESSIBLE, 20..21 compression priority,
//                      22 WB_COMPRESSED (uzram: the backing copy holds compressed bytes).
//   ac_time (4 bytes): last access, seconds since the store was initialised.
// Invariants: 1. allocated (size != 0 or SAME or WB) slots only have a handle meaning.
//   2. SAME, WB and a pool object are mutually exclusive; HUGE => size == 4096.
//
// The slot lock is the LOCK bit (sync/bit_lock.h): sleepable, futex wait. It protects the
// handle, size, flags and ac_time of the slot; held across decompression on reads, not
// across compression on writes (docs/store.md#write). Level: store_slot - taken before any
// pool lock. Every field is atomic because stats and block_state read them without it
// (relaxed, advisory); writers hold the lock.
#ifndef UZRAM_STORE_SLOT_H_
#define UZRAM_STORE_SLOT_H_

#include <atomic>
#include <cstdint>

#include "sync/bit_lock.h"

namespace uzram {

namespace slotf {
inline constexpr std::uint32_t kSizeMask = (1u << 13) - 1;
inline constexpr std::uint32_t kSame = 1u << 13;
inline constexpr std::uint32_t kLock = 1u << 14;
inline constexpr std::uint32_t kWb = 1u << 15;
inline constexpr std::uint32_t kPpSlot = 1u << 16;
inline constexpr std::uint32_t kHuge = 1u << 17;
inline constexpr std::uint32_t kIdle = 1u << 18;
inline constexpr std::uint32_t kIncompressible = 1u << 19;
inline constexpr unsigned kPrioShift = 20;
inline constexpr std::uint32_t kPrioMask = 3u << kPrioShift;
inline constexpr std::uint32_t kWbCompressed = 1u << 22;
}  // namespace slotf

// A capability of the annotated family (sync/mutex.h): functions that need the slot lock
// say ZS_REQUIRES(slot). The lock is taken by hand (not a BitLock member) because the
// LOCK bit shares the flags word with the slot's data.
struct ZS_CAPABILITY("slot lock") Slot {
  std::atomic<std::uint64_t> handle{0};
  std::atomic<std::uint32_t> flags{0};
  std::atomic<std::uint32_t> ac_time{0};

  void lock(SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE() {
    lockdep::acquire(LockLevel::store_slot, LockKind::sleepable, this, "slot", false, false, site);
    bit_lock(flags, slotf::kLock, site);
  }
  [[nodiscard]] bool try_lock(SiteLoc site = SiteLoc::current()) noexcept ZS_TRY_ACQUIRE(true) {
    if (!bit_try_lock(flags, slotf::kLock)) return false;
    lockdep::acquire(LockLevel::store_slot, LockKind::sleepable, this, "slot", true, false, site);
    return true;
  }
  void unlock(SiteLoc site = SiteLoc::current()) noexcept ZS_RELEASE() {
    lockdep::release(this, site);
    bit_unlock(flags, slotf::kLock);
  }

  // Accessors for the lock holder (relaxed: the lock orders them).
  std::uint32_t get() const noexcept { return flags.load(std::memory_order_relaxed); }
  void set(std::uint32_t f) noexcept { flags.store(f | slotf::kLock, std::memory_order_relaxed); }
  std::uint32_t size() const noexcept { return get() & slotf::kSizeMask; }
  unsigned prio() const noexcept { return (get() & slotf::kPrioMask) >> slotf::kPrioShift; }
  bool allocated() const noexcept {
    return (get() & (slotf::kSizeMask | slotf::kSame | slotf::kWb)) != 0;
  }
};

static_assert(sizeof(Slot) == 16, "the slot table costs 16 bytes per block");

}  // namespace uzram

#endif  // UZRAM_STORE_SLOT_H_

// store/slot.h - Slot: one 4 KiB block's entry in the slot table (layer 3), 16 bytes.
//
//   handle  (8 bytes): the pool handle; or the fill word of a same-filled block; or the
//                      backing-device block of a written-back block.
//   flags   (4 bytes): bits 0..16 object size (0..131071: a unit's object is up to 64 KiB),
//                      then the kernel's flags: 17 SAME, 18 LOCK (the slot lock), 19 WB,
//                      20 PP_SLOT, 21 HUGE, 22 IDLE, 23 INCOMPRESSIBLE, 24..25 compression
//                      priority, 26 WB_COMPRESSED (uzram: the backing copy holds compressed
//                      bytes), 27 UNIT, 28 MEMBER (compression units, below).
//   ac_time (4 bytes): last access, seconds since the store was initialised.
// Invariants: 1. allocated (size != 0 or SAME or WB) slots only have a handle meaning.
//   2. SAME, WB and a pool object are mutually exclusive; HUGE => size == 4096 (a block)
//      or the unit size (a unit's head).
//
// Units (unit_size > 4K, N = unit_size / 4096 blocks; docs/units.md#indexing-the-rfcs): the
// head slot (index multiple of N) of a stored unit has UNIT, the handle and size of the
// unit's object (raw: the unit size, with HUGE), its priority, IDLE and PP_SLOT. Each block
// whose data lives in the object has MEMBER (the head too, unless its block was freed); a
// slot of a stored unit holds nothing else of its own. Head + 1's handle word holds the
// unit's version (store-wide counter, bumped at every publication) << 8 | the partial
// writes it took in place (kPartialMask). With N = 1 no slot ever has UNIT or MEMBER.
//
// The slot lock is the LOCK bit (sync/bit_lock.h): sleepable, futex wait. It protects the
// handle, size, flags and ac_time of the slot; held across decompression on reads, not
// across compression on writes (docs/store.md#write). Level: store_slot - taken before any
// pool lock. Every field is atomic because stats and block_state read them without it
// (relaxed, advisory); writers hold the lock. On a unit store a block's lock is its unit
// lock: the LOCK bit of the head slot of its aligned range (StoreImpl::unit_lock), for
// every block of the range, member or not; the other slots' LOCK bits are never taken, and
// their fields are written under the head's (docs/locking.md#store-units).
#ifndef UZRAM_STORE_SLOT_H_
#define UZRAM_STORE_SLOT_H_

#include <atomic>
#include <cstdint>

#include "sync/bit_lock.h"
#include "util/check.h"

namespace uzram {

namespace slotf {
inline constexpr std::uint32_t kSizeMask = (1u << 17) - 1;
inline constexpr std::uint32_t kSame = 1u << 17;
inline constexpr std::uint32_t kLock = 1u << 18;
inline constexpr std::uint32_t kWb = 1u << 19;
inline constexpr std::uint32_t kPpSlot = 1u << 20;
inline constexpr std::uint32_t kHuge = 1u << 21;
inline constexpr std::uint32_t kIdle = 1u << 22;
inline constexpr std::uint32_t kIncompressible = 1u << 23;
inline constexpr unsigned kPrioShift = 24;
inline constexpr std::uint32_t kPrioMask = 3u << kPrioShift;
inline constexpr std::uint32_t kWbCompressed = 1u << 26;
inline constexpr std::uint32_t kUnit = 1u << 27;    // head slot of a stored unit
inline constexpr std::uint32_t kMember = 1u << 28;  // the block's data is in its unit's object
// What a slot may hold (for_each_stored_slot visits these): an object, a fill word, a
// backing block, or a share of its unit's object.
inline constexpr std::uint32_t kStored = kSizeMask | kSame | kWb | kMember;
// Head + 1's handle word of a unit: version << kVersionShift | partial writes in place.
inline constexpr unsigned kVersionShift = 8;
inline constexpr std::uint64_t kPartialMask = (1u << kVersionShift) - 1;

// Whether the block of a slot with flags f holds data: a member of its unit, or anything
// of its own (a unit's head that is not a member holds its unit's object, not data).
constexpr bool block_holds(std::uint32_t f) noexcept {
  return (f & kMember) || ((f & (kSizeMask | kSame | kWb)) && !(f & kUnit));
}
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

  // Says that this slot is held through `unit`, its unit lock (held by the caller; the
  // same slot when N = 1 or this is the head): for the analysis, this slot's fields may be
  // written now (docs/locking.md#store-units). Checks that `unit` is held.
  void held_by(const Slot& unit) const noexcept ZS_ASSERT_CAPABILITY(this) {
    (void)unit;
    ZS_DCHECK(unit.flags.load(std::memory_order_relaxed) & slotf::kLock,
              "slot used without its unit lock");
    ZS_DCHECK(lockdep::holds(&unit), "unit lock not held by this thread");
  }

  // Accessors for the lock holder (relaxed: the lock orders them).
  std::uint32_t get() const noexcept { return flags.load(std::memory_order_relaxed); }
  // Writes the flags, keeping the slot's own LOCK bit as it is: set on a slot whose lock the
  // caller holds, clear on a unit's other slots (held through the head's lock, held_by).
  void set(std::uint32_t f) noexcept {
    const std::uint32_t lock = flags.load(std::memory_order_relaxed) & slotf::kLock;
    flags.store((f & ~slotf::kLock) | lock, std::memory_order_relaxed);
  }
  std::uint32_t size() const noexcept { return get() & slotf::kSizeMask; }
  unsigned prio() const noexcept { return (get() & slotf::kPrioMask) >> slotf::kPrioShift; }
  bool allocated() const noexcept {
    return (get() & (slotf::kSizeMask | slotf::kSame | slotf::kWb)) != 0;
  }
};

static_assert(sizeof(Slot) == 16, "the slot table costs 16 bytes per block");

}  // namespace uzram

#endif  // UZRAM_STORE_SLOT_H_

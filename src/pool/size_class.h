// pool/size_class.h - SizeClass: one real size class's lock, fullness lists and stats
// (layer 2).
//
// Thread safety: everything below `lock` is guarded by it (ZS_GUARDED_BY); the fields
// of this class's zspages that it also guards are listed in pool/zspage.h.
// Invariants: 1. bit g of nonempty == (heads[g] != 0). 2. zspages_in[g] == length of list g.
//   3. obj_allocated == sum over this class's live zspages of objs_per_zspage;
//      obj_used == sum of inuse (live = listed, isolated or deferred).
//   4. spares == length of the spare list; every spare is in state free with inuse 0.
//   5. room_hint == ((nonempty & kRoomMask) != 0) whenever lock is free.
#ifndef UZRAM_POOL_SIZE_CLASS_H_
#define UZRAM_POOL_SIZE_CLASS_H_

#include <atomic>
#include <cstdint>

#include "pool/zspage.h"
#include "sync/spin_lock.h"
#include "uzram/pool.h"

namespace uzram {

struct alignas(64) SizeClass {
  // Immutable after construction (read by every read_begin/write: kept on its own cache
  // line, away from the lock word that allocators and compactors write):
  std::uint16_t index = 0;
  std::uint32_t size = 0;  // a run class's: frames * 4096, up to 65536
  std::uint16_t objs_per_zspage = 0;
  std::uint8_t pages_per_zspage = 0;
  bool huge = false;

  // Protects: the fields below, and inuse/fresh/free_head/fullness/state/prev/next and
  // the parked handle entries (the free lists) of every zspage of this class. Level: size_class
  // (after pool, before zspage). Spinning: never held across anything that can block (frame
  // allocation happens unlocked).
  alignas(64) SpinLock lock{LockLevel::size_class, "size_class"};

  std::uint16_t nonempty ZS_GUARDED_BY(lock) = 0;  // bit g: list g non-empty
  // (nonempty & kRoomMask) != 0: some listed zspage has a free slot. Written under lock
  // (relaxed) whenever nonempty changes; read without it only as a hint by a tail looking
  // for a larger class with room, which re-checks under the lock (docs/locking.md#alloc).
  std::atomic<bool> room_hint{false};
  // Live tails of this class placed in a larger class
  // (docs/units.md#tails-in-a-larger-class): a class with kTailSpillZspages of its
  // zspages' worth out keeps the rest until some come back (freed). Relaxed: a
  // heuristic's counter, ordered with nothing (racing allocators may pass the cap by one).
  std::atomic<std::uint32_t> tails_out{0};
  ZsPageId heads[kNumFullnessGroups] ZS_GUARDED_BY(lock) = {};
  std::uint64_t zspages_in[kNumFullnessGroups] ZS_GUARDED_BY(lock) = {};
  std::uint64_t obj_allocated ZS_GUARDED_BY(lock) = 0;
  std::uint64_t obj_used ZS_GUARDED_BY(lock) = 0;
  // Descriptors of emptied zspages with their parked chains, linked by ZsPage::next.
  ZsPageId spare ZS_GUARDED_BY(lock) = 0;
  ZsPageId spare_tail ZS_GUARDED_BY(lock) = 0;  // the last spare (reused last), 0 = none
  std::uint64_t spares ZS_GUARDED_BY(lock) = 0;

  // Frames compaction could free (the kernel's zs_can_compact).
  std::uint64_t freeable_locked() const noexcept ZS_REQUIRES(lock) {
    return (obj_allocated - obj_used) / objs_per_zspage * pages_per_zspage;
  }
};

}  // namespace uzram

#endif  // UZRAM_POOL_SIZE_CLASS_H_

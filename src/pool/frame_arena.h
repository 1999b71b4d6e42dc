// pool/frame_arena.h - FrameArena: 4 KiB frames carved from one mmap'ed reservation
// (layer 2), the userspace counterpart of the kernel's order-0 pages. A frame id plays the
// role of a PFN.
//
// Freed frames stay resident as *idle* frames and are handed out again before any other
// (no page fault, no zeroing by the kernel). They go back to the OS (madvise
// MADV_DONTNEED) by a decay policy (jemalloc's dirty decay, docs/design.md#frames): the
// number of idle frames allowed falls along a smoothstep curve from every frame freed just
// now to none of those freed decay_ms ago; a background worker (sync/worker.h, a timer
// armed while idle frames exist) returns the excess, in batches of sorted, coalesced runs.
// So a pool that stops being used is back at total_pages within decay_ms, and one that
// frees and refills within decay_ms never faults its frames in again.
//
// Huge pages (docs/design.md#frames): the reservation is 2 MiB-aligned and marked
// MADV_NOHUGEPAGE, so khugepaged never collapses it; with huge pages on, the arena takes
// fresh memory a 2 MiB region at a time, populated as one transparent huge page
// (MADV_HUGEPAGE, MADV_POPULATE_WRITE, MADV_NOHUGEPAGE again), and keeps its idle frames
// per region (FrameRegions): allocation refills the fullest region first, the decay
// returns wholly idle regions whole.
//
// Each frame also has a 4-byte FrameInfo word:
//   bits 0..27  owner zspage id (0 = not owned)      - written under the owner's class lock
//   bit  30     isolated: the frame lock (migration), - FrameInfo's BitLock (sleepable holder)
//   bit  31     allocated (out of the arena)          - written under arena lock_
//
// Thread safety: alloc/free take lock_ (level frame_arena, a leaf, sleepable: it calls
// mmap/madvise, so it is never taken under a spinning lock). address() and info() are
// lock-free: frame memory and the info table never move. The frame lock is a capability
// (isolate one frame: FrameInfo::try_lock); try_isolate()/end_isolation() take and drop
// the locks of a set of frames (a zspage's), which the analysis cannot name as one.
#ifndef UZRAM_POOL_FRAME_ARENA_H_
#define UZRAM_POOL_FRAME_ARENA_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "pool/frame_regions.h"
#include "pool/geometry.h"
#include "sync/annotations.h"
#include "sync/bit_lock.h"
#include "sync/mutex.h"
#include "sync/worker.h"
#include "util/check.h"
#include "uzram/result.h"

namespace uzram {

using FrameId = std::uint32_t;

inline constexpr std::uint32_t kFrameOwnerMask = (1u << 28) - 1;
inline constexpr std::uint32_t kFrameIsolated = 1u << 30;
inline constexpr std::uint32_t kFrameAllocated = 1u << 31;

struct FrameLockTraits {
  using Word = std::uint32_t;
  static constexpr Word kBit = kFrameIsolated;
  static constexpr LockLevel kLevel = LockLevel::frame;
  static constexpr const char* kName = "frame";
};
// A frame's info word (layout above); its isolation bit is the frame lock.
using FrameInfo = BitLock<FrameLockTraits>;
static_assert(sizeof(FrameInfo) == 4);

class FrameArena {
 public:
  FrameArena() noexcept;
  ~FrameArena();
  FrameArena(const FrameArena&) = delete;
  FrameArena& operator=(const FrameArena&) = delete;

  // Reserves address space for max_bytes of frames. `keep_frames` idle frames stay
  // resident whatever their age; `decay_ms` is the decay period (0: frames beyond
  // keep_frames go back at once, in free()). `prefault`: every frame is made resident now
  // (MADV_POPULATE_WRITE). `huge_pages`: populate whole 2 MiB regions as transparent huge
  // pages (only with decay_ms != 0, without prefault, where THP is not "never"). Errors:
  // no_memory (prefault included), invalid_argument.
  [[nodiscard]] Result<void> init(std::size_t max_bytes, std::size_t keep_frames,
                                  std::uint32_t decay_ms, bool prefault = false,
                                  bool huge_pages = false) noexcept;

  // Allocates n (<= 64) frames into out[]: idle frames first (from the fullest region,
  // lowest first), then the lowest free ids (a wholly free region is populated whole with
  // huge pages on), then fresh ones. Errors: no_memory.
  [[nodiscard]] Result<void> alloc(FrameId* out, unsigned n) noexcept ZS_EXCLUDES(lock_);
  // Allocates one frame below `below` if one is free (for pack()); else no_memory.
  [[nodiscard]] Result<FrameId> alloc_below(FrameId below) noexcept ZS_EXCLUDES(lock_);
  // Frees frames: they become idle (cache == true) or go back to the OS at once (migration
  // by pack() passes false: a frame it vacates should leave the arena), unless keep_frames
  // covers the whole arena: such an arena (swap, docs/uzram-serve.md#swap) keeps them all.
  void free(const FrameId* ids, unsigned n, bool cache = true) noexcept ZS_EXCLUDES(lock_);
  // Returns every idle frame to the OS now; returns how many.
  std::size_t release_idle() noexcept ZS_EXCLUDES(lock_);

  std::byte* address(FrameId id) const noexcept {
    return base_ + (static_cast<std::size_t>(id) << kFrameShift);
  }
  FrameInfo& info(FrameId id) const noexcept { return info_[id]; }
  // Frame locks of a set of frames (a zspage's), try only: takes all of ids[0..n) and
  // returns n, or none and returns the index of the first busy one. The checker sees each.
  // (Inline: on the path of every free that empties a zspage.)
  unsigned try_isolate(const FrameId* ids, unsigned n,
                       SiteLoc site = SiteLoc::current()) const noexcept {
    for (unsigned k = 0; k < n; k++) {
      FrameInfo& fi = info_[ids[k]];
      if (!bit_try_lock(fi.word(), kFrameIsolated)) {
        end_isolation(ids, k, site);
        return k;
      }
      lockdep::acquire(LockLevel::frame, LockKind::sleepable, &fi, "frame", true, false, site);
    }
    return n;
  }
  // Drops the frame locks of ids[0..n) (taken by try_isolate), waking waiters.
  void end_isolation(const FrameId* ids, unsigned n,
                     SiteLoc site = SiteLoc::current()) const noexcept {
    for (unsigned k = 0; k < n; k++) {
      lockdep::release(&info_[ids[k]], site);
      bit_unlock(info_[ids[k]].word(), kFrameIsolated);
    }
  }
  // Drops the frame lock of `id` (taken by try_isolate) by storing `value` (isolation bit
  // clear) into its info word: a zspage free clears the owner with it.
  void end_isolation_store(FrameId id, std::uint32_t value,
                           SiteLoc site = SiteLoc::current()) const noexcept {
    ZS_DCHECK(!(value & kFrameIsolated), "frame %u: the store must end the isolation", id);
    lockdep::release(&info_[id], site);
    // release: pairs with the acquire owner load in migration (it sees "not owned") and
    // with the acquire of the next frame lock.
    info_[id].word().store(value, std::memory_order_release);
  }
  // 1 + the highest frame handed out and not returned since: frames in use are below it
  // (idle frames of a populated region may lie above it).
  FrameId high_water() const noexcept { return high_water_.load(std::memory_order_relaxed); }
  std::size_t max_frames() const noexcept { return max_frames_; }
  // The frame table plus the region table's pages below the high-water mark.
  std::size_t metadata_bytes() const noexcept {
    const std::size_t hw = high_water();
    return hw * 4 + ((FrameRegions::table_bytes(hw) + kFrameSize - 1) & ~(kFrameSize - 1));
  }
  // Resident bytes of the frames (mincore): in a zspage (allocated), and the rest (idle,
  // or prefaulted above the high-water mark). Takes lock_ only to read the mapped size.
  void resident(std::uint64_t* in_use, std::uint64_t* idle) const noexcept;
  // Resident bytes of the frame table, the free bitmap and the region table.
  std::size_t resident_metadata() const noexcept;
  // Statistics (relaxed loads). idle_frames: frames resident but holding no zspage (the
  // idle list, and frames being returned whose madvise has not completed).
  // (acquire: pairs with publish_idle_locked's release, so frames_returned() read after it
  // counts every frame that left idle_frames by going back to the kernel.)
  std::size_t idle_frames() const noexcept { return idle_count_.load(std::memory_order_acquire); }
  std::uint64_t frames_returned() const noexcept {
    return returned_.load(std::memory_order_relaxed);
  }
  std::uint64_t idle_reused() const noexcept { return reused_.load(std::memory_order_relaxed); }
  // Whether fresh memory comes in 2 MiB regions populated as huge pages, and how many
  // regions were populated so (the kernel may still have given 4 KiB pages).
  bool huge_regions() const noexcept { return huge_; }
  std::uint64_t regions_populated() const noexcept {
    return regions_populated_.load(std::memory_order_relaxed);
  }
  // For tests: the frames in use and idle of the region holding frame `id`.
  void region_counts(FrameId id, unsigned* used, unsigned* idle) const noexcept ZS_EXCLUDES(lock_);

  // The decay curve: of the frames freed `age` epochs ago (0 = the current epoch), this
  // many 1/1024ths may still be idle; 0 from kDecayEpochs on. Exposed for tests.
  static constexpr unsigned kDecayEpochs = 16;
  static unsigned decay_weight(unsigned age) noexcept;

 private:
  static constexpr unsigned kReleaseBatch = 4096;  // frames per madvise round
  bool grow_locked(FrameId want) noexcept ZS_REQUIRES(lock_);
  void trim_locked() noexcept ZS_REQUIRES(lock_);
  // madvises batch[0..n) (sorted here, runs coalesced) with lock_ dropped, then marks the
  // frames free. lock_ is held on entry and again on return.
  void return_frames(FrameId* batch, unsigned n) noexcept ZS_REQUIRES(lock_);
  // The lowest free frame below the high-water mark (its bit left set), or kNoFrame.
  FrameId lowest_free_locked() noexcept ZS_REQUIRES(lock_);
  // Whether every frame of region r is free (returned, or never touched) below high water.
  bool region_free_locked(std::uint32_t r) const noexcept ZS_REQUIRES(lock_);
  // Claims the wholly free region r, populates it (lock_ dropped meanwhile: nobody else can
  // take its frames) and makes its frames idle. Returns whether the decay timer must be armed.
  bool populate_region_locked(std::uint32_t r) noexcept ZS_REQUIRES(lock_);
  // Puts back frames alloc() took before it failed: those from the idle frames (bit set in
  // `resident`) as idle, the others as free.
  void undo_alloc_locked(const FrameId* out, unsigned n, std::uint64_t resident) noexcept
      ZS_REQUIRES(lock_);
  // Publishes idle_count_: the idle frames plus the frames on their way back to the kernel
  // (still resident until their madvise), so stats never undercount resident frames.
  void publish_idle_locked() noexcept ZS_REQUIRES(lock_) {
    // release: pairs with the acquire load in idle_frames() (returned_ is counted first).
    idle_count_.store(regions_.idle_total() + returning_ + populating_, std::memory_order_release);
  }
  // Moves the current epoch forward to `now_ns`, clearing the buckets of elapsed epochs.
  void advance_locked(std::uint64_t now_ns) noexcept ZS_REQUIRES(lock_);
  // Idle frames the curve allows now (at least keep_).
  std::size_t allowed_idle_locked() const noexcept ZS_REQUIRES(lock_);
  // The decay worker's job: returns the idle frames beyond the allowance, then re-arms
  // its timer while idle frames remain.
  void decay_job() noexcept ZS_EXCLUDES(lock_);
  std::uint64_t epoch_ns() const noexcept {
    return std::uint64_t{decay_ms_} * 1000000 / kDecayEpochs;
  }

  // Immutable after init (the pointers; what they point to is guarded as marked). Read by
  // every object access: kept away from lock_, which allocation and free write.
  std::byte* base_ = nullptr;
  FrameInfo* info_ = nullptr;
  std::uint64_t* free_bits_ ZS_PT_GUARDED_BY(lock_) = nullptr;  // 1 = free frame below high water
  std::size_t max_frames_ = 0;
  std::size_t keep_ = 0;  // idle frames kept whatever their age
  std::uint32_t decay_ms_ = 0;
  bool huge_ = false;            // fresh memory in whole regions, populated as huge pages
  std::uint64_t epoch0_ns_ = 0;  // steady clock at init

  // Protects: free_bits_, the idle frames (regions_) and decay buckets, lowest_free_,
  // mapped_frames_, populated_, timer_armed_ and growth of high_water_. Level: frame_arena
  // (leaf; sleepable: held across mprotect; never across a release batch or a region's
  // population, which drop it).
  mutable Mutex lock_{LockLevel::frame_arena, "frame_arena"};

  // Idle frames, per 2 MiB region, and every region's frames in use.
  FrameRegions regions_ ZS_GUARDED_BY(lock_);
  // Frames taken for return_frames, not yet zapped.
  std::size_t returning_ ZS_GUARDED_BY(lock_) = 0;
  // Frames of regions being populated (lock dropped): in no list and no free bit, about to
  // become idle; counted as idle (resident soon), and an alloc that finds nothing else
  // waits for them rather than fail.
  std::size_t populating_ ZS_GUARDED_BY(lock_) = 0;
  // Frames freed into the idle list per epoch, a ring indexed by epoch % kDecayEpochs.
  std::uint64_t freed_[kDecayEpochs] ZS_GUARDED_BY(lock_) = {};
  std::uint64_t epoch_ ZS_GUARDED_BY(lock_) = 0;   // current epoch (epoch_ns() each)
  bool timer_armed_ ZS_GUARDED_BY(lock_) = false;  // a decay run is scheduled or running
  FrameId lowest_free_ ZS_GUARDED_BY(lock_) = 0;   // no free bit below this
  // Frames below top_ are tracked: in use, idle, free (bit set: not resident) or being
  // returned or populated; those above are fresh. top_ >= high_water_.
  FrameId top_ ZS_GUARDED_BY(lock_) = 0;
  std::size_t mapped_frames_ ZS_GUARDED_BY(lock_) = 0;
  // Fresh frames below this were prefaulted (or claimed to be).
  std::size_t populated_ ZS_GUARDED_BY(lock_) = 0;
  // Written under lock_; read lock-free (relaxed: stats and bounds checks only; idle_count_
  // release/acquire, see idle_frames()).
  std::atomic<FrameId> high_water_{0};
  std::atomic<std::size_t> idle_count_{0};
  std::atomic<std::uint64_t> regions_populated_{0};
  std::atomic<std::uint64_t> returned_{0};
  std::atomic<std::uint64_t> reused_{0};

  // Declared last: stopped first in the destructor, before the memory it uses goes.
  Worker decay_worker_;
};

}  // namespace uzram

#endif  // UZRAM_POOL_FRAME_ARENA_H_

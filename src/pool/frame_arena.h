// pool/frame_arena.h - FrameArena: 4 KiB frames carved from one mmap'ed reservation
// (layer 2), the userspace counterpart of the kernel's order-0 pages. A frame id plays the
// role of a PFN.
//
// Freed frames stay resident as *idle* frames and are handed out again before any other
// (no page fault, no zeroing by the kernel). They go back to the OS (madvise
// MADV_DONTNEED) by a decay policy (jemalloc's dirty decay, docs/design.md#frames): the
// number of idle frames allowed falls along a smoothstep curve from every frame freed just
// now to none of those freed decay_ms ago; a background worker (sync/worker.h, a timer
// armed while idle frames exist) returns the oldest excess, in batches of sorted,
// coalesced runs. So a pool that stops being used is back at total_pages within decay_ms,
// and one that frees and refills within decay_ms never faults its frames in again.
//
// Each frame also has a 4-byte FrameInfo word:
//   bits 0..27  owner zspage id (0 = not owned)      - written under the owner's class lock
//   bit  30     isolated: the frame lock (migration), - bit_lock (sleepable holder)
//   bit  31     allocated (out of the arena)          - written under arena lock_
//
// Thread safety: alloc/free take lock_ (level frame_arena, a leaf, sleepable: it calls
// mmap/madvise, so it is never taken under a spinning lock). address() and info() are
// lock-free: frame memory and the info table never move.
#ifndef UZRAM_POOL_FRAME_ARENA_H_
#define UZRAM_POOL_FRAME_ARENA_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "pool/geometry.h"
#include "sync/annotations.h"
#include "sync/worker.h"
#include "uzram/result.h"

namespace uzram {

using FrameId = std::uint32_t;

inline constexpr std::uint32_t kFrameOwnerMask = (1u << 28) - 1;
inline constexpr std::uint32_t kFrameIsolated = 1u << 30;
inline constexpr std::uint32_t kFrameAllocated = 1u << 31;

class FrameArena {
 public:
  FrameArena() noexcept;
  ~FrameArena();
  FrameArena(const FrameArena&) = delete;
  FrameArena& operator=(const FrameArena&) = delete;

  // Reserves address space for max_bytes of frames. `keep_frames` idle frames stay
  // resident whatever their age; `decay_ms` is the decay period (0: frames beyond
  // keep_frames go back at once, in free()). `prefault`: every frame is made resident now
  // (MADV_POPULATE_WRITE). Errors: no_memory (prefault included), invalid_argument.
  [[nodiscard]] Result<void> init(std::size_t max_bytes, std::size_t keep_frames,
                                  std::uint32_t decay_ms, bool prefault = false) noexcept;

  // Allocates n frames into out[]: idle frames first (newest first), then the lowest free
  // ids, then fresh ones. Errors: no_memory.
  [[nodiscard]] Result<void> alloc(FrameId* out, unsigned n) noexcept;
  // Allocates one frame below `below` if one is free (for pack()); else no_memory.
  [[nodiscard]] Result<FrameId> alloc_below(FrameId below) noexcept;
  // Frees frames: they become idle (cache == true) or go back to the OS at once (migration
  // by pack() passes false: a frame it vacates should leave the arena), unless keep_frames
  // covers the whole arena: such an arena (swap, docs/uzram-serve.md#swap) keeps them all.
  void free(const FrameId* ids, unsigned n, bool cache = true) noexcept;
  // Returns every idle frame to the OS now; returns how many.
  std::size_t release_idle() noexcept;

  std::byte* address(FrameId id) const noexcept {
    return base_ + (static_cast<std::size_t>(id) << kFrameShift);
  }
  std::atomic<std::uint32_t>& info(FrameId id) const noexcept { return info_[id]; }
  // Frames ever handed out: ids are < high_water().
  FrameId high_water() const noexcept { return high_water_.load(std::memory_order_relaxed); }
  std::size_t max_frames() const noexcept { return max_frames_; }
  // The frame table plus the idle list's resident pages.
  std::size_t metadata_bytes() const noexcept {
    return static_cast<std::size_t>(high_water()) * 4 +
           idle_touched_bytes_.load(std::memory_order_relaxed);
  }
  // Statistics (relaxed loads).
  std::size_t idle_frames() const noexcept { return idle_count_.load(std::memory_order_relaxed); }
  std::uint64_t frames_returned() const noexcept {
    return returned_.load(std::memory_order_relaxed);
  }
  std::uint64_t idle_reused() const noexcept { return reused_.load(std::memory_order_relaxed); }

  // The decay curve: of the frames freed `age` epochs ago (0 = the current epoch), this
  // many 1/1024ths may still be idle; 0 from kDecayEpochs on. Exposed for tests.
  static constexpr unsigned kDecayEpochs = 16;
  static unsigned decay_weight(unsigned age) noexcept;

 private:
  static constexpr unsigned kReleaseBatch = 4096;  // frames per madvise round
  bool grow_locked(FrameId want) noexcept;
  void trim_locked() noexcept;
  // madvises batch[0..n) (sorted here, runs coalesced) with lock_ dropped, then marks the
  // frames free. Caller holds lock_ through g; it is held again on return.
  void return_frames(std::unique_lock<std::mutex>& g, FrameId* batch, unsigned n) noexcept;
  // Resets an emptied idle list (returning its pages) or slides a mostly dead one down.
  void shrink_idle_locked() noexcept;
  // Moves the current epoch forward to `now_ns`, clearing the buckets of elapsed epochs.
  void advance_locked(std::uint64_t now_ns) noexcept;
  // Idle frames the curve allows now (at least keep_). Caller holds lock_.
  std::size_t allowed_idle_locked() const noexcept;
  // The decay worker's job: returns the idle frames beyond the allowance, then re-arms
  // its timer while idle frames remain.
  void decay_job() noexcept;
  std::uint64_t epoch_ns() const noexcept {
    return std::uint64_t{decay_ms_} * 1000000 / kDecayEpochs;
  }

  std::byte* base_ = nullptr;                    // immutable after init
  std::atomic<std::uint32_t>* info_ = nullptr;   // immutable after init
  std::uint64_t* free_bits_ = nullptr;           // 1 = free, returned frame below high water
  std::size_t max_frames_ = 0;
  std::size_t keep_ = 0;  // idle frames kept whatever their age
  std::uint32_t decay_ms_ = 0;

  // Protects: free_bits_, the idle list and decay buckets, lowest_free_, mapped_frames_,
  // populated_, timer_armed_ and growth of high_water_. Level: frame_arena (leaf;
  // sleepable: held across mmap and small madvise calls, never across a release batch).
  std::mutex lock_;
  // Idle frames: idle_[idle_lo_, idle_hi_), oldest first. alloc() takes from the top
  // (newest: warm in the cache), the decay returns from the bottom (oldest). The array
  // has room for every frame; only its used part is resident.
  FrameId* idle_ = nullptr;
  std::size_t idle_lo_ = 0;
  std::size_t idle_hi_ = 0;
  std::size_t idle_touched_ = 0;  // idle_ entries ever written since the last madvise of it
  // Frames freed into the idle list per epoch, a ring indexed by epoch % kDecayEpochs.
  std::uint64_t freed_[kDecayEpochs] = {};
  std::uint64_t epoch_ = 0;      // current epoch number (epoch_ns() each, from epoch0_)
  std::uint64_t epoch0_ns_ = 0;  // steady clock at init
  bool timer_armed_ = false;     // a decay run is scheduled (or running and will re-arm)
  FrameId lowest_free_ = 0;      // no free bit below this
  std::size_t mapped_frames_ = 0;
  std::size_t populated_ = 0;  // fresh frames below this were prefaulted (or claimed to be)
  // Written under lock_; read lock-free (relaxed: stats and bounds checks only).
  std::atomic<FrameId> high_water_{0};
  std::atomic<std::size_t> idle_count_{0};
  std::atomic<std::size_t> idle_touched_bytes_{0};
  std::atomic<std::uint64_t> returned_{0};
  std::atomic<std::uint64_t> reused_{0};

  // Declared last: stopped first in the destructor, before the memory it uses goes.
  Worker decay_worker_;
};

}  // namespace uzram

#endif  // UZRAM_POOL_FRAME_ARENA_H_

// pool/frame_arena.h - FrameArena: 4 KiB frames carved from one mmap'ed reservation
// (layer 2), the userspace counterpart of the kernel's order-0 pages. A frame id plays the
// role of a PFN. Freed frames go back to the OS with madvise(MADV_DONTNEED) (beyond a small
// resident cache), so the process's RSS follows the pool's total pages.
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
#include "uzram/result.h"

namespace uzram {

using FrameId = std::uint32_t;

inline constexpr std::uint32_t kFrameOwnerMask = (1u << 28) - 1;
inline constexpr std::uint32_t kFrameIsolated = 1u << 30;
inline constexpr std::uint32_t kFrameAllocated = 1u << 31;

class FrameArena {
 public:
  FrameArena() noexcept = default;
  ~FrameArena();
  FrameArena(const FrameArena&) = delete;
  FrameArena& operator=(const FrameArena&) = delete;

  // Reserves address space for max_bytes of frames. Errors: no_memory.
  [[nodiscard]] Result<void> init(std::size_t max_bytes, std::size_t cache_frames) noexcept;

  // Allocates n frames into out[]. Lowest free ids first. Errors: no_memory.
  [[nodiscard]] Result<void> alloc(FrameId* out, unsigned n) noexcept;
  // Allocates one frame below `below` if one is free (for pack()); else no_memory.
  [[nodiscard]] Result<FrameId> alloc_below(FrameId below) noexcept;
  // Frees frames; `cache` keeps up to cache_frames resident for quick reuse (migration
  // passes false: a frame it vacates should leave the arena).
  void free(const FrameId* ids, unsigned n, bool cache = true) noexcept;

  std::byte* address(FrameId id) const noexcept {
    return base_ + (static_cast<std::size_t>(id) << kFrameShift);
  }
  std::atomic<std::uint32_t>& info(FrameId id) const noexcept { return info_[id]; }
  // Frames ever handed out: ids are < high_water().
  FrameId high_water() const noexcept { return high_water_.load(std::memory_order_relaxed); }
  std::size_t max_frames() const noexcept { return max_frames_; }
  std::size_t metadata_bytes() const noexcept { return static_cast<std::size_t>(high_water()) * 4; }

 private:
  static constexpr std::size_t kCacheSlack = 1024;  // room above the limit before a batch
  void release_locked(FrameId id) noexcept;
  void trim_locked() noexcept;
  bool grow_locked(FrameId want) noexcept;

  std::byte* base_ = nullptr;                    // immutable after init
  std::atomic<std::uint32_t>* info_ = nullptr;   // immutable after init
  std::uint64_t* free_bits_ = nullptr;           // 1 = free frame below high water
  std::size_t max_frames_ = 0;
  std::size_t cache_limit_ = 0;     // minimum cache size (PoolOptions::frame_cache)
  std::size_t cache_capacity_ = 0;  // cache_ array size: max_frames / 8 + limit + slack

  // Protects: free_bits_, cache_, cache_count_, lowest_free_, mapped_frames_ and growth of
  // high_water_. Level: frame_arena (leaf; sleepable: held across mmap/madvise).
  std::mutex lock_;
  FrameId* cache_ = nullptr;  // recently freed frames not yet madvised (LIFO)
  std::size_t cache_count_ = 0;
  FrameId lowest_free_ = 0;   // no free bit below this
  std::size_t in_use_ = 0;    // frames handed out and not freed
  // The cache may hold max(cache_limit_, in_use_ / 8) frames: a compaction burst that
  // frees thousands of frames is absorbed and reused instead of madvise'd (each madvise
  // interrupts every reader's CPU with a TLB shootdown). Caller holds lock_.
  std::size_t cache_target_locked() const noexcept {
    return in_use_ / 8 > cache_limit_ ? in_use_ / 8 : cache_limit_;
  }
  std::size_t mapped_frames_ = 0;
  std::size_t populated_ = 0;  // fresh frames below this were prefaulted (or claimed to be)
  // Written under lock_; read lock-free (relaxed: stats and bounds checks only).
  std::atomic<FrameId> high_water_{0};
};

}  // namespace uzram

#endif  // UZRAM_POOL_FRAME_ARENA_H_

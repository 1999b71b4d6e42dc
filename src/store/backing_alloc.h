// store/backing_alloc.h - BackingAlloc: the space of the backing tier (layer 3), in 4 KiB
// blocks. Guide: docs/store-postprocessing.md#space-and-reclamation.
//
// Per block it keeps the number of LIVE bytes: the bytes of published written-back objects
// in it (a raw page counts 4096; packed objects count their compressed length, split
// between two blocks when one continues into the next, store/wb_layout.h). A block is
//   free      bit clear in the bitmap;
//   in use    bit set, live > 0 or PINNED (kPin added: a writeback or compaction pass owns
//             it between reserving it and publishing the objects written to it);
//   trimming  bit set, live == 0, waiting in the trim set for the tier to discard it (only
//             with a tier that trims: a remote whose export supports it). It becomes free
//             when the trim completes or fails, never before: a write to a block with a
//             trim in flight could be reordered behind the trim.
// A block whose live count and pin both drop to 0 is freed (or queued for its trim): that
// is how space comes back, whether an overwrite, a discard, a reset or writeback_compact
// (which moves the live objects of sparse blocks elsewhere) removed the last object.
//
// Lost blocks (remote tier): when the tier reconnects to a remote that no longer holds the
// data it was given (a restarted `nbdkit memory`), every block in use is marked LOST and
// the loss generation advances; reads of a lost block fail with EIO until it is freed.
// A block written again after the loss (its write issued in the new generation) is not
// lost.
//
// Block 0 is never handed out (as in kernel <= 6.18; a remote tier keeps its marker there).
//
// Thread safety: every method takes mu_, a leaf mutex (level: below store_slot in effect:
// taken under a slot lock when a written-back slot is freed, nothing is taken inside it).
// Counters read without it are relaxed snapshots.
#ifndef UZRAM_STORE_BACKING_ALLOC_H_
#define UZRAM_STORE_BACKING_ALLOC_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "store/wb_layout.h"
#include "sync/mutex.h"
#include "uzram/result.h"

namespace uzram {

class BackingAlloc {
 public:
  static constexpr std::uint32_t kPin = 1u << 16;  // > any live count (at most 4096)

  BackingAlloc() noexcept = default;
  ~BackingAlloc();
  BackingAlloc(const BackingAlloc&) = delete;
  BackingAlloc& operator=(const BackingAlloc&) = delete;

  // Blocks 1 .. nblocks-1 become usable. `trims`: freed blocks wait for trim_done();
  // `lost`: track lost blocks (a remote tier). Errc::no_memory.
  [[nodiscard]] Result<void> init(std::uint64_t nblocks, bool trims, bool lost) noexcept;

  // Reserves a free block, pinned: *block. The block after the previous one is preferred,
  // so that a pass's blocks form runs. False: no free block (some may be trimming).
  [[nodiscard]] bool alloc(std::uint64_t* block) noexcept;
  // Ends a pass's ownership of `block`: frees it if nothing was published in it. With
  // `written` (its write succeeded, issued in loss generation `gen`), clears its lost bit
  // unless a loss was detected since.
  void unpin(std::uint64_t block, bool written, std::uint64_t gen) noexcept;
  // A published object's bytes come (publication) and go (free, move).
  void add_live(const WbAddr& a) noexcept;
  void sub_live(const WbAddr& a) noexcept;

  // True when a's blocks hold their data as far as is known; *gen: the loss generation
  // now (a read issued in another generation must fail, store/backing_tier.h).
  [[nodiscard]] bool readable(const WbAddr& a, std::uint64_t* gen) const noexcept;
  std::uint64_t gen() const noexcept { return gen_.load(std::memory_order_acquire); }
  // The remote lost its data: every block in use now is lost; the generation advances.
  void mark_lost() noexcept;

  // Trims: up to `max` runs of trimming blocks, taken out of the trim set (still reserved).
  // Returns the number of runs written to first[] / count[].
  std::size_t take_trims(std::uint64_t* first, std::uint32_t* count, std::size_t max) noexcept;
  // The trims of a run finished (done or failed): its blocks are free.
  void trim_done(std::uint64_t first, std::uint32_t count) noexcept;
  std::uint64_t trims_waiting() const noexcept { return waiting_.load(std::memory_order_relaxed); }

  // Statistics (relaxed snapshots).
  std::uint64_t nblocks() const noexcept { return nblocks_; }
  std::uint64_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
  std::uint64_t trimming() const noexcept { return trimming_.load(std::memory_order_relaxed); }
  std::uint64_t live_bytes() const noexcept { return live_bytes_.load(std::memory_order_relaxed); }
  std::uint64_t lost() const noexcept { return lost_count_.load(std::memory_order_relaxed); }
  // Blocks whose live count is above 0 but below `pct` percent of a block (compaction).
  bool sparse(std::uint64_t block, unsigned pct) const noexcept;

  // Quiescent check (no pass running): live counts equal `expected` (bytes per block, as
  // the slots say), no block is pinned, and the bitmap, the counters and the trim set agree.
  void check(const std::uint32_t* expected) const noexcept;

 private:
  bool test(const std::uint64_t* map, std::uint64_t b) const noexcept {
    return (map[b / 64] >> (b % 64)) & 1;
  }
  static void set(std::uint64_t* map, std::uint64_t b) noexcept {
    map[b / 64] |= std::uint64_t{1} << (b % 64);
  }
  static void clear(std::uint64_t* map, std::uint64_t b) noexcept {
    map[b / 64] &= ~(std::uint64_t{1} << (b % 64));
  }
  void add_locked(std::uint64_t block, std::uint32_t bytes) noexcept;
  void sub_locked(std::uint64_t block, std::uint32_t bytes) noexcept;
  void release_locked(std::uint64_t block) noexcept;  // live and pin are 0
  void free_maps() noexcept;

  // Protects every field below but the atomics' reads (their writes happen under it).
  mutable Mutex mu_{LockLevel::backing, "BackingAlloc::mu_"};
  std::uint64_t nblocks_ = 0;
  std::uint64_t words_ = 0;
  std::uint64_t* inuse_ = nullptr;  // bit set: in use or trimming; block 0 and the tail set
  std::uint32_t* live_ = nullptr;   // live bytes + kPin while pinned
  std::uint64_t* trim_ = nullptr;   // trimming (null: the tier does not trim)
  std::uint64_t* lost_ = nullptr;   // lost (null: not tracked)
  std::uint64_t next_ = 1;          // where the next search starts
  std::uint64_t trim_lo_ = 0;       // words of trim_ that may have bits: [trim_lo_, trim_hi_)
  std::uint64_t trim_hi_ = 0;
  std::atomic<std::uint64_t> used_{0};      // in use, not trimming
  std::atomic<std::uint64_t> trimming_{0};  // in the trim set or being trimmed
  std::atomic<std::uint64_t> waiting_{0};   // in the trim set (not yet taken)
  std::atomic<std::uint64_t> live_bytes_{0};
  std::atomic<std::uint64_t> lost_count_{0};
  // Loss generation: advanced by mark_lost (release), read by readers (acquire) to tag a
  // read, which the tier refuses if the generation moved before it was issued.
  std::atomic<std::uint64_t> gen_{0};
};

}  // namespace uzram

#endif  // UZRAM_STORE_BACKING_ALLOC_H_

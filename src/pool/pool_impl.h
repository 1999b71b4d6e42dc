// pool/pool_impl.h - PoolImpl: the implementation behind uzram::Pool (layer 2).
// The code is split by operation: pool.cc (create, alloc, zspage life cycle), free.cc,
// access.cc (read/write), compaction.cc, migration.cc (migration, pack, deferred free),
// stats.cc, validate.cc. Every multi-step operation follows a numbered protocol in
// docs/locking.md, and its locks are checked by clang's analysis (sync/annotations.h).
//
// Translation policy (docs/design.md#translation-policy): the code whose locking depends on
// the translation mode - translation itself (read, write), a compaction step and a
// migration - is a template on the policy, ValidatedTranslation or KernelTranslation, so
// each instantiation has straight-line lock code that the analysis checks. A pool picks
// one at creation (kernel_rwlock_); the public methods that translate branch on it once.
#ifndef UZRAM_POOL_POOL_IMPL_H_
#define UZRAM_POOL_POOL_IMPL_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "pool/frame_arena.h"
#include "pool/geometry.h"
#include "pool/handle_table.h"
#include "pool/pool_internal.h"
#include "pool/reverse_index.h"
#include "pool/size_class.h"
#include "pool/zspage.h"
#include "sync/rw_spin_lock.h"
#include "sync/worker.h"
#include "uzram/pool.h"

namespace uzram {

// Frames of zspages freed under a class lock, released after it is dropped (the arena
// may call madvise, which must not run under a spinning lock). A free or a compaction
// step frees at most one zspage; a batched free drops the lock to release a full batch.
struct ReleaseBatch {
  static constexpr unsigned kMax = 16;  // zspages
  FrameId frames[kMax * kMaxChain];
  unsigned nframes = 0;
  unsigned nzspages = 0;
  bool full() const noexcept { return nzspages == kMax; }
};

// The translation policies (docs/locking.md#translation).
struct ValidatedTranslation {
  static constexpr bool kPoolLock = false;  // translate lock-free, re-check after locking
};
struct KernelTranslation {
  static constexpr bool kPoolLock = true;  // pool_lock_: read to translate, write to move
};

// Classes: the small ones (slots 0..254, geometry.h), then the run classes of large
// objects (docs/units.md): frames 2..16 at run_class_index(frames) = 255..269, and the
// 1-frame run at kRunClass1 (270). The 1-frame run has its own class, not the small huge
// class, because its handle entries have the large layout (handle_table.h).
inline constexpr unsigned kRunClass1 = kSlots + kMaxRunFrames - 1;
inline constexpr unsigned kMaxClasses = kRunClass1 + 1;
static_assert(kMaxClasses < HandleTable::kGroups);
inline constexpr unsigned run_index(unsigned frames) noexcept {
  return frames == 1 ? kRunClass1 : run_class_index(frames);
}
inline constexpr bool is_run_class(unsigned index) noexcept { return index >= kSlots; }

class PoolImpl final : public Pool {
 public:
  PoolImpl(const PoolOptions& options, TranslationMode mode) noexcept;
  ~PoolImpl() override;
  Result<void> init() noexcept;

  Result<Handle> alloc_impl(std::size_t size) noexcept;
  // Allocates an object of `size` bytes in class c (a run class: a large object whose
  // tail handle is `tail`, 0 = none). Protocol: docs/locking.md#alloc.
  // With open false, takes a slot only in a zspage c already has: Handle{0} when there
  // is none (a tail looking for room elsewhere, alloc_tail).
  Result<Handle> alloc_in(SizeClass& c, std::size_t size, Handle tail, bool open = true) noexcept
      ZS_EXCLUDES(c.lock);
  // docs/locking.md#large-objects: tail first, then the run (large_alloc.cc).
  Result<Handle> alloc_large(std::size_t size) noexcept;
  // A tail of `size` bytes: in its own class, or spilled into a larger class's free slot
  // rather than opening a zspage (docs/units.md#tails-in-a-larger-class).
  // *spilled: the tail went to a larger class (counted in its own class's tails_out).
  Result<Handle> alloc_tail(std::size_t size, bool* spilled) noexcept;
  unsigned tail_home(std::size_t tail) const noexcept;  // a tail's own class
  void tail_returned(std::size_t tail) noexcept;        // one tail less out of its class
  void free_impl(Handle handle) noexcept;
  void free_batch_impl(const Handle* handles, std::size_t n) noexcept;
  template <typename T>
  const void* read_begin_impl(Handle handle, void* local_copy) noexcept;
  void read_end_impl(Handle handle) noexcept;
  // Read-ahead for a reader that walks z's class in slot order (pool/read_ahead.h).
  void read_ahead(const SizeClass& c, const ZsPage* z, unsigned obj,
                  std::uint32_t index) const noexcept;
  // At the last two slots of a zspage: the first slot of the class's next zspage.
  void next_zspage_hint(const SizeClass& c, unsigned obj, std::uint32_t index) const noexcept;
  template <typename T>
  void write_impl(Handle handle, const void* src, std::size_t len) noexcept;
  std::size_t object_size_impl(Handle handle) const noexcept;
  std::size_t compact_impl() noexcept;
  // Moves `frame` to `target` when have_target (a frame the caller allocated, possibly
  // frame 0: pack() uses alloc_below()), else to a newly allocated frame.
  Result<FrameId> migrate_impl(FrameId frame, FrameId target, bool have_target = false) noexcept;
  // The kernel's movable_ops steps (tests drive them one by one): isolate_frame() takes
  // the frame lock (try only); migrate_isolated() moves the frame's contents; then
  // release_migrated() ends the isolation and frees the vacated frame, or putback_frame()
  // ends the isolation of a frame that did not move.
  bool isolate_frame(FrameId frame) noexcept ZS_TRY_ACQUIRE(true, arena_.info(frame));
  template <typename T>
  Result<FrameId> migrate_isolated(FrameId frame, FrameId target, bool have_target = false) noexcept
      ZS_REQUIRES(arena_.info(frame));
  void putback_frame(FrameId frame) noexcept ZS_RELEASE(arena_.info(frame));
  void release_migrated(FrameId frame) noexcept ZS_RELEASE(arena_.info(frame));
  std::size_t pack_impl(std::size_t max_frames) noexcept;
  void flush_deferred_impl() noexcept;
  std::size_t release_idle_frames_impl() noexcept { return arena_.release_idle(); }
  PoolStats stats_impl() const noexcept;
  PoolMemory memory_impl() const noexcept;
  std::vector<ClassStats> class_stats_impl() const noexcept;
  void check_invariants_impl() const noexcept;
  void check_handles() const noexcept;
  void check_large(const SizeClass& c, std::uint32_t index, std::uint32_t size,
                   std::vector<std::uint32_t>* tails,
                   std::vector<std::uint32_t>* out) const noexcept ZS_REQUIRES(c.lock);
  unsigned parked_chain(const SizeClass& c, ZsPageId id, const ZsPage* z,
                        std::vector<bool>* taken) const noexcept ZS_REQUIRES(c.lock);

  const PoolOptions& opts() const noexcept { return options_; }
  // Whether index is a class this pool uses (a real small class, or a run class up to
  // max_object_size).
  bool is_class(unsigned index) const noexcept {
    if (index < kSlots) return geo_.is_real(index);
    if (index == kRunClass1) return max_run_frames_ >= 2;
    return index < kRunClass1 && index - kSlots + 2 <= max_run_frames_;
  }
  unsigned max_run_frames() const noexcept { return max_run_frames_; }
  bool kernel_rwlock() const noexcept { return kernel_rwlock_; }
  CompactHoldHistogram hold_histogram() const noexcept;
  std::size_t handle_chunks_mapped_on_demand() const noexcept {
    return handles_.chunks_mapped_on_demand();
  }
  const Geometry& geometry() const noexcept { return geo_; }
  std::size_t total_pages_impl() const noexcept {
    return pages_allocated_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t>* entry_of(Handle h, const char* op) const noexcept;
  // Aborts unless entry word v is allocated with h's generation (double free, stale or
  // never-allocated handle).
  static void check_entry(std::uint64_t v, Handle h, const char* op) noexcept;
  // Translation (docs/locking.md#read steps 1-3): sets z to the object's zspage, returned
  // read-locked, and returns the validated entry word.
  template <typename T>
  std::uint64_t lock_object(Handle h, const char* op, ZsPage*& z) noexcept
      ZS_ACQUIRE_SHARED(z->lock) ZS_EXCLUDES(pool_lock_);
  // Byte offset of object `obj` within its zspage chain (objects have no header).
  std::size_t payload_offset(const SizeClass& c, unsigned obj) const noexcept {
    return static_cast<std::size_t>(obj) * c.size;
  }
  // Frames in z's chain (the descriptor does not store it: its class knows).
  unsigned nframes_of(const ZsPage* z) const noexcept {
    return classes_[z->class_index.load(std::memory_order_relaxed)].pages_per_zspage;
  }
  std::byte* chain_addr(const ZsPage* z, std::size_t off) const noexcept {
    return arena_.address(z->frames[off >> kFrameShift]) + (off & (kFrameSize - 1));
  }
  // How many of the `len` bytes from chain offset `off` lie at consecutive addresses: a
  // zspage's frames are taken in one arena alloc and are mostly adjacent there (a
  // migration moves one elsewhere), and an object over adjacent frames is one range
  // (docs/design.md#frames). Caller holds z's lock (read or write) or the class lock.
  std::size_t contiguous_bytes(const ZsPage* z, std::size_t off, std::size_t len) const noexcept {
    std::size_t k = off >> kFrameShift;
    std::size_t n = kFrameSize - (off & (kFrameSize - 1));
    while (n < len && z->frames[k + 1] == z->frames[k] + 1) {
      n += kFrameSize;
      k++;
    }
    return std::min(n, len);
  }
  void copy_out(const ZsPage* z, std::size_t off, void* dst, std::size_t len) const noexcept;
  // A large object's tail (a small object): copies its first `len` bytes out to / in from
  // buf under its zspage read lock, taken and dropped here.
  template <typename T>
  void tail_copy(Handle tail, void* buf, std::size_t len, bool in) noexcept ZS_EXCLUDES(pool_lock_);
  // The tail handle of a large object (index of a run class, entry validated).
  Handle tail_of(std::uint32_t index) const noexcept {
    // relaxed: written before the entry's release store, which the caller's validation
    // (acquire, or the class lock) ordered before this load; constant while it lives.
    return static_cast<Handle>(handles_.aux(index)->load(std::memory_order_relaxed));
  }
  void copy_in(ZsPage* z, std::size_t off, const void* src, std::size_t len) noexcept;
  void copy_between(const ZsPage* from, std::size_t from_off, ZsPage* to, std::size_t to_off,
                    std::size_t len) noexcept;

  // Zspage life cycle and lists (pool.cc). *_locked: caller holds c.lock.
  // Allocates frames (and a descriptor unless `spare`, a descriptor the caller took off
  // c's spare list) with no lock held; returns null when out of memory.
  ZsPage* create_zspage(SizeClass& c, ZsPageId spare, ZsPageId* id) noexcept ZS_EXCLUDES(c.lock);
  void publish_zspage_locked(SizeClass& c, ZsPageId id, ZsPage* z) noexcept ZS_REQUIRES(c.lock);
  void list_insert_locked(SizeClass& c, ZsPageId id, ZsPage* z) noexcept ZS_REQUIRES(c.lock);
  void list_remove_locked(SizeClass& c, ZsPageId id, ZsPage* z) noexcept ZS_REQUIRES(c.lock);
  void fix_fullness_locked(SizeClass& c, ZsPageId id, ZsPage* z) noexcept ZS_REQUIRES(c.lock);
  ZsPageId find_group_locked(const SizeClass& c, int from, int to) const noexcept
      ZS_REQUIRES(c.lock);
  // Takes a free slot of z and the handle index bound to it (a parked one, or a new one
  // for a never-used slot: the caller made sure the class has room, has_room_locked);
  // *gen is that index's current generation. Returns the slot.
  unsigned obj_pop_locked(SizeClass& c, ZsPage* z, std::uint32_t* index,
                          std::uint64_t* gen) noexcept ZS_REQUIRES(c.lock);
  // Gives z's parked chain its slots in address order (z is an empty spare of c).
  void renumber_chain_locked(const SizeClass& c, ZsPage* z) noexcept ZS_REQUIRES(c.lock);
  // Frees slot obj of z (a zspage of c), parking handle index `index` (generation gen) on
  // it.
  void obj_push_locked(const SizeClass& c, ZsPage* z, unsigned obj, std::uint32_t index,
                       std::uint64_t gen) noexcept ZS_REQUIRES(c.lock);
  // Frees an empty zspage: true if released (frames queued in `batch`), false if one of
  // its frames is isolated by a migration, in which case it stays on list 0 and the
  // deferred-free worker must be kicked (docs/locking.md#free step 6).
  bool free_zspage_locked(SizeClass& c, ZsPageId id, ZsPage* z, ReleaseBatch& batch) noexcept
      ZS_REQUIRES(c.lock);
  // The common tail of a zspage free, once every frame's isolation bit is held by the
  // caller (FrameArena::try_isolate): unlink, clear the frame owners (which ends the
  // isolation), queue the frames in `batch`, keep the descriptor (with its parked chain)
  // as a spare of the class, update the class stats and total pages.
  void release_zspage_locked(SizeClass& c, ZsPageId id, ZsPage* z, ReleaseBatch& batch) noexcept
      ZS_REQUIRES(c.lock);
  void release(ReleaseBatch& batch) noexcept;

  // Free (free.cc). free_locked: the caller has validated entry value v under c.lock.
  void free_locked(SizeClass& c, std::uint32_t index, std::uint64_t v, ReleaseBatch& batch,
                   bool* kick) noexcept ZS_REQUIRES(c.lock);
  void after_free(SizeClass& c, ReleaseBatch& batch, bool kick, std::uint64_t freeable) noexcept
      ZS_EXCLUDES(c.lock);

  // Compaction (compaction.cc).
  template <typename T>
  std::size_t compact_class(SizeClass& c, const ReverseIndex& rix) noexcept
      ZS_EXCLUDES(c.lock, pool_lock_);
  // Returns the number of objects moved. Caller holds src's write lock.
  unsigned migrate_objects_locked(SizeClass& c, ZsPageId src_id, ZsPage* src, ZsPageId dst_id,
                                  ZsPage* dst, const ReverseIndex& rix) noexcept
      ZS_REQUIRES(c.lock, src->lock);
  // compact_class() over the classes from largest to smallest (all, or those with at least
  // min_freeable freeable frames) with one ReverseIndex; caller holds the compactor flag.
  std::size_t compact_classes(std::uint64_t min_freeable) noexcept;
  void maybe_auto_compact(SizeClass& c, std::uint64_t freeable) noexcept;
  void background_compact() noexcept;
  void record_hold(std::uint64_t ns) noexcept;

  // Deferred free (migration.cc).
  void deferred_free_job() noexcept;
  // Takes the frame lock of every frame of z (an empty zspage off every list), sleeping
  // while a migration holds one (FrameArena::try_isolate: a set, not one capability).
  void lock_zspage_frames(ZsPage* z) noexcept;

  // Immutable after construction:
  const PoolOptions options_;
  const Geometry geo_;
  // The longest run (0: no large objects, max_object_size 4096).
  const unsigned max_run_frames_;

  FrameArena arena_;
  // TranslationMode::kernel_rwlock: KernelTranslation. Read by every read_begin and write
  // before anything else: kept on the cache line of the handle table's directory, which
  // they read next.
  alignas(64) const bool kernel_rwlock_;
  HandleTable handles_;
  ZsPageTable zspages_;

  // The pool lock, used only with KernelTranslation: read mode around handle translation
  // in read/write, write mode in compaction steps and migration. Guards nothing by itself:
  // it excludes movers from translators. Level: pool (after frame, before size_class).
  // Spinning.
  RwSpinLock pool_lock_{LockLevel::pool, "pool"};

  // One per slot, then the run classes; only those with is_class(i) are used.
  SizeClass classes_[kMaxClasses];

  // Atomic counters (relaxed: statistics; pages_allocated_ is zs_get_total_pages).
  std::atomic<std::uint64_t> pages_allocated_{0};
  std::atomic<std::uint64_t> pages_compacted_{0};
  std::atomic<std::uint64_t> compactions_{0};
  std::atomic<std::uint64_t> compact_busy_{0};
  std::atomic<std::uint64_t> migrations_{0};
  std::atomic<std::uint64_t> migrate_busy_{0};
  std::atomic<std::uint64_t> deferred_frees_{0};
  std::atomic<std::uint64_t> tails_spilled_{0};
  std::atomic<std::uint64_t> hold_hist_[32] = {};

  // One compactor per pool: set by exchange(true) (acquire), cleared with release.
  std::atomic<bool> compaction_in_progress_{false};

  Worker deferred_worker_;
  Worker compact_worker_;
};

inline PoolImpl* impl(Pool* p) noexcept { return static_cast<PoolImpl*>(p); }
inline const PoolImpl* impl(const Pool* p) noexcept { return static_cast<const PoolImpl*>(p); }

}  // namespace uzram

#endif  // UZRAM_POOL_POOL_IMPL_H_

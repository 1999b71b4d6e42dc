// pool/pool_impl.h - PoolImpl: the implementation behind uzram::Pool (layer 2).
// The code is split by operation: pool.cc (create, alloc, free), access.cc (read/write),
// compaction.cc, migration.cc (migration, pack, deferred free), stats.cc, validate.cc.
// Every multi-step operation follows a numbered protocol in docs/locking.md.
#ifndef UZRAM_POOL_POOL_IMPL_H_
#define UZRAM_POOL_POOL_IMPL_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "pool/frame_arena.h"
#include "pool/geometry.h"
#include "pool/handle_table.h"
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

class PoolImpl final : public Pool {
 public:
  explicit PoolImpl(const PoolOptions& options) noexcept;
  ~PoolImpl() override;
  Result<void> init() noexcept;

  Result<Handle> alloc_impl(std::size_t size) noexcept;
  void free_impl(Handle handle) noexcept;
  void free_batch_impl(const Handle* handles, std::size_t n) noexcept;
  const void* read_begin_impl(Handle handle, void* local_copy) noexcept;
  void read_end_impl(Handle handle) noexcept;
  void write_impl(Handle handle, const void* src, std::size_t len) noexcept;
  std::size_t object_size_impl(Handle handle) const noexcept;
  std::size_t compact_impl() noexcept;
  // Moves `frame` to `target` when have_target (a frame the caller allocated, possibly
  // frame 0: pack() uses alloc_below()), else to a newly allocated frame.
  Result<FrameId> migrate_impl(FrameId frame, FrameId target, bool have_target = false) noexcept;
  // The kernel's movable_ops steps (tests drive them one by one): isolate_frame() takes
  // the frame lock (try only); migrate_isolated() moves it and ends the isolation on
  // success; putback_frame() ends it otherwise.
  bool isolate_frame(FrameId frame) noexcept;
  Result<FrameId> migrate_isolated(FrameId frame, FrameId target, bool have_target = false) noexcept
      ZS_NO_THREAD_SAFETY_ANALYSIS;  // the pool lock is taken only in kernel_rwlock mode
  void putback_frame(FrameId frame) noexcept;
  std::size_t pack_impl(std::size_t max_frames) noexcept;
  void flush_deferred_impl() noexcept;
  std::size_t release_idle_frames_impl() noexcept { return arena_.release_idle(); }
  PoolStats stats_impl() const noexcept;
  PoolMemory memory_impl() const noexcept;
  std::vector<ClassStats> class_stats_impl() const noexcept;
  void check_invariants_impl() const noexcept;
  void check_handles() const noexcept;
  unsigned parked_chain(const SizeClass& c, ZsPageId id, const ZsPage* z,
                        std::vector<bool>* taken) const noexcept;

  const PoolOptions& opts() const noexcept { return options_; }
  const Geometry& geometry() const noexcept { return geo_; }
  std::size_t total_pages_impl() const noexcept {
    return pages_allocated_.load(std::memory_order_relaxed);
  }

 private:
  bool kernel_mode() const noexcept { return options_.translation == TranslationMode::kernel_rwlock; }
  std::atomic<std::uint64_t>* entry_of(Handle h, const char* op) const noexcept;
  // Aborts unless entry word v is allocated with h's generation (double free, stale or
  // never-allocated handle).
  static void check_entry(std::uint64_t v, Handle h, const char* op) noexcept;
  // Translation (docs/locking.md#read steps 1-4): returns the object's zspage read-locked,
  // with *v the validated entry word.
  ZsPage* lock_object(Handle h, std::uint64_t* v, const char* op) noexcept
      ZS_NO_THREAD_SAFETY_ANALYSIS;  // the pool lock is taken only in kernel_rwlock mode
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
  void copy_out(const ZsPage* z, std::size_t off, void* dst, std::size_t len) const noexcept;
  void copy_in(ZsPage* z, std::size_t off, const void* src, std::size_t len) noexcept;
  void copy_between(const ZsPage* from, std::size_t from_off, ZsPage* to, std::size_t to_off,
                    std::size_t len) noexcept;

  // Zspage life cycle and lists (pool.cc). *_locked: caller holds c.lock.
  // Allocates frames (and a descriptor unless `spare`, a descriptor the caller took off
  // c's spare list) with no lock held; returns null when out of memory.
  ZsPage* create_zspage(SizeClass& c, ZsPageId spare, ZsPageId* id) noexcept;
  void publish_zspage_locked(SizeClass& c, ZsPageId id, ZsPage* z) noexcept;
  void list_insert_locked(SizeClass& c, ZsPageId id, ZsPage* z) noexcept;
  void list_remove_locked(SizeClass& c, ZsPageId id, ZsPage* z) noexcept;
  void fix_fullness_locked(SizeClass& c, ZsPageId id, ZsPage* z) noexcept;
  ZsPageId find_group_locked(const SizeClass& c, int from, int to) const noexcept;
  // Takes a free slot of z and the handle index bound to it (a parked one, or a new one
  // for a never-used slot: the caller made sure the class has room, has_room_locked);
  // *gen is that index's current generation. Returns the slot.
  unsigned obj_pop_locked(SizeClass& c, ZsPage* z, std::uint32_t* index,
                          std::uint64_t* gen) noexcept;
  void renumber_chain_locked(ZsPage* z) noexcept;
  // Frees slot obj of z, parking handle index `index` (generation gen) on it.
  void obj_push_locked(ZsPage* z, unsigned obj, std::uint32_t index, std::uint64_t gen) noexcept;
  // Frees an empty zspage: true if released (frames queued in `batch`), false if one of
  // its frames is isolated by a migration, in which case it stays on list 0 and the
  // deferred-free worker must be kicked (docs/locking.md#free step 6).
  bool free_zspage_locked(SizeClass& c, ZsPageId id, ZsPage* z, ReleaseBatch& batch) noexcept;
  // The common tail of a zspage free, once every frame's isolation bit is held by the
  // caller: unlink, clear the frame owners (which ends the isolation), queue the frames in
  // `batch`, keep the descriptor (with its parked chain) as a spare of the class, update
  // the class stats and total pages. Caller holds c.lock.
  void release_zspage_locked(SizeClass& c, ZsPageId id, ZsPage* z, ReleaseBatch& batch) noexcept;
  void release(ReleaseBatch& batch) noexcept;

  // Free (free.cc). free_locked: caller holds c.lock and has validated entry value v.
  void free_locked(SizeClass& c, std::uint32_t index, std::uint64_t v, ReleaseBatch& batch,
                   bool* kick) noexcept;
  void after_free(SizeClass& c, ReleaseBatch& batch, bool kick, std::uint64_t freeable) noexcept;

  // Compaction (compaction.cc).
  std::size_t compact_class(SizeClass& c, const ReverseIndex& rix) noexcept
      ZS_NO_THREAD_SAFETY_ANALYSIS;  // the pool lock is taken only in kernel_rwlock mode
  // Returns the number of objects moved.
  unsigned migrate_objects_locked(SizeClass& c, ZsPageId src_id, ZsPage* src, ZsPageId dst_id,
                                  ZsPage* dst, const ReverseIndex& rix) noexcept;
  // compact_class() over the classes from largest to smallest (all, or those with at least
  // min_freeable freeable frames) with one ReverseIndex; caller holds the compactor flag.
  std::size_t compact_classes(std::uint64_t min_freeable) noexcept;
  void maybe_auto_compact(SizeClass& c, std::uint64_t freeable) noexcept;
  void background_compact() noexcept;
  void record_hold(std::uint64_t ns) noexcept;

  // Deferred free (migration.cc).
  void deferred_free_job() noexcept;
  void lock_zspage_frames(ZsPage* z) noexcept;

  // Immutable after construction:
  const PoolOptions options_;
  const Geometry geo_;

  FrameArena arena_;
  HandleTable handles_;
  ZsPageTable zspages_;

  // The pool lock, used only in kernel_rwlock mode: read mode around handle translation in
  // read/write/free, write mode in compaction steps and migration. Level: pool (after
  // frame, before size_class). Spinning.
  RwSpinLock pool_lock_{LockLevel::pool, "pool"};

  // One per slot; only real classes (geo_.is_real(i)) are used.
  SizeClass classes_[kSlots];

  // Atomic counters (relaxed: statistics; pages_allocated_ is zs_get_total_pages).
  std::atomic<std::uint64_t> pages_allocated_{0};
  std::atomic<std::uint64_t> pages_compacted_{0};
  std::atomic<std::uint64_t> compactions_{0};
  std::atomic<std::uint64_t> compact_busy_{0};
  std::atomic<std::uint64_t> migrations_{0};
  std::atomic<std::uint64_t> migrate_busy_{0};
  std::atomic<std::uint64_t> deferred_frees_{0};
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

// uzram/pool.h - Pool: a userspace zsmalloc. Start here.
//
// A dense, handle-based allocator for objects of 1..4096 bytes (compressed pages; up to
// 64 KiB with PoolOptions::max_object_size, docs/units.md), with
// Linux 6.18 zsmalloc's geometry: 255 size-class slots 16 bytes apart from 32, zspages of
// 1..chain_size chained 4 KiB frames (objects may straddle frames), 12 fullness groups,
// compaction that moves objects while handles stay valid, deferred free (and, inside,
// the kernel's frame migration). include/uzram/zsmalloc.h is the kernel-compatible C API
// over this class.
//
// Thread safety: every method may be called from any thread concurrently. A handle must not
// be used (read/write) concurrently with free() of the same handle - a caller bug, as in the
// kernel. Between read_begin() and read_end() the caller holds the object's zspage read
// lock: it may sleep, and compaction/migration of that zspage bail out until read_end().
// docs/locking.md is the protocol.
#ifndef UZRAM_POOL_H_
#define UZRAM_POOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "uzram/result.h"

namespace uzram {

// An object handle: opaque, stable while the object lives (even when it moves); 0 is never
// a handle.
enum class Handle : std::uint64_t {};

inline constexpr std::size_t kPageSize = 4096;
inline constexpr std::size_t kMaxObjectSize = kPageSize;
inline constexpr unsigned kNumClassSlots = 255;
inline constexpr unsigned kNumFullnessGroups = 12;

struct PoolOptions {
  std::string name = "uzram";
  unsigned chain_size = 8;                        // CONFIG_ZSMALLOC_CHAIN_SIZE, 4..16
  std::size_t max_bytes = std::size_t{64} << 30;  // arena reservation (virtual), <= 1 TiB
  // Freed frames stay resident ("idle") and are reused before any other, with no page
  // fault; they go back to the OS (madvise MADV_DONTNEED) as they age. Of the frames freed
  // t ms ago, a share 1 - smoothstep(t / decay_ms) may still be idle (jemalloc's dirty
  // decay): a pool that frees and refills within decay_ms keeps its frames, and one that
  // stops is back at total_pages within decay_ms (a background timer returns them; the
  // pool may sit at most the frames freed within the last decay_ms above total_pages).
  // 0: frames go back in free() itself (beyond frame_cache). docs/design.md#frames.
  std::uint32_t decay_ms = 10000;
  // Idle frames kept resident whatever their age (a floor under the decay). 0 = none.
  std::size_t frame_cache = 0;
  // Frames come from 2 MiB regions, each populated as one transparent huge page (fewer TLB
  // misses: reads 8-26 % faster in the fill/read/free cycle), kept whole: allocation
  // refills the fullest region, the decay returns wholly idle regions whole (a partly idle
  // one 4 KiB at a time, as without). Needs decay_ms != 0 and THP not "never" (a prefault
  // arena is populated as before); the arena is never collapsed by khugepaged. Costs up to
  // 2 MiB of populated, not yet used frames (counted in idle_frames, decayed like freed
  // ones); in a VM a fresh huge page may fault in slower than 512 small pages (measured
  // there). false: fresh frames fault in 4 KiB at a time. docs/design.md#huge-pages.
  bool huge_pages = true;
  // Automatic compaction (the kernel has none): when a size class has at least this many
  // freeable frames after a free, compact it. 0 = off (the default, as in the kernel).
  std::size_t auto_compact_frames = 0;
  // With auto_compact_frames: compact on a background thread (true) or inline in the
  // free() that crossed the threshold (false).
  bool background_compact = true;
  // The largest object alloc() accepts: 4096 (the kernel's ZS_MAX_ALLOC_SIZE) up to 65536.
  // An object above 4096 bytes is a *large object*: a run of whole frames (its own zspage)
  // plus a tail in the small classes (docs/units.md#pool-objects-larger-than-a-frame).
  std::size_t max_object_size = kMaxObjectSize;
  // For a pool that must not ask the kernel for memory while it serves (swap: `uzram
  // serve --swap`, docs/uzram-serve.md#swap). reserve_handles: handle entries for this
  // many objects, plus one chunk per size class, are mapped and populated at create, and
  // with max_object_size above 4096 the large objects' aux words too (as many as the
  // arena has frames, at most reserve_handles, plus a chunk per run class); on demand
  // beyond them, as always. eager_workers: the background threads (deferred
  // free; background compaction when enabled) start at create, not at their first job.
  // prefault: every frame of max_bytes is populated at create (create fails with
  // no_memory if the kernel cannot give them), so that no allocation ever waits for the
  // kernel to find a page. Keeping every freed frame is decay_ms = 0 with frame_cache =
  // max_bytes / 4096.
  std::size_t reserve_handles = 0;
  bool eager_workers = false;
  bool prefault = false;
};

struct PoolStats {
  std::uint64_t total_pages = 0;      // frames owned by zspages (zs_get_total_pages)
  std::uint64_t pages_compacted = 0;  // frames freed by compaction, cumulative
  std::uint64_t objs_allocated = 0;   // object slots in all zspages
  std::uint64_t objs_used = 0;        // live objects
  std::uint64_t zspages = 0;
  std::uint64_t compactions = 0;      // compact() passes that ran
  std::uint64_t compact_busy = 0;     // class passes stopped by a read-locked zspage
  std::uint64_t migrations = 0;       // frames migrated
  std::uint64_t migrate_busy = 0;     // migrations refused: zspage read-locked
  std::uint64_t deferred_frees = 0;   // empty zspages freed later by the worker
  std::uint64_t metadata_bytes = 0;   // handle table + zspage descriptors + frame table
  std::uint64_t arena_frames = 0;     // high-water mark of frame ids in the arena
  std::uint64_t idle_frames = 0;      // freed frames still resident, awaiting reuse or decay
  std::uint64_t frames_returned = 0;  // frames given back to the OS (madvise), cumulative
  std::uint64_t idle_reused = 0;      // frame allocations served by idle frames, cumulative
  // Large objects live (each also uses an object slot in its run class and, when it has a
  // tail, one in a small class: both are in objs_used).
  std::uint64_t large_objects = 0;
  // Tails of large objects placed in a larger small class than their own, to fill a free
  // slot rather than open a zspage (docs/units.md#tails-in-a-larger-class), cumulative.
  std::uint64_t tails_spilled = 0;
};

// Where the pool's resident memory is, in bytes (Pool::memory(); pages counted with
// mincore, so these are what the process really holds, not what was allocated).
struct PoolMemory {
  std::uint64_t frames = 0;  // resident frames in zspages (total_pages, when nothing is swapped)
  std::uint64_t idle_frames = 0;  // resident frames in no zspage: idle ones (awaiting reuse or
                                  // the decay) and those prefaulted above the high-water mark
  std::uint64_t metadata = 0;     // resident pages of the handle table, the zspage
                                  // descriptors, the frame table, free bitmap and idle list
};

// One row of the kernel's debugfs `classes` table.
struct ClassStats {
  unsigned index = 0;
  unsigned size = 0;
  unsigned objs_per_zspage = 0;
  unsigned pages_per_zspage = 0;
  bool huge = false;
  std::uint64_t zspages[kNumFullnessGroups] = {};  // per fullness group (0 %, <10 %, ..., 100 %)
  std::uint64_t obj_allocated = 0;
  std::uint64_t obj_used = 0;
  std::uint64_t pages_used = 0;
  std::uint64_t freeable = 0;  // frames compaction could free
};

class Pool {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Pool>> create(
      const PoolOptions& options = {}) noexcept;
  virtual ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Allocates an object of `size` bytes (1..max_object_size()). Errors: invalid_argument
  // (size 0), too_large (> max_object_size()), no_memory. The contents are undefined until
  // write().
  [[nodiscard]] Result<Handle> alloc(std::size_t size) noexcept;
  // Frees; aborts on an invalid or already freed handle.
  void free(Handle handle) noexcept;
  // Frees n handles, in any order; zero handles are skipped (the kernel's zs_free(0) is a
  // no-op; free(Handle{0}) aborts). Handles are grouped by size class, so a class lock is
  // taken once per run of that class's handles rather than once per handle, and zspages
  // emptied in the run are released after it is dropped. Aborts on an invalid handle or
  // one freed twice (also twice within the batch); handles before the bad one may already
  // be freed then. docs/locking.md#free-batch.
  void free_batch(const Handle* handles, std::size_t n) noexcept;

  // Pins the object and returns its bytes: a direct pointer when the object lies in one
  // frame or in adjacent ones (a zspage's frames mostly are; a migration may move one),
  // else a copy in `local_copy` (at least object_size() bytes; may be null only for
  // objects that do not span a frame boundary - checked whether or not the frames are
  // adjacent). Must be paired with read_end(); may sleep in between.
  // A large object (> 4096 bytes) is always gathered into local_copy (never null), and
  // no lock is held between read_begin and read_end for it: the zspage read-lock contract
  // above is for objects of at most 4096 bytes (docs/locking.md#large-objects).
  [[nodiscard]] const void* read_begin(Handle handle, void* local_copy) noexcept;
  void read_end(Handle handle, const void* mem) noexcept;
  // Copies `len` bytes (<= object_size()) into the object.
  void write(Handle handle, const void* src, std::size_t len) noexcept;
  // The size the object was allocated with.
  [[nodiscard]] std::size_t object_size(Handle handle) const noexcept;

  // Compacts every class (largest first); returns frames freed. One compactor at a time:
  // returns 0 at once when another compaction is running.
  std::size_t compact() noexcept;
  // Waits until the deferred-free worker is idle.
  void flush_deferred() noexcept;
  // Returns every idle frame to the OS now (the decay would in at most decay_ms); returns
  // how many.
  std::size_t release_idle_frames() noexcept;

  // Kernel names: zs_get_total_pages, zs_huge_class_size, zs_lookup_class_index.
  [[nodiscard]] std::size_t total_pages() const noexcept;
  [[nodiscard]] std::size_t huge_class_size() const noexcept;
  // PoolOptions::max_object_size, and the raw-storage threshold for data of that size:
  // huge_class_size() scaled by max_object_size / 4096 (equal to it at 4096). A caller
  // storing compressed units of max_object_size bytes keeps one raw from this size on.
  [[nodiscard]] std::size_t max_object_size() const noexcept;
  [[nodiscard]] std::size_t huge_object_size() const noexcept;
  [[nodiscard]] unsigned lookup_class_index(std::size_t size) const noexcept;
  [[nodiscard]] PoolStats stats() const noexcept;
  // Walks the pool's mappings with mincore: costs one byte of vector per 4 KiB mapped.
  [[nodiscard]] PoolMemory memory() const noexcept;
  [[nodiscard]] std::vector<ClassStats> class_stats() const noexcept;
  // The class table in the kernel's debugfs format (one row per real class, plus Total).
  [[nodiscard]] std::string format_class_stats() const noexcept;
  [[nodiscard]] const PoolOptions& options() const noexcept;

  // Walks every class and zspage and aborts with a message on any inconsistency. Call it
  // when no other thread is using the pool.
  void check_invariants() const noexcept;

 protected:
  Pool() = default;
};

// The class a request would be served by at chain `chain_size` without creating a pool:
// (size, pages_per_zspage, objs_per_zspage) for each real class, largest first.
struct ClassGeometry {
  unsigned index;
  unsigned size;
  unsigned pages_per_zspage;
  unsigned objs_per_zspage;
  bool huge;
};
[[nodiscard]] std::vector<ClassGeometry> class_table(unsigned chain_size) noexcept;

}  // namespace uzram

#endif  // UZRAM_POOL_H_

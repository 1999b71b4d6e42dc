// store/store_impl.h - StoreImpl: the implementation behind uzram::Store (layer 3).
// Split by concern: store.cc (lifecycle, public face), io.cc (write/read/discard),
// attrs.cc (the /sys/block/zramN attribute table and its dispatch; attr_config.cc and
// attr_read.cc: parsers, writers, readers), idle.cc (idle marking, invariants),
// post-processing: backing_file.cc, backing_nbd.cc (the backing tier: a file, a remote
// NBD export), backing_alloc.cc (its space), backing_dev.cc (the store's use of it),
// wb_run.cc and block_writer.cc (batched, packed writes), pp_pass.cc (what the passes
// share), writeback.cc, wb_compact.cc, recompress.cc (secondary algorithms); the policy
// engine that runs them by itself: policy.cc, policy_round.cc, policy_pressure.cc,
// policy_attr.cc.
//
// Lock order (docs/locking.md#store): init_lock_ (store_init) -> slot lock (store_slot) ->
// stream mutex (stream) -> pool locks. I/O holds init_lock_ shared; configuration changes,
// init and reset hold it exclusively, so a reset never races I/O.
#ifndef UZRAM_STORE_STORE_IMPL_H_
#define UZRAM_STORE_STORE_IMPL_H_

#include <ctime>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "store/codec.h"
#include "store/policy.h"
#include "store/slot.h"
#include "store/slot_summary.h"
#include "store/streams.h"
#include "sync/mutex.h"
#include "sync/scoped_lock.h"
#include "sync/sharded_rw_mutex.h"
#include "sync/worker.h"
#include "util/sharded_counter.h"
#include "uzram/pool.h"
#include "uzram/store.h"

namespace uzram {

inline constexpr unsigned kMaxPriorities = 4;  // 0 = primary, 1..3 = recompression
inline constexpr std::uint64_t kMaxDisksize = std::uint64_t{1} << 60;  // 1 EiB
// The algorithm of a new or reset store: the kernel's default (always built in).
inline constexpr const char* kDefaultAlgorithm = "lzo-rle";
// writeback_batch_size: the kernel's default, and uzram's bounds (each block in flight
// holds a 4 KiB page; two batches are in flight).
inline constexpr std::uint32_t kWbBatchDefault = 32, kWbBatchMax = 256;
// unit_policy's default (StoreImpl::unit_split_after_) and the largest N of split_after=N
// (the partial count lives in 8 bits of the version word, slot.h).
inline constexpr std::uint32_t kUnitSplitAfterDefault = 2, kUnitSplitAfterMax = 255;
// backing_timeout_ms: the deadline of every request to a remote backing tier.
inline constexpr std::uint32_t kBackingTimeoutDefault = 10000, kBackingTimeoutMin = 10,
                               kBackingTimeoutMax = 3600000;
// How far past mem_limit the pool may grow for rewrites that store no more than they
// free (StoreImpl::can_store): the zspages of classes that had no free object when the
// rewrite allocated, until later rewrites reuse what it freed. Half of a swap store's
// kSwapPoolSlack, so writers that allocated before they saw the limit still find room.
inline constexpr std::uint64_t kRewriteRoom = kSwapPoolSlack / 2;

// Pool handles collected while slots are cleared and freed together with
// Pool::free_batch (one class-lock hold per run of a class instead of one per block):
// discard, write-zeroes and reset. The objects stay allocated until flush() - after their
// slots were cleared and unlocked, which is safe: nothing names them any more. Flush
// before the pool can go away (the destructor flushes too).
class HandleBatch {
 public:
  explicit HandleBatch(Pool& pool) noexcept : pool_(pool) {}
  ~HandleBatch() { flush(); }
  HandleBatch(const HandleBatch&) = delete;
  HandleBatch& operator=(const HandleBatch&) = delete;
  void add(Handle h) noexcept {
    handles_[n_++] = h;
    if (n_ == kMax) flush();
  }
  void flush() noexcept {
    if (n_) pool_.free_batch(handles_, n_);
    n_ = 0;
  }

 private:
  static constexpr std::size_t kMax = 256;
  Pool& pool_;
  std::size_t n_ = 0;
  Handle handles_[kMax];
};

// Statistics counters (relaxed; sharded so that threads counting on every block do not
// share a cache line). max_used_pages needs a CAS, so it is a plain atomic.
struct StoreCounters {
  ShardedCounter pages_stored;
  ShardedCounter compr_data_size;
  ShardedCounter same_pages;
  ShardedCounter huge_pages;
  ShardedCounter huge_pages_since;
  ShardedCounter failed_reads;
  ShardedCounter failed_writes;
  ShardedCounter notify_free;
  ShardedCounter miss_free;
  ShardedCounter bd_count;
  ShardedCounter bd_reads;
  ShardedCounter bd_writes;
  ShardedCounter wb_failed;       // uzram: blocks whose writeback write or fdatasync failed
  ShardedCounter bd_read_failed;  // uzram: reads of written-back blocks that failed
  ShardedCounter bd_compacted;    // uzram: packed objects moved by writeback_compact
  // Blocks read and written successfully (Store::read/write), since creation: not reset,
  // so rates over them (`uzram status --watch`, metrics) never go negative.
  ShardedCounter blocks_read;
  ShardedCounter blocks_written;
  // Units (UnitStat): unit objects stored now, and the unit I/O counters since init.
  ShardedCounter units;
  ShardedCounter unit_whole_reads;
  ShardedCounter unit_partial_reads;
  ShardedCounter unit_cache_hits;
  ShardedCounter unit_rmw_writes;
  ShardedCounter unit_split_writes;
  ShardedCounter unit_splits;
  std::atomic<std::uint64_t> max_used_pages{0};
};

class StoreImpl final : public Store {
 public:
  StoreImpl(std::string name, const StoreOptions& options) noexcept;
  ~StoreImpl() override;

  // The work behind the public Store method of the same name without the `do_` prefix
  // (Store::write calls do_write, ...): a distinct name, so that StoreImpl never hides a
  // public method of its base. Getters with nothing to do but read a field are written in
  // store.cc directly.
  Result<void> do_write_attr(std::string_view name, std::string_view value,
                             std::string* msg) noexcept;
  Result<std::string> do_read_attr(std::string_view name, std::string* msg) const noexcept;

  Result<void> do_write(std::uint64_t index, const void* block) noexcept;
  Result<void> do_read(std::uint64_t index, void* block) noexcept;
  Result<void> do_write_blocks(std::uint64_t index, std::uint64_t count, const void* data) noexcept;
  Result<void> do_read_blocks(std::uint64_t index, std::uint64_t count, void* data) noexcept;
  Result<void> do_discard(std::uint64_t offset, std::uint64_t len) noexcept;
  void do_slot_free_notify(std::uint64_t index) noexcept;
  bool slot_test(std::uint64_t index, std::uint32_t mask, std::uint64_t* handle) const noexcept;

  MmStat do_mm_stat() const noexcept;
  StoreMemory do_memory() const noexcept;  // memory.cc
  IoStat do_io_stat() const noexcept;
  UnitStat do_unit_stat() const noexcept;
  BdStat do_bd_stat() const noexcept;
  void do_check_invariants() const noexcept;

  const std::string name_;
  const StoreOptions options_;
  StoreCounters stats_;

  // Immutable while initialised (written under init_lock_ exclusive):
  std::uint64_t disksize_ ZS_GUARDED_BY(init_lock_) = 0;
  std::uint64_t nslots_ ZS_GUARDED_BY(init_lock_) = 0;
  Slot* slots_ ZS_GUARDED_BY(init_lock_) = nullptr;
  // slot-table pages that may hold allocated slots (slot_summary.h)
  SlotSummary summary_ ZS_GUARDED_BY(init_lock_);
  std::unique_ptr<Pool> pool_ ZS_GUARDED_BY(init_lock_);
  // a swap store's pool size (mem_limit's ceiling); else 0
  std::uint64_t pool_bytes_ ZS_GUARDED_BY(init_lock_) = 0;
  std::size_t huge_class_size_ ZS_GUARDED_BY(init_lock_) = 0;
  // [0] primary; [1..3] recompression, if configured
  StreamPool streams_[kMaxPriorities] ZS_GUARDED_BY(init_lock_);

  // Protects: the configuration below, and init/reset (exclusive); I/O and
  // post-processing hold it shared. Level: store_init. Sharded: readers do not share a
  // cache line (sync/sharded_rw_mutex.h).
  mutable ShardedRwMutex init_lock_{LockLevel::store_init, "store_init"};
  // requested algorithms; comp_[p].name empty = unset
  CodecSpec comp_[kMaxPriorities] ZS_GUARDED_BY(init_lock_);
  std::string backing_path_ ZS_GUARDED_BY(init_lock_);  // writeback target as shown ("" = none)
  bool compressed_writeback_ ZS_GUARDED_BY(init_lock_) = false;
  // unit_size in bytes (kBlockSize: no units); written before disksize, kept until reset.
  std::uint32_t unit_size_ ZS_GUARDED_BY(init_lock_) = kBlockSize;
  // From unit_size_ at init: N, the blocks of a unit (1: no units), and the first block
  // past the last whole unit of the disk (blocks from there on are never units).
  std::uint32_t unit_blocks_ ZS_GUARDED_BY(init_lock_) = 1;
  std::uint64_t unit_end_ ZS_GUARDED_BY(init_lock_) = 0;
  // The raw-storage threshold of a unit's compressed bytes (Pool::huge_object_size()).
  std::size_t huge_unit_size_ ZS_GUARDED_BY(init_lock_) = 0;
  // Units are compressed in pieces of this many bytes (Codec::compress_pieces), so that a
  // block read decodes only the pieces up to its own (docs/units.md#partial-decoding).
  std::size_t unit_piece_ ZS_GUARDED_BY(init_lock_) = 0;
  // The backing device, open (and flock'ed) from the write of backing_dev until reset or
  // `backing_dev none`; its allocator is sized at init (store/backing.h).
  struct Backing;
  std::shared_ptr<Backing> backing_
      ZS_GUARDED_BY(init_lock_);  // shared_ptr: the type is complete only in backing.h

  // Changeable at runtime (atomic, relaxed: a soft limit checked after allocation, as in
  // the kernel). writeback_batch_size and backing_timeout_ms survive reset (the kernel sets
  // writeback_batch_size when the device is created); a pass reads the batch size once.
  std::atomic<std::uint64_t> mem_limit_pages_{0};
  std::atomic<std::uint64_t> wb_limit_pages_{0};
  std::atomic<bool> wb_limit_enable_{false};
  std::atomic<std::uint32_t> wb_batch_size_{kWbBatchDefault};
  std::atomic<std::uint32_t> backing_timeout_ms_{kBackingTimeoutDefault};
  // One post-processing (writeback / recompress) at a time: others get Errc::busy
  // (the kernel's -EAGAIN).
  std::atomic<bool> pp_in_progress_{false};
  // Versions of unit objects (slot.h, head + 1): bumped at every publication of a unit,
  // never reset (not by reset either), so a stream's decoded-unit cache keyed by it is never
  // stale. Relaxed: the unit lock orders the publication that carries it.
  std::atomic<std::uint64_t> unit_version_{0};
  // unit_policy (docs/units.md#writes): a partial write of a stored unit re-encodes it
  // (rmw) for its first split_after - 1 partial writes, then splits it into 4 KiB blocks;
  // 0 = never split (rmw), 1 = split at once. Runtime-settable, relaxed (read once per
  // partial write); reset restores the default.
  std::atomic<std::uint32_t> unit_split_after_{kUnitSplitAfterDefault};
  // Open users (Store::open_user). Incremented under init_lock_ shared, and only while
  // initialised; read under init_lock_ exclusive by reset and disksize, which refuse while
  // it is not 0: the lock orders the increment before or after them. Decremented without
  // the lock: a reset that races a close may still see the user and fail with busy, the
  // safe answer. Relaxed: init_lock_ provides the ordering.
  std::atomic<std::uint64_t> users_{0};
  // Removed from its StoreRegistry (hot_remove): set once, under init_lock_ exclusive, on
  // an uninitialised store; then every attribute write fails with ENODEV, and the writes
  // that acquire resources (disksize, backing_dev) re-check it under init_lock_
  // exclusive, so a retired store is never initialised again. Read relaxed elsewhere
  // (the dispatch's early refusal; init_lock_ orders the re-checks).
  std::atomic<bool> retired_{false};

  std::int64_t epoch_ = 0;  // ac_time origin, seconds of CLOCK_MONOTONIC_COARSE

  // The log (Store::set_log_hook): policy decisions, one line per call. log() costs one
  // relaxed load when no hook is set. Protects: log_hook_. Level store_log (27): taken
  // alone or under init_lock_ shared, never with a slot lock or the policy's mutexes; the
  // hook runs inside it (the server's LogSink::mu_, log_sink, nests in it).
  mutable Mutex log_mu_{LockLevel::store_log, "StoreImpl::log_mu_"};
  LogHook log_hook_ ZS_GUARDED_BY(log_mu_);
  std::atomic<bool> has_log_{false};  // relaxed: a hint; log() re-checks under log_mu_
  [[nodiscard]] bool logging() const noexcept { return has_log_.load(std::memory_order_relaxed); }
  void log(std::string_view line) const noexcept;

  // Seconds since epoch_ for ac_time, from the coarse monotonic clock (a few ms of
  // resolution, which idle tracking in seconds does not notice, and cheaper than the
  // precise clock on every I/O).
  static std::int64_t coarse_seconds() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec;
  }
  std::uint32_t now_seconds() const noexcept {
    return static_cast<std::uint32_t>(coarse_seconds() - epoch_);
  }
  // Tests: moves the store's clock (access times, the policy's rounds) `seconds` ahead.
  void advance_clock_for_testing(std::uint32_t seconds) noexcept;

  // The unit lock of block `index` (docs/locking.md#store-units): the head slot of its
  // aligned range of unit_blocks_ blocks; the block's own slot when N = 1. Take it, then
  // say slots_[i].held_by(unit) for the slot(s) of the range the caller touches.
  Slot& unit_lock(std::uint64_t index) const noexcept ZS_REQUIRES_SHARED(init_lock_) {
    return slots_[index & ~std::uint64_t{unit_blocks_ - 1}];
  }
  // Whether the aligned range of block `index` is a whole unit of the disk (may be stored
  // as one object): false on a store without units and for the disk's tail blocks.
  bool in_unit(std::uint64_t index) const noexcept ZS_REQUIRES_SHARED(init_lock_) {
    return unit_blocks_ > 1 && index < unit_end_;
  }

  // Calls fn(index, slot) for each slot in [lo, hi) that looks stored (slotf::kStored: an
  // object, a fill word, a backing block, or a unit's member; a relaxed peek:
  // re-check under the slot lock), skipping the slot-table pages the summary says never
  // held one; fn returns false to stop (then so does this). Cost: what is stored, not the
  // disk's size. Caller holds init_lock_ (shared or exclusive); the device is initialised.
  template <typename Fn>
  bool for_each_stored_slot(std::uint64_t lo, std::uint64_t hi, Fn&& fn) const noexcept
      ZS_REQUIRES_SHARED(init_lock_) {
    bool go = true;
    Slot* const slots = slots_;  // read under the lock (the lambda is not analysed with it)
    summary_.for_each_range(lo, hi, [&](std::uint64_t first, std::uint64_t end) {
      for (std::uint64_t i = first; i < end && go; i++) {
        if (slots[i].flags.load(std::memory_order_relaxed) & slotf::kStored) go = fn(i, slots[i]);
      }
      return go;
    });
    return go;
  }

  // ---- Internals (store.cc, io.cc) ----
  Result<void> init_locked(std::uint64_t disksize, std::string* msg) noexcept
      ZS_REQUIRES(init_lock_);
  // Returns the backing tier, to be closed (a remote disconnected, its I/O thread joined)
  // by the caller after it releases the lock.
  [[nodiscard]] std::shared_ptr<Backing> reset_locked() noexcept ZS_REQUIRES(init_lock_);
  bool swap_pool_options(std::uint64_t blocks, PoolOptions* po, std::string* msg) const noexcept
      ZS_REQUIRES(init_lock_);
  // hot_remove's half in the store: refuses (busy) an initialised store or one with users,
  // else resets the configuration (closing a backing device) and sets retired_.
  Result<void> retire(std::string* msg) noexcept;
  // The ENODEV refusal of a write to a retired store, naming `attr`.
  Result<void> retired_error(std::string_view attr, std::string* msg) const noexcept;
  // Frees what the slot holds (pool object, same fill, or backing block) and clears its
  // size and flags (the lock bit stays). With `batch`, a pool object is queued there
  // instead of freed at once. Caller holds the slot lock.
  void free_slot_locked(Slot& s, HandleBatch* batch = nullptr) noexcept ZS_REQUIRES(s)
      ZS_REQUIRES_SHARED(init_lock_);
  // ---- Units (unit_slots.cc; the I/O: unit_io.cc, unit_write.cc, unit_read.cc;
  // docs/units.md). `u` is a unit's head slot, held (the unit lock). ----
  // Frees the object of the stored unit at u (UNIT set) and clears UNIT and MEMBER on its
  // N slots (the version word too), counting it out of pages_stored (its members),
  // compr_data_size, huge_pages and units. With `batch`, the object is queued there.
  void free_unit_locked(Slot& u, HandleBatch* batch = nullptr) noexcept ZS_REQUIRES(u)
      ZS_REQUIRES_SHARED(init_lock_);
  // Frees whatever the range of u holds: its unit, or each block's own contents.
  void free_range_locked(Slot& u, HandleBatch* batch = nullptr) noexcept ZS_REQUIRES(u)
      ZS_REQUIRES_SHARED(init_lock_);
  // Block k of the stored unit at u stops being a member (its data is gone: free notify,
  // a discard that cannot re-encode): counted out; the object goes with the last member.
  void drop_member_locked(Slot& u, unsigned k, HandleBatch* batch = nullptr) noexcept ZS_REQUIRES(u)
      ZS_REQUIRES_SHARED(init_lock_);
  // One block's write and read (io.cc), what Store::write/read do under init_lock_ shared;
  // a block of a stored unit goes to write_partial_locked / read_member_locked.
  Result<void> write_one(std::uint64_t index, const void* block) noexcept
      ZS_REQUIRES_SHARED(init_lock_);
  Result<void> read_one(std::uint64_t index, void* block) noexcept ZS_REQUIRES_SHARED(init_lock_);
  Result<void> write_block(std::uint64_t index, const void* block) noexcept
      ZS_REQUIRES_SHARED(init_lock_);
  Result<void> write_into_unit_locked(Slot& u, std::uint64_t index, const void* block,
                                      Handle made) noexcept ZS_RELEASE(u)
      ZS_REQUIRES_SHARED(init_lock_);
  void discard_blocks(std::uint64_t first, std::uint64_t end, HandleBatch& batch) noexcept
      ZS_REQUIRES_SHARED(init_lock_);
  // Whole aligned units (unit_io.cc): `first` is a head's index, the range in_unit().
  Result<void> write_unit(std::uint64_t first, const unsigned char* data) noexcept
      ZS_REQUIRES_SHARED(init_lock_);
  Result<void> read_unit(std::uint64_t first, unsigned char* data) noexcept
      ZS_REQUIRES_SHARED(init_lock_);
  // Blocks [index, index + count) of one unit range, not the whole range (unit_io.cc).
  Result<void> write_piece(std::uint64_t index, unsigned count, const unsigned char* data) noexcept
      ZS_REQUIRES_SHARED(init_lock_);
  // Publishes a new object for the unit at u (old contents already freed or about to be
  // replaced by the caller): handle, size, HUGE, the members in `mask`, a new version with
  // `partials`; counts it in. Returns the version.
  std::uint64_t publish_unit_locked(Slot& u, Handle h, std::size_t len, bool huge,
                                    std::uint32_t mask, unsigned partials) noexcept ZS_REQUIRES(u)
      ZS_REQUIRES_SHARED(init_lock_);
  // A partial write of blocks [k, k + count) of the stored unit at u (data, or holes when
  // null: a discard), by the unit policy (unit_partial.cc): rmw or split, counted. On an
  // error the unit is as it was.
  Result<void> write_partial_locked(Slot& u, unsigned k, unsigned count,
                                    const unsigned char* data) noexcept ZS_REQUIRES(u)
      ZS_REQUIRES_SHARED(init_lock_);
  // Block k of the stored unit at u: zeros for a non-member, else through this stream's
  // decoded-unit cache (unit_partial.cc).
  Result<void> read_member_locked(Slot& u, unsigned k, void* block) noexcept ZS_REQUIRES(u)
      ZS_REQUIRES_SHARED(init_lock_);
  // The decoded unit at u in st's cache, at least its first `need` bytes (whole blocks);
  // decoded with dec (st, or for a partial write of a recompressed unit a stream of the
  // unit's algorithm: then all of it). *hit: found with those bytes decoded already, or
  // with the decompression of a prefix to continue (no decompression started again).
  Result<Stream::CachedUnit*> cached_unit_locked(Slot& u, Stream& st, Stream& dec, std::size_t need,
                                                 bool* hit) noexcept ZS_REQUIRES(u)
      ZS_REQUIRES_SHARED(init_lock_);
  // The stored unit at u, decoded into dst (unit_size_ bytes) with st, a stream of the
  // unit's priority (its gather buffer).
  Result<void> decode_unit_locked(Slot& u, Stream& st, unsigned char* dst) noexcept ZS_REQUIRES(u)
      ZS_REQUIRES_SHARED(init_lock_);
  // The two outcomes of a partial write (unit_partial.cc): `buf` is the patched unit in
  // st's cache entry c, `mask` the members after it.
  Result<void> rmw_locked(Slot& u, Stream& st, Stream::CachedUnit* c, std::uint32_t mask,
                          unsigned partials) noexcept ZS_REQUIRES(u) ZS_REQUIRES_SHARED(init_lock_);
  Result<void> split_locked(Slot& u, Stream& st, const unsigned char* buf,
                            std::uint32_t mask) noexcept ZS_REQUIRES(u)
      ZS_REQUIRES_SHARED(init_lock_);
  // Stamps an access to block s of the range at u: s's and, for a stored unit, the head's.
  void touch_locked(Slot& u, Slot& s) noexcept ZS_REQUIRES(u) ZS_REQUIRES(s);
  // Discard of [first, end) on a store with units (unit_io.cc).
  void discard_units(std::uint64_t first, std::uint64_t end, HandleBatch& batch) noexcept
      ZS_REQUIRES_SHARED(init_lock_);

  // check_invariants' part for the unit range at u (a head): returns the blocks stored
  // in it and adds to the counts. Caller holds u.
  struct InvariantCounts {
    std::uint64_t stored = 0, same = 0, huge = 0, wb = 0, compr = 0, objs = 0, units = 0;
    std::uint64_t large = 0;  // objects above 4 KiB: a run, and a tail object or none
  };
  void check_range_locked(Slot& u, InvariantCounts* c) const noexcept ZS_REQUIRES(u)
      ZS_REQUIRES_SHARED(init_lock_);

  // Clears IDLE and PP_SLOT and stamps ac_time. Caller holds the slot lock.
  void mark_accessed_locked(Slot& s) noexcept ZS_REQUIRES(s);
  // The block's contents (zeros, fill word, raw, decompressed, or from the backing
  // device). Caller holds the slot lock.
  Result<void> load_locked(Slot& s, void* block) noexcept ZS_REQUIRES(s)
      ZS_REQUIRES_SHARED(init_lock_);
  // Pool pages after an allocation: updates mem_used_max; false when over mem_limit,
  // except for a rewrite that stores `len` bytes in place of `freed` bytes of pool
  // objects (freed when it publishes): over mem_limit it may still go on when len <= freed
  // and the pool stays within mem_limit + kRewriteRoom, so that a full store keeps taking
  // rewrites that do not grow it (docs/store.md#mem_limit-and-rewrites).
  bool can_store(std::size_t len = 1, std::size_t freed = 0) noexcept
      ZS_REQUIRES_SHARED(init_lock_);
  // The pool bytes that blocks [index, index + count) hold now (a stored unit's object
  // counted at its head), read without their lock: the `freed` of can_store for a write
  // that will replace them (a racing write may change it; see can_store).
  std::size_t held_bytes(std::uint64_t index, unsigned count) const noexcept
      ZS_REQUIRES_SHARED(init_lock_);

  // ---- Backing device (backing_dev.cc); the attributes' parsers and writers, idle,
  // writeback and recompress included, are the attribute table's rows (attr_table.h). ----
  // Sizes the backing device's allocator at init (disksize); opens nothing. Caller holds
  // init_lock_ exclusive.
  Result<void> backing_open_locked(std::string* msg) noexcept ZS_REQUIRES(init_lock_);
  [[nodiscard]] std::shared_ptr<Backing> backing_close_locked() noexcept ZS_REQUIRES(init_lock_);
  // Frees a written-back slot's bytes in the backing tier / reads them (handle: the
  // slot's, store/wb_layout.h). Caller holds the slot lock.
  void free_backing_block(std::uint64_t handle) noexcept ZS_REQUIRES_SHARED(init_lock_);
  Result<void> read_backing_block(Slot& s, std::uint64_t handle, void* out) noexcept ZS_REQUIRES(s)
      ZS_REQUIRES_SHARED(init_lock_);
  // check_invariants' part: the allocator's live bytes per block against the WB slots.
  void check_backing_invariants() const noexcept ZS_REQUIRES_SHARED(init_lock_);

  // ---- The streams' idle release (store.cc; docs/store.md#streams) ----
  // The timer's job: sweeps every stream pool (StreamPool::sweep(false)) and re-arms the
  // timer while a stream may still hold memory. Takes init_lock_ shared.
  void sweep_streams() noexcept ZS_EXCLUDES(init_lock_);
  // The store's last user closed: every stream not in use gives its memory back now, and
  // the pool its idle frames. Not for a swap store. Takes init_lock_ shared.
  void release_idle_memory() noexcept ZS_EXCLUDES(init_lock_);

  // The streams' timer (StreamTimer, streams.h; no worker when stream_idle_ms is 0 or for
  // a swap store) and its worker. Stopped by the destructor, first, with the policy's.
  StreamTimer stream_timer_;
  Worker stream_worker_{[this] { sweep_streams(); }};

  // The tiering policy engine (store/policy.h). Last: its worker is stopped (by the
  // destructor, first) before anything it uses goes away.
  Policy policy_{*this};
};

// The process's live stores, for the memory breakdown (memory.cc).
void memory_register(const StoreImpl* s) noexcept;
void memory_unregister(const StoreImpl* s) noexcept;

inline StoreImpl* impl(Store* s) noexcept { return static_cast<StoreImpl*>(s); }
inline const StoreImpl* impl(const Store* s) noexcept { return static_cast<const StoreImpl*>(s); }

}  // namespace uzram

#endif  // UZRAM_STORE_STORE_IMPL_H_

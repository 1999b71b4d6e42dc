// store/store_impl.h - StoreImpl: the implementation behind uzram::Store (layer 3).
// Split by concern: store.cc (lifecycle, public face), io.cc (write/read/discard),
// attrs.cc (the /sys/block/zramN attribute table and its dispatch; attr_config.cc and
// attr_read.cc: parsers, writers, readers), idle.cc (idle marking, invariants),
// post-processing: backing.cc (the backing device), backing_dev.cc (the store's use of
// it), block_writer.cc (batched block writes), pp_pass.cc (what writeback and recompress
// share), writeback.cc, recompress.cc (secondary algorithms).
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
#include <shared_mutex>
#include <string>

#include "store/codec.h"
#include "store/slot.h"
#include "store/slot_summary.h"
#include "store/streams.h"
#include "sync/sharded_rw_mutex.h"
#include "uzram/pool.h"
#include "uzram/store.h"
#include "util/sharded_counter.h"

namespace uzram {

inline constexpr unsigned kMaxPriorities = 4;  // 0 = primary, 1..3 = recompression
inline constexpr std::uint64_t kMaxDisksize = std::uint64_t{1} << 60;  // 1 EiB
// The algorithm of a new or reset store: the kernel's default (always built in).
inline constexpr const char* kDefaultAlgorithm = "lzo-rle";

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
  ShardedCounter wb_failed;  // uzram: blocks whose writeback write or fdatasync failed
  // Blocks read and written successfully (Store::read/write), since creation: not reset,
  // so rates over them (`uzram status --watch`, metrics) never go negative.
  ShardedCounter blocks_read;
  ShardedCounter blocks_written;
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
  Result<void> do_discard(std::uint64_t offset, std::uint64_t len) noexcept;
  void do_slot_free_notify(std::uint64_t index) noexcept;
  bool slot_test(std::uint64_t index, std::uint32_t mask, std::uint64_t* handle) const noexcept;

  MmStat do_mm_stat() const noexcept;
  StoreMemory do_memory() const noexcept;  // memory.cc
  IoStat do_io_stat() const noexcept;
  BdStat do_bd_stat() const noexcept;
  void do_check_invariants() const noexcept;

  const std::string name_;
  const StoreOptions options_;
  StoreCounters stats_;

  // Immutable while initialised (written under init_lock_ exclusive):
  std::uint64_t disksize_ = 0;
  std::uint64_t nslots_ = 0;
  Slot* slots_ = nullptr;
  SlotSummary summary_;  // slot-table pages that may hold allocated slots (slot_summary.h)
  std::unique_ptr<Pool> pool_;
  std::uint64_t pool_bytes_ = 0;  // a swap store's pool size (mem_limit's ceiling); else 0
  std::size_t huge_class_size_ = 0;
  StreamPool streams_[kMaxPriorities];  // [0] primary; [1..3] recompression, if configured

  // Protects: the configuration below, and init/reset (exclusive); I/O and
  // post-processing hold it shared. Level: store_init. Sharded: readers do not share a
  // cache line (sync/sharded_rw_mutex.h).
  mutable ShardedRwMutex init_lock_;
  CodecSpec comp_[kMaxPriorities];  // requested algorithms; comp_[p].name empty = unset
  std::string backing_path_;        // writeback target as shown ("" = none)
  bool compressed_writeback_ = false;
  // The backing device, open (and flock'ed) from the write of backing_dev until reset or
  // `backing_dev none`; its allocator is sized at init (store/backing.h).
  struct Backing;
  std::shared_ptr<Backing> backing_;  // shared_ptr: the type is complete only in backing.h

  // Changeable at runtime (atomic, relaxed: a soft limit checked after allocation, as in
  // the kernel).
  std::atomic<std::uint64_t> mem_limit_pages_{0};
  std::atomic<std::uint64_t> wb_limit_pages_{0};
  std::atomic<bool> wb_limit_enable_{false};
  // One post-processing (writeback / recompress) at a time: others get Errc::busy
  // (the kernel's -EAGAIN).
  std::atomic<bool> pp_in_progress_{false};
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

  // Calls fn(index, slot) for each slot in [lo, hi) that looks allocated (relaxed peek:
  // re-check under the slot lock), skipping the slot-table pages the summary says never
  // held one; fn returns false to stop (then so does this). Cost: what is stored, not the
  // disk's size. Caller holds init_lock_ (shared or exclusive); the device is initialised.
  template <typename Fn>
  bool for_each_stored_slot(std::uint64_t lo, std::uint64_t hi, Fn&& fn) const noexcept {
    bool go = true;
    summary_.for_each_range(lo, hi, [&](std::uint64_t first, std::uint64_t end) {
      for (std::uint64_t i = first; i < end && go; i++) {
        if (slots_[i].allocated()) go = fn(i, slots_[i]);
      }
      return go;
    });
    return go;
  }

  // ---- Internals (store.cc, io.cc) ----
  Result<void> init_locked(std::uint64_t disksize, std::string* msg) noexcept;  // init_lock_ excl.
  void reset_locked() noexcept;                                                  // init_lock_ excl.
  bool swap_pool_options(std::uint64_t blocks, PoolOptions* po, std::string* msg) const noexcept;
  // hot_remove's half in the store: refuses (busy) an initialised store or one with users,
  // else resets the configuration (closing a backing device) and sets retired_.
  Result<void> retire(std::string* msg) noexcept;
  // The ENODEV refusal of a write to a retired store, naming `attr`.
  Result<void> retired_error(std::string_view attr, std::string* msg) const noexcept;
  // Frees what the slot holds (pool object, same fill, or backing block) and clears its
  // size and flags (the lock bit stays). With `batch`, a pool object is queued there
  // instead of freed at once. Caller holds the slot lock.
  void free_slot_locked(Slot& s, HandleBatch* batch = nullptr) noexcept;
  // Clears IDLE and PP_SLOT and stamps ac_time. Caller holds the slot lock.
  void mark_accessed_locked(Slot& s) noexcept;
  // The block's contents (zeros, fill word, raw, decompressed, or from the backing
  // device). Caller holds the slot lock.
  Result<void> load_locked(Slot& s, void* block) noexcept;
  // Pool pages after an allocation: updates mem_used_max; false when over mem_limit.
  bool can_store() noexcept;

  // ---- Backing device (backing_dev.cc); the attributes' parsers and writers, idle,
  // writeback and recompress included, are the attribute table's rows (attr_table.h). ----
  // Sizes the backing device's allocator at init (disksize); opens nothing. Caller holds
  // init_lock_ exclusive.
  Result<void> backing_open_locked(std::string* msg) noexcept;
  void backing_close_locked() noexcept;
  // Frees a backing block / reads a written-back slot (caller holds the slot lock).
  void free_backing_block(std::uint64_t block) noexcept;
  Result<void> read_backing_block(Slot& s, std::uint64_t block, void* out) noexcept;
};

// The process's live stores, for the memory breakdown (memory.cc).
void memory_register(const StoreImpl* s) noexcept;
void memory_unregister(const StoreImpl* s) noexcept;

inline StoreImpl* impl(Store* s) noexcept { return static_cast<StoreImpl*>(s); }
inline const StoreImpl* impl(const Store* s) noexcept { return static_cast<const StoreImpl*>(s); }

}  // namespace uzram

#endif  // UZRAM_STORE_STORE_IMPL_H_

// store/store.cc - Store's public face, lifecycle (init by disksize, reset) and stats.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "store/backing.h"
#include "store/store_impl.h"
#include "store/unit.h"
#include "util/check.h"
#include "util/errno_text.h"

namespace uzram {

// ---- Store: forwards to StoreImpl -----------------------------------------------------

Result<std::unique_ptr<Store>> Store::create(std::string name,
                                             const StoreOptions& options) noexcept {
  std::unique_ptr<StoreImpl> s(new (std::nothrow) StoreImpl(std::move(name), options));
  if (!s) return Errc::no_memory;
  return std::unique_ptr<Store>(std::move(s));
}

Store::~Store() = default;
Result<void> Store::write_attr(std::string_view name, std::string_view value,
                               std::string* message) noexcept {
  return impl(this)->do_write_attr(name, value, message);
}
Result<std::string> Store::read_attr(std::string_view name, std::string* message) const noexcept {
  return impl(this)->do_read_attr(name, message);
}
Result<void> Store::write(std::uint64_t i, const void* b) noexcept {
  auto r = impl(this)->do_write(i, b);
  if (r) impl(this)->stats_.blocks_written.fetch_add(1, std::memory_order_relaxed);
  return r;
}
Result<void> Store::read(std::uint64_t i, void* b) noexcept {
  auto r = impl(this)->do_read(i, b);
  if (r) impl(this)->stats_.blocks_read.fetch_add(1, std::memory_order_relaxed);
  return r;
}
Result<void> Store::discard(std::uint64_t off, std::uint64_t len) noexcept {
  return impl(this)->do_discard(off, len);
}
void Store::slot_free_notify(std::uint64_t i) noexcept { impl(this)->do_slot_free_notify(i); }
bool Store::is_unallocated(std::uint64_t i) const noexcept {
  return !impl(this)->slot_test(i, slotf::kStored, nullptr);
}
bool Store::is_same_filled(std::uint64_t i, std::uint64_t* word) const noexcept {
  return impl(this)->slot_test(i, slotf::kSame, word);
}
const std::string& Store::name() const noexcept { return impl(this)->name_; }
bool Store::initialized() const noexcept {
  ReaderLock l(impl(this)->init_lock_);
  return impl(this)->disksize_ != 0;
}
Result<void> Store::write_blocks(std::uint64_t index, std::uint64_t count,
                                 const void* data) noexcept {
  auto r = impl(this)->do_write_blocks(index, count, data);
  if (r) impl(this)->stats_.blocks_written.fetch_add(count, std::memory_order_relaxed);
  return r;
}
Result<void> Store::read_blocks(std::uint64_t index, std::uint64_t count, void* data) noexcept {
  auto r = impl(this)->do_read_blocks(index, count, data);
  if (r) impl(this)->stats_.blocks_read.fetch_add(count, std::memory_order_relaxed);
  return r;
}
std::uint64_t Store::unit_size() const noexcept {
  ReaderLock l(impl(this)->init_lock_);
  return impl(this)->unit_size_;
}
UnitStat Store::unit_stat() const noexcept { return impl(this)->do_unit_stat(); }
std::uint64_t Store::disksize() const noexcept {
  ReaderLock l(impl(this)->init_lock_);
  return impl(this)->disksize_;
}
Result<std::uint64_t> Store::open_user() noexcept {
  StoreImpl* s = impl(this);
  ReaderLock l(s->init_lock_);
  if (s->disksize_ == 0) return Errc::not_initialized;
  s->users_.fetch_add(1, std::memory_order_relaxed);
  return s->disksize_;
}
void Store::close_user() noexcept {
  const std::uint64_t was = impl(this)->users_.fetch_sub(1, std::memory_order_relaxed);
  ZS_CHECK(was > 0, "Store::close_user without open_user");
  if (was == 1) impl(this)->release_idle_memory();  // nobody left to read or write
}
std::uint64_t Store::users() const noexcept {
  return impl(this)->users_.load(std::memory_order_relaxed);
}
MmStat Store::mm_stat() const noexcept { return impl(this)->do_mm_stat(); }
StoreMemory Store::memory() const noexcept { return impl(this)->do_memory(); }
IoStat Store::io_stat() const noexcept { return impl(this)->do_io_stat(); }
BdStat Store::bd_stat() const noexcept { return impl(this)->do_bd_stat(); }
IoCounts Store::io_counts() const noexcept {
  return {impl(this)->stats_.blocks_read.load(std::memory_order_relaxed),
          impl(this)->stats_.blocks_written.load(std::memory_order_relaxed)};
}
std::uint64_t Store::miss_free() const noexcept {
  return impl(this)->stats_.miss_free.load(std::memory_order_relaxed);
}
std::string Store::comp_algorithm() const noexcept {
  ReaderLock l(impl(this)->init_lock_);
  return impl(this)->comp_[0].name;
}
unsigned Store::streams() const noexcept {
  ReaderLock l(impl(this)->init_lock_);
  return impl(this)->streams_[0].size();
}
const Pool* Store::pool() const noexcept {
  ReaderLock l(impl(this)->init_lock_);
  return impl(this)->pool_.get();
}
void Store::check_invariants() const noexcept { impl(this)->do_check_invariants(); }
void Store::set_log_hook(LogHook hook) noexcept {
  StoreImpl* s = impl(this);
  MutexLock l(s->log_mu_);
  s->log_hook_ = std::move(hook);
  s->has_log_.store(static_cast<bool>(s->log_hook_), std::memory_order_relaxed);
}

void StoreImpl::log(std::string_view line) const noexcept {
  if (!logging()) return;
  MutexLock l(log_mu_);
  if (log_hook_) log_hook_(line);
}

void StoreImpl::advance_clock_for_testing(std::uint32_t seconds) noexcept {
  WriterLock l(init_lock_);
  epoch_ -= seconds;
}

bool Store::retired() const noexcept {
  return impl(this)->retired_.load(std::memory_order_relaxed);
}

// ---- Lifecycle -------------------------------------------------------------------------

StoreImpl::StoreImpl(std::string name, const StoreOptions& options) noexcept
    : name_(std::move(name)), options_(options) {
  comp_[0].name = kDefaultAlgorithm;
  if (!options_.swap && options_.stream_idle_ms != 0) {
    stream_timer_.worker = &stream_worker_;
    stream_timer_.period = std::chrono::milliseconds(options_.stream_idle_ms);
  }
  memory_register(this);
}

StoreImpl::~StoreImpl() {
  stream_worker_.stop();         // first, as the policy's: its job takes init_lock_
  policy_.stop();                // first: its worker takes init_lock_ and uses everything below
  memory_unregister(this);       // then: a breakdown may be reading this store
  std::shared_ptr<Backing> old;  // closed with no lock held
  {
    WriterLock l(init_lock_);
    old = reset_locked();
  }
}

void StoreImpl::sweep_streams() noexcept {
  // Cleared before the streams are looked at: a stream taken after its sweep arms the timer
  // again (docs/locking.md#stream-release).
  stream_timer_.armed.store(false);
  bool again = false;
  {
    ReaderLock l(init_lock_);
    for (StreamPool& p : streams_) again |= p.sweep(false);
  }
  if (again) stream_timer_.arm();
}

void StoreImpl::release_idle_memory() noexcept {
  if (options_.swap) return;  // a swap store keeps its streams warm and its frames
  ReaderLock l(init_lock_);
  for (StreamPool& p : streams_) (void)p.sweep(true);  // a busy one: the timer's
  if (pool_) (void)pool_->release_idle_frames();
}

// Writing disksize: allocate the slot table, create the pool and the streams of every
// configured priority. Protocol: docs/store.md#lifecycle.
Result<void> StoreImpl::init_locked(std::uint64_t disksize, std::string* msg) noexcept {
  if (disksize > kMaxDisksize) {  // also keeps the rounding below from overflowing
    if (msg) {
      *msg =
          "disksize: " + std::to_string(disksize) + " bytes is more than uzram can address (1 EiB)";
    }
    return Errc::invalid_argument;
  }
  const std::uint64_t n = (disksize + kBlockSize - 1) / kBlockSize;
  void* table = mmap(nullptr, n * sizeof(Slot), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (table == MAP_FAILED) {
    const int e = errno;
    if (msg) {
      *msg = "disksize: cannot map the slot table for " + std::to_string(disksize) + " bytes (" +
             std::to_string(n * sizeof(Slot) >> 20) +
             " MiB of address space, 16 bytes per 4 KiB block): " + errno_text(e);
    }
    return Errc::no_memory;
  }
  PoolOptions po;
  po.name = name_;
  if (unit_size_ > kBlockSize) po.max_object_size = unit_size_;  // a unit's object
  // No huge-page regions (PoolOptions::huge_pages): a store's reads are decompression, not
  // TLB misses, and a region being filled holds up to 2 MiB of populated frames (3.4 MiB of
  // idle frames after 128 MiB of the corpus at 32K units, against 0.1), and a fresh huge
  // page is slow to fault on a VM whose free memory goes back to the host
  // (docs/benchmarks.md#huge-page-regions).
  po.huge_pages = false;
  if (options_.swap && !swap_pool_options(n, &po, msg)) {
    munmap(table, n * sizeof(Slot));
    return Errc::invalid_argument;
  }
  auto pool = Pool::create(po);
  if (!pool) {
    munmap(table, n * sizeof(Slot));
    if (msg && options_.swap) {
      *msg = "disksize: cannot take the pool's " + std::to_string(po.max_bytes >> 20) +
             " MiB now (a store for swap populates mem_limit + 4 MiB at disksize)";
    } else if (msg) {
      *msg = "disksize: cannot create the pool";
    }
    return pool.error();
  }
  for (unsigned p = 0; p < kMaxPriorities; p++) {
    if (comp_[p].name.empty()) continue;
    const std::size_t ub = unit_size_ > kBlockSize ? unit_size_ : 0;
    if (auto r = streams_[p].init(comp_[p], 0, ub, options_.swap, &stream_timer_); !r) {
      for (auto& st : streams_) st = StreamPool{};
      munmap(table, n * sizeof(Slot));
      if (msg)
        *msg = "disksize: cannot set up algorithm '" + comp_[p].name + "': " + r.error().message();
      return r.error();
    }
  }
  if (!summary_.init(n)) {
    for (auto& st : streams_) st = StreamPool{};
    munmap(table, n * sizeof(Slot));
    if (msg) *msg = "disksize: cannot allocate the slot table's summary";
    return Errc::no_memory;
  }
  slots_ = static_cast<Slot*>(table);
  nslots_ = n;
  disksize_ = n * kBlockSize;
  if (auto r = backing_open_locked(msg); !r) {
    munmap(table, n * sizeof(Slot));
    summary_.release();
    slots_ = nullptr;
    nslots_ = disksize_ = 0;
    for (auto& st : streams_) st = StreamPool{};
    return r;
  }
  pool_ = std::move(pool).value();
  pool_bytes_ = options_.swap ? po.max_bytes : 0;
  huge_class_size_ = pool_->huge_class_size();
  huge_unit_size_ = pool_->huge_object_size();
  unit_blocks_ = unit_size_ / kBlockSize;
  unit_piece_ = unit::piece_bytes(unit_size_);
  unit_end_ = n / unit_blocks_ * unit_blocks_;
  epoch_ = coarse_seconds();
  policy_.limits_changed_locked();  // a policy set before disksize starts now
  return {};
}

// A swap store's pool (StoreOptions::swap): sized for mem_limit, every frame kept, the
// handle entries of one object per block mapped now, its threads started now. False (and
// *msg) without a mem_limit. Caller holds init_lock_ exclusive.
bool StoreImpl::swap_pool_options(std::uint64_t blocks, PoolOptions* po,
                                  std::string* msg) const noexcept {
  const std::uint64_t limit = mem_limit_pages_.load(std::memory_order_relaxed) * kBlockSize;
  if (limit == 0) {
    if (msg) {
      *msg =
          "disksize: a store for swap needs mem_limit first (its pool is sized for it and "
          "its memory taken now)";
    }
    return false;
  }
  constexpr std::uint64_t kMaxPool = std::uint64_t{1} << 40;  // Pool::create's bound
  if (limit > kMaxPool - kSwapPoolSlack) {
    if (msg) *msg = "disksize: a store for swap takes a mem_limit of at most 1 TiB - 4 MiB";
    return false;
  }
  po->max_bytes = static_cast<std::size_t>(limit + kSwapPoolSlack);
  po->decay_ms = 0;
  po->frame_cache = po->max_bytes / kBlockSize;  // keep every freed frame
  po->reserve_handles =
      static_cast<std::size_t>(std::min<std::uint64_t>(blocks, po->max_bytes / 32));
  po->eager_workers = true;
  po->prefault = true;  // a page found under memory pressure could wait for swap: for us
  return true;
}

std::shared_ptr<StoreImpl::Backing> StoreImpl::reset_locked() noexcept {
  if (slots_) {
    // Only the pages that ever held a block: reset costs what is stored (docs/store.md);
    // pool objects are freed in batches (docs/store.md#lifecycle).
    HandleBatch batch(*pool_);
    std::uint64_t done = 0;  // the ranges before this block are free
    for_each_stored_slot(0, nslots_, [this, &batch, &done](std::uint64_t i, Slot&) {
      init_lock_.assert_held_shared();  // the analysis does not see into the lambda
      if (i < done) return true;
      Slot& u = unit_lock(i);
      done = static_cast<std::uint64_t>(&u - slots_) + unit_blocks_;
      u.lock();
      free_range_locked(u, &batch);  // a unit, or each block of the range
      u.unlock();
      return true;
    });
    batch.flush();
    munmap(slots_, nslots_ * sizeof(Slot));
  }
  summary_.release();
  slots_ = nullptr;
  nslots_ = 0;
  disksize_ = 0;
  pool_.reset();
  pool_bytes_ = 0;
  for (auto& st : streams_) st = StreamPool{};
  std::shared_ptr<Backing> old = backing_close_locked();
  backing_path_.clear();
  compressed_writeback_ = false;
  unit_size_ = kBlockSize;
  unit_blocks_ = 1;
  unit_end_ = 0;
  huge_unit_size_ = 0;
  unit_piece_ = 0;
  for (unsigned p = 1; p < kMaxPriorities; p++) comp_[p] = CodecSpec{};
  comp_[0] = CodecSpec{};  // the kernel restores its default algorithm on reset
  comp_[0].name = kDefaultAlgorithm;
  mem_limit_pages_.store(0, std::memory_order_relaxed);
  unit_split_after_.store(kUnitSplitAfterDefault, std::memory_order_relaxed);
  policy_.reset_locked();  // off, like every other setting (after mem_limit: its thresholds)
  wb_limit_pages_.store(0, std::memory_order_relaxed);
  wb_limit_enable_.store(false, std::memory_order_relaxed);
  for (ShardedCounter* c :
       {&stats_.pages_stored,    &stats_.compr_data_size,  &stats_.same_pages,
        &stats_.huge_pages,      &stats_.huge_pages_since, &stats_.failed_reads,
        &stats_.failed_writes,   &stats_.notify_free,      &stats_.miss_free,
        &stats_.bd_count,        &stats_.bd_reads,         &stats_.bd_writes,
        &stats_.wb_failed,       &stats_.bd_read_failed,   &stats_.bd_compacted,
        &stats_.units,           &stats_.unit_whole_reads, &stats_.unit_partial_reads,
        &stats_.unit_cache_hits, &stats_.unit_rmw_writes,  &stats_.unit_split_writes,
        &stats_.unit_splits}) {
    c->store(0);
  }
  stats_.max_used_pages.store(0, std::memory_order_relaxed);
  return old;
}

Result<void> StoreImpl::retire(std::string* msg) noexcept {
  std::shared_ptr<Backing>
      old;  // the backing tier, closed (a remote disconnected) with no lock held
  WriterLock l(init_lock_);
  if (retired_.load(std::memory_order_relaxed)) {
    if (msg) *msg = "hot_remove: no store " + name_ + " (removed already)";
    return std::error_code(ENODEV, std::generic_category());
  }
  if (const auto u = users_.load(std::memory_order_relaxed)) {
    if (msg) {
      *msg = "hot_remove: " + name_ + " is in use by " + std::to_string(u) +
             " open connection(s); disconnect them, then reset it";
    }
    return Errc::busy;
  }
  if (disksize_) {
    if (msg) *msg = "hot_remove: " + name_ + " is initialised (reset it first)";
    return Errc::busy;
  }
  old = reset_locked();  // the configuration: the backing tier
  retired_.store(true, std::memory_order_relaxed);
  return {};
}

Result<void> StoreImpl::retired_error(std::string_view attr, std::string* msg) const noexcept {
  if (msg) *msg = std::string(attr) + ": " + name_ + " was removed (hot_remove)";
  return std::error_code(ENODEV, std::generic_category());
}

// ---- Stats -------------------------------------------------------------------------------

MmStat StoreImpl::do_mm_stat() const noexcept {
  ReaderLock l(init_lock_);
  MmStat m;
  const auto ld = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  m.orig_data_size = ld(stats_.pages_stored) * kBlockSize;
  m.compr_data_size = ld(stats_.compr_data_size);
  m.mem_used_total = pool_ ? pool_->total_pages() * kBlockSize : 0;
  m.mem_limit = ld(mem_limit_pages_) * kBlockSize;
  m.mem_used_max = ld(stats_.max_used_pages) * kBlockSize;
  m.same_pages = ld(stats_.same_pages);
  m.pages_compacted = pool_ ? pool_->stats().pages_compacted : 0;
  m.huge_pages = ld(stats_.huge_pages);
  m.huge_pages_since = ld(stats_.huge_pages_since);
  return m;
}

UnitStat StoreImpl::do_unit_stat() const noexcept {
  auto ld = [](const ShardedCounter& c) { return c.load(std::memory_order_relaxed); };
  return {ld(stats_.units),           ld(stats_.unit_whole_reads), ld(stats_.unit_partial_reads),
          ld(stats_.unit_cache_hits), ld(stats_.unit_rmw_writes),  ld(stats_.unit_split_writes),
          ld(stats_.unit_splits)};
}

IoStat StoreImpl::do_io_stat() const noexcept {
  return {stats_.failed_reads.load(std::memory_order_relaxed),
          stats_.failed_writes.load(std::memory_order_relaxed),
          stats_.notify_free.load(std::memory_order_relaxed)};
}

BdStat StoreImpl::do_bd_stat() const noexcept {
  const auto ld = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  BdStat st;
  st.bd_count = ld(stats_.bd_count);
  st.bd_reads = ld(stats_.bd_reads);
  st.bd_writes = ld(stats_.bd_writes);
  st.failed_writebacks = ld(stats_.wb_failed);
  st.compacted = ld(stats_.bd_compacted);
  st.failed_backing_reads = ld(stats_.bd_read_failed);
  ReaderLock l(init_lock_);
  if (backing_) {
    const BackingTier& t = *backing_->tier;
    st.backing_blocks = backing_->alloc.used();
    st.backing_bytes = backing_->alloc.live_bytes();
    st.lost_blocks = backing_->alloc.lost();
    st.trimmed = t.trimmed();
    st.reconnects = t.reconnects();
    st.connected = t.connected();
  }
  return st;
}

// ---- memparse --------------------------------------------------------------------------

Result<std::uint64_t> parse_size(std::string_view t) noexcept {
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  if (t.empty()) return Errc::invalid_argument;
  std::uint64_t v = 0;
  std::size_t i = 0;
  for (; i < t.size() && std::isdigit(static_cast<unsigned char>(t[i])); i++) {
    const std::uint64_t d = static_cast<std::uint64_t>(t[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return Errc::invalid_argument;
    v = v * 10 + d;
  }
  if (i == 0) return Errc::invalid_argument;
  unsigned shift = 0;
  if (i < t.size()) {
    switch (std::tolower(static_cast<unsigned char>(t[i]))) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      case 't': shift = 40; break;
      case 'p': shift = 50; break;
      default: return Errc::invalid_argument;
    }
    i++;
    if (i < t.size() && (t[i] == 'i' || t[i] == 'I')) i++;  // "1GiB" style is fine too
    if (i < t.size() && (t[i] == 'b' || t[i] == 'B')) i++;
    if (i != t.size()) return Errc::invalid_argument;
  }
  if (shift && v > (UINT64_MAX >> shift)) return Errc::invalid_argument;
  return v << shift;
}

}  // namespace uzram

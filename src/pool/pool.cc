// pool/pool.cc - Pool creation, alloc and free, zspage life cycle and fullness lists.
#include <algorithm>
#include <cstdio>

#include "pool/pool_impl.h"
#include "util/check.h"

namespace uzram {

// ---- Pool: the public face forwards to PoolImpl (no data, no extra indirection) -------
// (read_begin, read_end and write, which dispatch on the translation policy, are in
// access.cc, next to what they call.)

Result<std::unique_ptr<Pool>> create_pool(const PoolOptions& options,
                                          TranslationMode mode) noexcept {
  if (options.chain_size < kMinChain || options.chain_size > kMaxChain)
    return Errc::invalid_argument;
  if (options.max_bytes < kFrameSize * kMaxChain || options.max_bytes > (std::size_t{1} << 40)) {
    return Errc::invalid_argument;
  }
  if (options.max_object_size < kMaxObjectSize || options.max_object_size > kMaxLargeObjectSize) {
    return Errc::invalid_argument;
  }
  std::unique_ptr<PoolImpl> p(new (std::nothrow) PoolImpl(options, mode));
  if (!p) return Errc::no_memory;
  if (auto r = p->init(); !r) return r.error();
  return std::unique_ptr<Pool>(std::move(p));
}

Result<std::unique_ptr<Pool>> Pool::create(const PoolOptions& options) noexcept {
  return create_pool(options, TranslationMode::validated);
}

TranslationMode translation_mode(const Pool& pool) noexcept {
  return impl(&pool)->kernel_rwlock() ? TranslationMode::kernel_rwlock : TranslationMode::validated;
}
Result<std::uint32_t> migrate_frame(Pool& pool, std::uint32_t frame) noexcept {
  return impl(&pool)->migrate_impl(frame, 0);
}
std::size_t pack(Pool& pool, std::size_t max_frames) noexcept {
  return impl(&pool)->pack_impl(max_frames);
}
CompactHoldHistogram compact_hold_histogram(const Pool& pool) noexcept {
  return impl(&pool)->hold_histogram();
}
std::size_t handle_chunks_mapped_on_demand(const Pool& pool) noexcept {
  return impl(&pool)->handle_chunks_mapped_on_demand();
}

Pool::~Pool() = default;
Result<Handle> Pool::alloc(std::size_t size) noexcept { return impl(this)->alloc_impl(size); }
void Pool::free(Handle h) noexcept { impl(this)->free_impl(h); }
void Pool::free_batch(const Handle* handles, std::size_t n) noexcept {
  impl(this)->free_batch_impl(handles, n);
}
std::size_t Pool::object_size(Handle h) const noexcept { return impl(this)->object_size_impl(h); }
std::size_t Pool::compact() noexcept { return impl(this)->compact_impl(); }
void Pool::flush_deferred() noexcept { impl(this)->flush_deferred_impl(); }
std::size_t Pool::release_idle_frames() noexcept { return impl(this)->release_idle_frames_impl(); }
std::size_t Pool::total_pages() const noexcept { return impl(this)->total_pages_impl(); }
std::size_t Pool::huge_class_size() const noexcept {
  return impl(this)->geometry().huge_class_size();
}
std::size_t Pool::max_object_size() const noexcept { return impl(this)->opts().max_object_size; }
std::size_t Pool::huge_object_size() const noexcept {
  return uzram::huge_object_size(impl(this)->opts().max_object_size, huge_class_size());
}
unsigned Pool::lookup_class_index(std::size_t size) const noexcept {
  const Geometry& g = impl(this)->geometry();
  return g.class_of_slot(Geometry::slot_for(size));
}
PoolStats Pool::stats() const noexcept { return impl(this)->stats_impl(); }
PoolMemory Pool::memory() const noexcept { return impl(this)->memory_impl(); }
std::vector<ClassStats> Pool::class_stats() const noexcept {
  return impl(this)->class_stats_impl();
}
const PoolOptions& Pool::options() const noexcept { return impl(this)->opts(); }
void Pool::check_invariants() const noexcept { impl(this)->check_invariants_impl(); }

// ---- PoolImpl: construction ----------------------------------------------------------

PoolImpl::PoolImpl(const PoolOptions& options, TranslationMode mode) noexcept
    : options_(options),
      geo_(options.chain_size),
      max_run_frames_(
          options.max_object_size > kFrameSize
              ? static_cast<unsigned>((options.max_object_size + kFrameSize - 1) / kFrameSize)
              : 0),
      kernel_rwlock_(mode == TranslationMode::kernel_rwlock),
      deferred_worker_([this] { deferred_free_job(); }),
      compact_worker_([this] { background_compact(); }) {
  for (unsigned i = 0; i < kSlots; i++) {
    const ClassInfo& ci = geo_.info(geo_.class_of_slot(i));
    SizeClass& c = classes_[i];
    c.index = static_cast<std::uint16_t>(i);
    c.size = ci.size;
    c.objs_per_zspage = ci.objs_per_zspage;
    c.pages_per_zspage = ci.pages_per_zspage;
    c.huge = ci.huge;
  }
  for (unsigned f = 1; f <= max_run_frames_; f++) {  // run classes: one object per zspage
    SizeClass& c = classes_[run_index(f)];
    c.index = static_cast<std::uint16_t>(run_index(f));
    c.size = f * kFrameSize;
    c.objs_per_zspage = 1;
    c.pages_per_zspage = static_cast<std::uint8_t>(f);
    c.huge = true;
  }
}

Result<void> PoolImpl::init() noexcept {
  if (auto r = arena_.init(options_.max_bytes, options_.frame_cache, options_.decay_ms,
                           options_.prefault, options_.huge_pages);
      !r) {
    return r;
  }
  // Run classes' handles carry an aux word (the tail handle).
  const unsigned aux_from = max_run_frames_ ? kSlots : HandleTable::kGroups;
  // The reserve: the entries of reserve_handles objects, and one partly used chunk per
  // class (each class takes its entries from chunks of its own), run classes included;
  // and the aux words of the large objects among them (each takes a frame at least, so
  // no more than the arena's frames), again with a partly used chunk per run class.
  std::size_t reserve_chunks = 0, aux_reserve_chunks = 0;
  if (options_.reserve_handles > 0) {
    constexpr std::size_t kEntries = HandleTable::kChunkEntries;
    reserve_chunks = (options_.reserve_handles + kEntries - 1) / kEntries;
    for (unsigned i = 0; i < kMaxClasses; i++) reserve_chunks += is_class(i) ? 1 : 0;
    if (max_run_frames_ > 0) {
      const std::size_t large = std::min(options_.reserve_handles, arena_.max_frames());
      aux_reserve_chunks = (large + kEntries - 1) / kEntries;
      for (unsigned i = kSlots; i < kMaxClasses; i++) aux_reserve_chunks += is_class(i) ? 1 : 0;
    }
  }
  if (auto r = handles_.init(options_.max_bytes / kMinAllocSize, aux_from, reserve_chunks,
                             aux_reserve_chunks);
      !r) {
    return r;
  }
  // Zspage ids must fit the 28-bit frame owner and handle fields (ZsPageTable); runs
  // longer than the chain need descriptor tables of their length.
  const unsigned longest = std::max(options_.chain_size, max_run_frames_);
  if (auto r = zspages_.init(arena_.max_frames(), longest); !r) return r;
  if (options_.eager_workers) {
    // A failed start is not an error: the job then runs inline, as it would later.
    (void)deferred_worker_.start();
    if (options_.auto_compact_frames > 0 && options_.background_compact) {
      (void)compact_worker_.start();
    }
  }
  return {};
}

PoolImpl::~PoolImpl() {
  compact_worker_.stop();
  deferred_worker_.flush();
  deferred_worker_.stop();
  std::uint64_t live = 0;
  for (unsigned i = 0; i < kMaxClasses; i++) {
    if (!is_class(i)) continue;
    SpinGuard g(classes_[i].lock);  // no other user is left; the analysis wants it held
    live += classes_[i].obj_used;
  }
  if (live != 0) {
    std::fprintf(stderr, "uzram: pool '%s' destroyed with %llu objects still allocated\n",
                 options_.name.c_str(), static_cast<unsigned long long>(live));
  }
}

// ---- Fullness lists (caller holds c.lock) --------------------------------------------

void PoolImpl::list_insert_locked(SizeClass& c, ZsPageId id, ZsPage* z) noexcept {
  const unsigned g = fullness_group(z->inuse, c.objs_per_zspage);
  z->fullness = static_cast<std::uint8_t>(g);
  z->state = ZsState::listed;
  z->prev = 0;
  z->next = c.heads[g];
  if (z->next) zspages_.get(z->next)->prev = id;
  c.heads[g] = id;
  c.nonempty |= static_cast<std::uint16_t>(1u << g);
  c.zspages_in[g]++;
  // relaxed: a hint for spilling tails, re-checked under c.lock (docs/locking.md#alloc).
  c.room_hint.store((c.nonempty & kRoomMask) != 0, std::memory_order_relaxed);
}

void PoolImpl::list_remove_locked(SizeClass& c, ZsPageId id, ZsPage* z) noexcept {
  ZS_DCHECK(z->state == ZsState::listed, "zspage %u not listed", id);
  (void)id;
  const unsigned g = z->fullness;
  if (z->prev) {
    zspages_.get(z->prev)->next = z->next;
  } else {
    c.heads[g] = z->next;
  }
  if (z->next) zspages_.get(z->next)->prev = z->prev;
  if (c.heads[g] == 0) c.nonempty &= static_cast<std::uint16_t>(~(1u << g));
  c.zspages_in[g]--;
  // relaxed: a hint for spilling tails, re-checked under c.lock (docs/locking.md#alloc).
  c.room_hint.store((c.nonempty & kRoomMask) != 0, std::memory_order_relaxed);
  z->prev = z->next = 0;
}

void PoolImpl::fix_fullness_locked(SizeClass& c, ZsPageId id, ZsPage* z) noexcept {
  if (z->state != ZsState::listed) return;  // isolated: the compactor puts it back
  if (fullness_group(z->inuse, c.objs_per_zspage) == z->fullness) return;
  list_remove_locked(c, id, z);
  list_insert_locked(c, id, z);
}

// First zspage on lists from..to (inclusive, either direction), or 0.
ZsPageId PoolImpl::find_group_locked(const SizeClass& c, int from, int to) const noexcept {
  const int step = from <= to ? 1 : -1;
  for (int g = from;; g += step) {
    if (c.nonempty & (1u << g)) return c.heads[g];
    if (g == to) return 0;
  }
}

// ---- Objects inside a zspage (caller holds c.lock) -----------------------------------

unsigned PoolImpl::obj_pop_locked(SizeClass& c, ZsPage* z, std::uint32_t* index,
                                  std::uint64_t* gen) noexcept {
  ZS_DCHECK(z->inuse < c.objs_per_zspage, "pop from a full zspage");
  unsigned obj;
  if (z->free_head != 0) {  // a parked slot: its handle index comes with it
    *index = z->free_head;
    // relaxed: parked entries of this class are written only under c.lock.
    const std::uint64_t e = handles_.entry(*index)->load(std::memory_order_relaxed);
    obj = HandleTable::parked_obj(e);
    ZS_CHECK(!HandleTable::is_allocated(e) && obj < z->fresh,
             "zspage free list corrupted: handle index %u (entry %#llx) is not a parked slot",
             *index, static_cast<unsigned long long>(e));
    z->free_head = HandleTable::parked_next(e);
    *gen = HandleTable::gen_of(e);
    // The next allocation from z reads that entry: start the miss now (random frees leave
    // the parked entries of a zspage cold).
    if (z->free_head != 0) __builtin_prefetch(handles_.entry(z->free_head), 1);
  } else {  // a never-used slot and a never-used index
    ZS_DCHECK(z->fresh < c.objs_per_zspage, "zspage %u: no free slot", z->fresh);
    const std::uint64_t hv = handles_.alloc_locked(c.index, c.lock);
    ZS_CHECK(hv != 0, "alloc: class %u has no handle room (caller did not check)", c.index);
    *index = HandleTable::index_of(hv);
    *gen = HandleTable::gen_of_handle(hv);
    obj = z->fresh++;
  }
  z->inuse++;
  return obj;
}

void PoolImpl::obj_push_locked(const SizeClass&, ZsPage* z, unsigned obj, std::uint32_t index,
                               std::uint64_t gen) noexcept {
  // relaxed: under c.lock; a translator that still holds the old handle finds the entry
  // not allocated (a caller bug: it aborts).
  handles_.entry(index)->store(HandleTable::parked(obj, z->free_head, gen),
                               std::memory_order_relaxed);
  z->free_head = index;
  z->inuse--;
}

// Gives the k-th smallest handle index of an empty zspage's parked chain slot k and
// relinks the chain in that order, so that a reused descriptor hands out its slots in
// address order, as a new zspage does, with ascending indexes whatever order its objects
// were freed in: slot order and index order then agree in every zspage of the class (a
// reader in slot order walks the class's entries forward; read_begin's read-ahead relies
// on it). Touches only the chain's entries, which the allocations that follow write
// anyway. Caller holds the class lock; z is empty.
void PoolImpl::renumber_chain_locked(const SizeClass&, ZsPage* z) noexcept {
  std::uint32_t idx[kMaxChain * kFrameSize / kMinAllocSize];
  unsigned n = 0;
  for (std::uint32_t index = z->free_head; index != 0; n++) {
    ZS_CHECK(n < z->fresh, "spare zspage: parked chain longer than %u slots", z->fresh);
    idx[n] = index;
    // relaxed: parked entries of this class are written only under its lock.
    index = HandleTable::parked_next(handles_.entry(index)->load(std::memory_order_relaxed));
  }
  ZS_CHECK(n == z->fresh, "spare zspage: %u parked handles, %u slots used", n, z->fresh);
  std::sort(idx, idx + n);
  for (unsigned k = 0; k < n; k++) {
    std::atomic<std::uint64_t>* e = handles_.entry(idx[k]);
    const std::uint64_t gen = HandleTable::gen_of(e->load(std::memory_order_relaxed));
    e->store(HandleTable::parked(k, k + 1 < n ? idx[k + 1] : 0, gen), std::memory_order_relaxed);
  }
  z->free_head = n ? idx[0] : 0;
}

// ---- Zspage life cycle ---------------------------------------------------------------

// Allocates frames (and a descriptor unless `spare`). Called with no lock held (it may
// block). A new descriptor starts with no handle indexes (fresh = 0); a spare keeps its
// parked chain. Protocol: docs/locking.md#alloc step 3.
ZsPage* PoolImpl::create_zspage(SizeClass& c, ZsPageId spare, ZsPageId* id_out) noexcept {
  might_sleep();
  FrameId frames[kMaxChain];
  if (!arena_.alloc(frames, c.pages_per_zspage)) return nullptr;
  ZsPageId id = spare;
  if (!id) {
    auto r = zspages_.alloc(c.pages_per_zspage);
    if (!r) {
      arena_.free(frames, c.pages_per_zspage);
      return nullptr;
    }
    id = *r;
  }
  ZsPage* z = zspages_.get(id);
  if (!spare) {
    // relaxed: published to translators through the class lock and the handle entry's
    // release store; translators that read it early validate afterwards.
    z->class_index.store(c.index, std::memory_order_relaxed);
    z->fresh = 0;
    z->free_head = 0;
  }
  z->inuse = 0;
  z->fullness = 0;
  z->state = ZsState::fresh;
  z->prev = z->next = 0;
  // Atomic (relaxed) stores: read_begin reads frames[0] of another zspage as a prefetch
  // hint, without its lock (access.cc, next_zspage_hint).
  for (unsigned k = 0; k < c.pages_per_zspage; k++) {
    __atomic_store_n(&z->frames[k], frames[k], __ATOMIC_RELAXED);
  }
  *id_out = id;
  return z;
}

void PoolImpl::publish_zspage_locked(SizeClass& c, ZsPageId id, ZsPage* z) noexcept {
  for (unsigned k = 0; k < nframes_of(z); k++) {
    // release: pairs with the acquire load of the owner in migrate_isolated().
    arena_.info(z->frames[k]).word().store(kFrameAllocated | id, std::memory_order_release);
  }
  c.obj_allocated += c.objs_per_zspage;
  pages_allocated_.fetch_add(c.pages_per_zspage, std::memory_order_relaxed);
  list_insert_locked(c, id, z);
}

bool PoolImpl::free_zspage_locked(SizeClass& c, ZsPageId id, ZsPage* z,
                                  ReleaseBatch& batch) noexcept {
  ZS_DCHECK(z->inuse == 0, "freeing a zspage with %u objects", z->inuse);
  // A migration holds one of the frames: leave the empty zspage on list 0 for the worker.
  if (arena_.try_isolate(z->frames, nframes_of(z)) != nframes_of(z)) return false;
  release_zspage_locked(c, id, z, batch);
  return true;
}

void PoolImpl::release_zspage_locked(SizeClass& c, ZsPageId id, ZsPage* z,
                                     ReleaseBatch& batch) noexcept {
  if (z->state == ZsState::listed) list_remove_locked(c, id, z);
  for (unsigned k = 0; k < nframes_of(z); k++) {
    // Clears the owner and ends the isolation: migration sees "not owned".
    arena_.end_isolation_store(z->frames[k], kFrameAllocated);
    batch.frames[batch.nframes++] = z->frames[k];
  }
  batch.nzspages++;
  z->state = ZsState::free;
  // The descriptor and its parked chain stay with the class, at the tail of its spares:
  // reused first in, first out, so zspages emptied in the order they were filled are
  // refilled in that order and their handle indexes stay in slot order from one zspage
  // to the next (read_begin's next_zspage_hint relies on it).
  z->next = 0;
  if (c.spare) {
    zspages_.get(c.spare_tail)->next = id;
  } else {
    c.spare = id;
  }
  c.spare_tail = id;
  c.spares++;
  c.obj_allocated -= c.objs_per_zspage;
  pages_allocated_.fetch_sub(c.pages_per_zspage, std::memory_order_relaxed);
}

void PoolImpl::release(ReleaseBatch& batch) noexcept {
  if (batch.nframes) arena_.free(batch.frames, batch.nframes);
  batch.nframes = batch.nzspages = 0;
}

// ---- alloc / free --------------------------------------------------------------------

// Protocol: docs/locking.md#alloc.
Result<Handle> PoolImpl::alloc_impl(std::size_t size) noexcept {
  if (size == 0) return Errc::invalid_argument;
  if (size > options_.max_object_size) return Errc::too_large;
  if (size > kFrameSize) return alloc_large(size);
  // no header
  return alloc_in(classes_[geo_.class_of_slot(Geometry::slot_for(size))], size, Handle{0});
}

Result<Handle> PoolImpl::alloc_in(SizeClass& c, std::size_t size, Handle tail, bool open) noexcept {
  c.lock.lock();  // step 1
  ZsPageId id;
  ZsPage* z;
  for (;;) {
    id = find_group_locked(c, kRoomGroups, 0);  // step 2
    if (!id) {
      if (!open) {  // a tail looking for room (large_alloc.cc): none here
        c.lock.unlock();
        return Handle{0};
      }
      const ZsPageId spare = c.spare;  // step 3: a spare descriptor, or a new one
      if (spare) {
        c.spare = zspages_.get(spare)->next;
        if (!c.spare) c.spare_tail = 0;
        c.spares--;
      }
      c.lock.unlock();  // no lock held while frames are allocated
      z = create_zspage(c, spare, &id);
      c.lock.lock();
      if (!z) {
        if (spare) {
          zspages_.get(spare)->next = c.spare;  // back at the head
          if (!c.spare) c.spare_tail = spare;
          c.spare = spare;
          c.spares++;
        }
        c.lock.unlock();
        return Errc::no_memory;
      }
      publish_zspage_locked(c, id, z);
      if (spare) renumber_chain_locked(c, z);
    }
    z = zspages_.get(id);
    // step 4: a never-used slot needs a new handle index: map a chunk with no lock held.
    if (z->free_head != 0 || handles_.has_room_locked(c.index, 1, c.lock)) break;
    c.lock.unlock();
    if (!handles_.grow(c.index)) return Errc::no_memory;
    c.lock.lock();
  }
  std::uint32_t index;
  std::uint64_t gen;
  const unsigned obj = obj_pop_locked(c, z, &index, &gen);  // step 5
  std::uint64_t word;
  if (is_run_class(c.index)) {
    // relaxed: published by the entry's release store below.
    handles_.aux(index)->store(static_cast<std::uint64_t>(tail), std::memory_order_relaxed);
    word = HandleTable::encode_large(id, static_cast<std::uint32_t>(size), gen);
  } else {
    word = HandleTable::encode({id, obj, static_cast<std::uint32_t>(size)}, gen);
  }
  // release: pairs with the acquire loads in lock_object() (free reads under c.lock).
  handles_.entry(index)->store(word, std::memory_order_release);
  c.obj_used++;
  fix_fullness_locked(c, id, z);
  c.lock.unlock();
  return static_cast<Handle>((gen << 32) | index);
}

}  // namespace uzram

// pool/compaction.cc - compaction with the kernel's algorithm, in bounded steps, plus the
// automatic (threshold) policy the kernel lacks. Protocol: docs/locking.md#compaction.
#include <sched.h>

#include <bit>
#include <chrono>

#include "pool/pool_impl.h"
#include "util/check.h"

namespace uzram {
namespace {

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace

std::size_t PoolImpl::compact_impl() noexcept {
  // acquire: pairs with the release store below by the previous compactor.
  if (compaction_in_progress_.exchange(true, std::memory_order_acquire)) return 0;
  const std::size_t freed = compact_classes(0);
  compaction_in_progress_.store(false, std::memory_order_release);
  return freed;
}

std::size_t PoolImpl::compact_classes(std::uint64_t min_freeable) noexcept {
  std::size_t freed = 0;
  for (int i = kSlots - 1; i >= 0; i--) {  // largest class first
    if (!geo_.is_real(static_cast<unsigned>(i))) continue;
    SizeClass& c = classes_[i];
    c.lock.lock();
    const std::uint64_t f = c.freeable_locked();
    c.lock.unlock();
    if (f == 0 || f < min_freeable) continue;
    ReverseIndex rix;
    if (!rix.build(handles_, c.index)) break;  // no memory for the index: no compaction
    freed += kernel_rwlock_ ? compact_class<KernelTranslation>(c, rix)
                            : compact_class<ValidatedTranslation>(c, rix);
  }
  pages_compacted_.fetch_add(freed, std::memory_order_relaxed);
  compactions_.fetch_add(1, std::memory_order_relaxed);
  return freed;
}

void PoolImpl::record_hold(std::uint64_t ns) noexcept {
  const unsigned b = ns ? std::min(31, 63 - std::countl_zero(ns)) : 0;
  hold_hist_[b].fetch_add(1, std::memory_order_relaxed);
}

// Moves live objects from src (write-locked) into dst until dst is full or src is empty;
// returns how many. The candidates come from the reverse index; each is re-checked here:
// an entry that names src can only change under c.lock, which we hold, so a match means
// the object is in src now. Caller holds c.lock and src's write lock, and made sure the
// class has room for objs_per_zspage new handle indexes. Each object is copied before its
// handle entry is re-pointed (release), so a translator that sees the new location sees
// the bytes. The index that was bound to the destination slot (parked there, or new for
// a never-used slot) becomes the one parked on the vacated source slot.
unsigned PoolImpl::migrate_objects_locked(SizeClass& c, ZsPageId src_id, ZsPage* src,
                                          ZsPageId dst_id, ZsPage* dst,
                                          const ReverseIndex& rix) noexcept {
  unsigned moved = 0;
  for (const ReverseIndex::Entry& r : rix.of(src_id)) {
    if (src->inuse == 0 || dst->inuse == c.objs_per_zspage) break;
    std::atomic<std::uint64_t>* e = handles_.entry(r.index);
    // relaxed: an entry naming src is written only under c.lock, which we hold; one that
    // names another zspage is of no interest, whatever its value.
    const std::uint64_t v = e->load(std::memory_order_relaxed);
    if (!HandleTable::is_allocated(v)) continue;
    const Location loc = HandleTable::decode(v);
    if (loc.zspage != src_id) continue;
    std::uint32_t other;
    std::uint64_t other_gen;
    const unsigned to = obj_pop_locked(c, dst, &other, &other_gen);
    copy_between(src, payload_offset(c, loc.obj), dst, payload_offset(c, to), loc.size);
    // release: pairs with the acquire loads in lock_object() (free reads under c.lock).
    e->store(HandleTable::encode({dst_id, to, loc.size}, HandleTable::gen_of(v)),
             std::memory_order_release);
    obj_push_locked(c, src, loc.obj, other, other_gen);
    moved++;
  }
  return moved;
}

// One class: steps of one source zspage each, with the exclusive lock dropped between
// steps (and the CPU yielded when someone waits), so readers' latency stays bounded.
template <typename T>
std::size_t PoolImpl::compact_class(SizeClass& c, const ReverseIndex& rix) noexcept {
  std::size_t freed = 0;
  ReleaseBatch batch;
  bool kick_deferred = false;
  for (bool stop = false; !stop;) {
    if constexpr (T::kPoolLock) pool_lock_.lock();  // step 1
    const std::uint64_t t0 = now_ns();              // the exclusive hold starts here
    c.lock.lock();
    if (!handles_.has_room_locked(c.index, c.objs_per_zspage, c.lock)) {
      // Destination slots never used yet need new indexes: map a chunk, no lock held.
      c.lock.unlock();
      if constexpr (T::kPoolLock) pool_lock_.unlock();
      if (!handles_.grow(c.index)) break;
      continue;
    }
    stop = true;
    // step 2: destination = fullest non-full, source = emptiest non-empty
    const ZsPageId dst_id = c.freeable_locked() ? find_group_locked(c, 10, 1) : 0;
    if (dst_id) {
      ZsPage* dst = zspages_.get(dst_id);
      list_remove_locked(c, dst_id, dst);
      dst->state = ZsState::isolated;
      const ZsPageId src_id = find_group_locked(c, 1, 10);
      if (src_id) {
        ZsPage* src = zspages_.get(src_id);
        if (src->lock.try_lock_write()) {  // step 3: never wait for readers
          list_remove_locked(c, src_id, src);
          src->state = ZsState::isolated;
          // step 4. Nothing moved: src's objects are newer than the index; stop here.
          const unsigned moved = migrate_objects_locked(c, src_id, src, dst_id, dst, rix);
          src->lock.unlock_write();
          src->state = ZsState::listed;  // step 5
          list_insert_locked(c, src_id, src);
          if (src->inuse == 0) {
            if (free_zspage_locked(c, src_id, src, batch)) {
              freed += c.pages_per_zspage;
            } else {
              kick_deferred = true;  // a frame is isolated by a migration
            }
          }
          stop = moved == 0;
        } else {
          compact_busy_.fetch_add(1, std::memory_order_relaxed);
        }
      }
      list_insert_locked(c, dst_id, dst);  // put back; re-picked next step if still fullest
    }
    bool contended = c.lock.is_contended();
    if constexpr (T::kPoolLock) contended = contended || pool_lock_.is_contended();
    record_hold(now_ns() - t0);
    c.lock.unlock();
    if constexpr (T::kPoolLock) pool_lock_.unlock();
    release(batch);  // step 6
    if (contended) sched_yield();
  }
  if (kick_deferred) deferred_worker_.kick();
  return freed;
}

void PoolImpl::maybe_auto_compact(SizeClass& c, std::uint64_t freeable) noexcept {
  (void)freeable;
  if (options_.background_compact) {
    compact_worker_.kick();
    return;
  }
  if (compaction_in_progress_.exchange(true, std::memory_order_acquire)) return;
  ReverseIndex rix;
  if (rix.build(handles_, c.index)) {
    const std::size_t freed = kernel_rwlock_ ? compact_class<KernelTranslation>(c, rix)
                                             : compact_class<ValidatedTranslation>(c, rix);
    pages_compacted_.fetch_add(freed, std::memory_order_relaxed);
    compactions_.fetch_add(1, std::memory_order_relaxed);
  }
  compaction_in_progress_.store(false, std::memory_order_release);
}

// The background compactor's job: compact every class at or above the threshold.
void PoolImpl::background_compact() noexcept {
  if (compaction_in_progress_.exchange(true, std::memory_order_acquire)) return;
  compact_classes(options_.auto_compact_frames ? options_.auto_compact_frames : 1);
  compaction_in_progress_.store(false, std::memory_order_release);
}

}  // namespace uzram

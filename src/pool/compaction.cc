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
  std::size_t freed = 0;
  for (int i = kSlots - 1; i >= 0; i--) {  // largest class first
    if (geo_.is_real(static_cast<unsigned>(i))) freed += compact_class(classes_[i]);
  }
  pages_compacted_.fetch_add(freed, std::memory_order_relaxed);
  compactions_.fetch_add(1, std::memory_order_relaxed);
  compaction_in_progress_.store(false, std::memory_order_release);
  return freed;
}

void PoolImpl::record_hold(std::uint64_t ns) noexcept {
  const unsigned b = ns ? std::min(31, 63 - std::countl_zero(ns)) : 0;
  hold_hist_[b].fetch_add(1, std::memory_order_relaxed);
}

// Moves live objects from src (write-locked) into dst until dst is full or src is empty.
// Caller holds c.lock and src's write lock. Each object is copied before its handle entry
// is re-pointed (release), so a translator that sees the new location sees the bytes.
void PoolImpl::migrate_objects_locked(SizeClass& c, ZsPageId src_id, ZsPage* src,
                                      ZsPageId dst_id, ZsPage* dst) noexcept {
  (void)src_id;
  for (unsigned i = 0; i < c.objs_per_zspage && src->inuse && dst->inuse < c.objs_per_zspage; i++) {
    const std::uint64_t hdr = *header(src, c, i);
    if (!(hdr & 1)) continue;
    const auto index = static_cast<std::uint32_t>(hdr >> 1);
    std::atomic<std::uint64_t>* e = handles_.entry(index);
    // relaxed: entries of this class change only under c.lock, which we hold.
    const std::uint64_t v = e->load(std::memory_order_relaxed);
    const Location loc = HandleTable::decode(v);
    ZS_CHECK(HandleTable::is_allocated(v) && loc.zspage == src_id && loc.obj == i,
             "compaction: object header of zspage %u slot %u names handle index %u, whose "
             "entry does not point back",
             src_id, i, index);
    const unsigned to = obj_pop_locked(c, dst, index);
    copy_between(src, payload_offset(c, i), dst, payload_offset(c, to), loc.size);
    // release: pairs with the acquire loads in lock_object()/free_impl().
    e->store(HandleTable::encode({dst_id, to, loc.size}, HandleTable::gen_of(v)),
             std::memory_order_release);
    obj_push_locked(c, src, i);
  }
}

// One class: steps of one source zspage each, with the exclusive lock dropped between
// steps (and the CPU yielded when someone waits), so readers' latency stays bounded.
std::size_t PoolImpl::compact_class(SizeClass& c) noexcept {
  std::size_t freed = 0;
  ReleaseBatch batch;
  bool kick_deferred = false;
  for (bool stop = false; !stop;) {
    if (kernel_mode()) pool_lock_.lock();  // step 1
    const std::uint64_t t0 = now_ns();    // the exclusive hold starts here
    c.lock.lock();
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
          migrate_objects_locked(c, src_id, src, dst_id, dst);  // step 4
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
          stop = false;
        } else {
          compact_busy_.fetch_add(1, std::memory_order_relaxed);
        }
      }
      list_insert_locked(c, dst_id, dst);  // put back; re-picked next step if still fullest
    }
    const bool contended = c.lock.is_contended() || (kernel_mode() && pool_lock_.is_contended());
    record_hold(now_ns() - t0);
    c.lock.unlock();
    if (kernel_mode()) pool_lock_.unlock();
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
  const std::size_t freed = compact_class(c);
  pages_compacted_.fetch_add(freed, std::memory_order_relaxed);
  compactions_.fetch_add(1, std::memory_order_relaxed);
  compaction_in_progress_.store(false, std::memory_order_release);
}

// The background compactor's job: compact every class at or above the threshold.
void PoolImpl::background_compact() noexcept {
  if (compaction_in_progress_.exchange(true, std::memory_order_acquire)) return;
  std::size_t freed = 0;
  for (int i = kSlots - 1; i >= 0; i--) {
    SizeClass& c = classes_[i];
    if (!geo_.is_real(static_cast<unsigned>(i))) continue;
    c.lock.lock();
    const std::uint64_t f = c.freeable_locked();
    c.lock.unlock();
    if (f >= options_.auto_compact_frames) freed += compact_class(c);
  }
  pages_compacted_.fetch_add(freed, std::memory_order_relaxed);
  compactions_.fetch_add(1, std::memory_order_relaxed);
  compaction_in_progress_.store(false, std::memory_order_release);
}

}  // namespace uzram

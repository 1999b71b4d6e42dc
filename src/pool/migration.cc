// pool/migration.cc - frame migration, arena packing and the deferred free of empty
// zspages whose frames were isolated. Protocols: docs/locking.md#migration and
// docs/locking.md#deferred-free.
#include <cstring>

#include "pool/pool_impl.h"
#include "sync/bit_lock.h"
#include "util/check.h"

namespace uzram {

// Isolation (the kernel's isolate_page/putback_page): the frame's isolation bit is the
// frame lock. While it is held the owner zspage cannot be freed: free_zspage_locked()
// try-locks every frame and defers instead.
bool PoolImpl::isolate_frame(FrameId frame) noexcept {
  if (frame >= arena_.high_water()) return false;
  if (!bit_try_lock(arena_.info(frame), kFrameIsolated)) return false;
  lockdep::acquire(LockLevel::frame, LockKind::sleepable, &arena_.info(frame), "frame", true,
                   false, SiteLoc::current());
  return true;
}

void PoolImpl::putback_frame(FrameId frame) noexcept {
  lockdep::release(&arena_.info(frame), SiteLoc::current());
  bit_unlock(arena_.info(frame), kFrameIsolated);
}

Result<FrameId> PoolImpl::migrate_impl(FrameId frame, FrameId target, bool have_target) noexcept {
  if (frame >= arena_.high_water()) {
    if (have_target) arena_.free(&target, 1);
    return Errc::invalid_argument;
  }
  if (!isolate_frame(frame)) {  // step 1
    if (have_target) arena_.free(&target, 1);
    return Errc::busy;
  }
  auto r = migrate_isolated(frame, target, have_target);
  if (!r) putback_frame(frame);
  return r;
}

// Moves isolated `frame` to `target` (a newly allocated frame unless have_target; frame 0
// is a valid target). Handles need no update: an entry names (zspage, object), and only
// the zspage's frame list changes.
// On success the old frame is released (and its isolation ends); on failure the caller
// still holds the isolation and `target` has been freed.
Result<FrameId> PoolImpl::migrate_isolated(FrameId frame, FrameId target, bool have_target) noexcept {
  std::atomic<std::uint32_t>& info = arena_.info(frame);
  auto fail = [&](Errc e) -> Result<FrameId> {
    if (have_target) arena_.free(&target, 1);
    return e;
  };
  // acquire: pairs with the release owner stores in publish/free/migrate (class lock).
  const ZsPageId owner = info.load(std::memory_order_acquire) & kFrameOwnerMask;
  if (owner == 0) return fail(Errc::invalid_argument);
  if (!have_target) {  // step 2: the new frame, allocated with no spinning lock held
    if (!arena_.alloc(&target, 1)) return fail(Errc::no_memory);
    have_target = true;
  }
  // step 3. The owner cannot be freed meanwhile (we hold the frame's isolation).
  ZsPage* z = zspages_.get(owner);
  if (kernel_mode()) pool_lock_.lock();
  SizeClass& c = classes_[z->class_index.load(std::memory_order_relaxed)];
  c.lock.lock();
  const bool still = (info.load(std::memory_order_relaxed) & kFrameOwnerMask) == owner &&
                     z->state != ZsState::free;
  const bool locked = still && z->lock.try_lock_write();  // step 4: never wait for readers
  if (!locked) {
    c.lock.unlock();
    if (kernel_mode()) pool_lock_.unlock();
    if (still) migrate_busy_.fetch_add(1, std::memory_order_relaxed);
    return fail(still ? Errc::busy : Errc::invalid_argument);
  }
  unsigned k = 0;
  while (k < nframes_of(z) && z->frames[k] != frame) k++;
  ZS_CHECK(k < nframes_of(z), "migrate: frame %u not in its owner zspage %u", frame, owner);
  std::memcpy(arena_.address(target), arena_.address(frame), kFrameSize);  // step 5
  z->frames[k] = target;
  // release: pairs with the acquire owner load above (a later migration of target).
  arena_.info(target).store(kFrameAllocated | owner, std::memory_order_release);
  info.store(kFrameAllocated | kFrameIsolated, std::memory_order_release);
  z->lock.unlock_write();
  c.lock.unlock();
  if (kernel_mode()) pool_lock_.unlock();
  putback_frame(frame);  // step 6: wakes a deferred-free worker waiting on it
  // pack() (have_target) vacates frames so the arena can shrink: release at once; a plain
  // migration lets the vacated frame go through the resident cache (no madvise per call).
  arena_.free(&frame, 1, /*cache=*/!have_target);
  migrations_.fetch_add(1, std::memory_order_relaxed);
  return target;
}

std::size_t PoolImpl::pack_impl(std::size_t max_frames) noexcept {
  std::size_t moved = 0;
  FrameId f = arena_.high_water();
  while (moved < max_frames && f > 0) {
    f--;
    if (!(arena_.info(f).load(std::memory_order_relaxed) & kFrameOwnerMask)) continue;
    auto below = arena_.alloc_below(f);
    if (!below) break;  // nothing free below: packed
    if (migrate_impl(f, *below, true)) moved++;
  }
  return moved;
}

// Locks every frame of an empty, unlisted zspage, sleeping (without the zspage lock) while
// a migration holds one. The zspage read lock keeps the frame list stable while we walk
// it; migration cannot write-lock the zspage meanwhile, and cannot free it.
void PoolImpl::lock_zspage_frames(ZsPage* z) noexcept {
  for (;;) {
    z->lock.lock_read();
    unsigned k = 0;
    FrameId busy = 0;
    for (; k < nframes_of(z); k++) {
      if (!bit_try_lock(arena_.info(z->frames[k]), kFrameIsolated)) {
        busy = z->frames[k];
        break;
      }
    }
    if (k == nframes_of(z)) {
      z->lock.unlock_read();
      return;
    }
    for (unsigned j = 0; j < k; j++) bit_unlock(arena_.info(z->frames[j]), kFrameIsolated);
    z->lock.unlock_read();
    bit_wait_clear(arena_.info(busy), kFrameIsolated);  // sleeps; no lock held
  }
}

// The deferred-free worker (the kernel's async_free_zspage). Takes every class's empty
// zspages off list 0 under the class lock, then frees each holding neither the pool lock
// nor the class lock while it waits for frames (docs/locking.md#deferred-free).
void PoolImpl::deferred_free_job() noexcept {
  for (unsigned i = 0; i < kSlots; i++) {
    if (!geo_.is_real(i)) continue;
    SizeClass& c = classes_[i];
    for (;;) {
      c.lock.lock();  // step 1
      const ZsPageId id = c.heads[0];
      ZsPage* z = id ? zspages_.get(id) : nullptr;
      if (z) {
        list_remove_locked(c, id, z);
        z->state = ZsState::deferred;
      }
      c.lock.unlock();
      if (!z) break;
      lock_zspage_frames(z);  // step 2
      ReleaseBatch batch;
      c.lock.lock();  // step 3
      release_zspage_locked(c, id, z, batch);
      c.lock.unlock();
      release(batch);  // step 4
      deferred_frees_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void PoolImpl::flush_deferred_impl() noexcept {
  deferred_worker_.flush();
  compact_worker_.flush();
}

}  // namespace uzram

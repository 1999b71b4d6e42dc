// pool/migration.cc - frame migration, arena packing and the deferred free of empty
// zspages whose frames were isolated. Protocols: docs/locking.md#migration and
// docs/locking.md#deferred-free.
#include <cstring>

#include "pool/pool_impl.h"
#include "util/check.h"

namespace uzram {

// Isolation (the kernel's isolate_page/putback_page): the frame's isolation bit is the
// frame lock. While it is held the owner zspage cannot be freed: free_zspage_locked()
// try-locks every frame and defers instead.
bool PoolImpl::isolate_frame(FrameId frame) noexcept {
  // The analysis needs the try-lock's result to be the return value on every path: a
  // frame beyond the arena is never isolated.
  return frame < arena_.high_water() && arena_.info(frame).try_lock();
}

void PoolImpl::putback_frame(FrameId frame) noexcept { arena_.info(frame).unlock(); }

// Step 6 of a migration that moved `frame`: end the isolation (waking a deferred-free
// worker waiting on it), then free it straight back to the OS, not as an idle frame: a
// vacated frame should leave the arena (pack() relies on it; a migration exists to move
// data off a frame).
void PoolImpl::release_migrated(FrameId frame) noexcept {
  arena_.info(frame).unlock();
  arena_.free(&frame, 1, /*cache=*/false);
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
  auto r = kernel_rwlock_ ? migrate_isolated<KernelTranslation>(frame, target, have_target)
                          : migrate_isolated<ValidatedTranslation>(frame, target, have_target);
  if (r) {
    release_migrated(frame);
  } else {
    putback_frame(frame);
  }
  return r;
}

// Moves isolated `frame` to `target` (a newly allocated frame unless have_target; frame 0
// is a valid target). Handles need no update: an entry names (zspage, object), and only
// the zspage's frame list changes. On success `frame` is vacated (no owner) and still
// isolated; on failure nothing changed. Either way `target` is no longer the caller's
// (moved into, or freed).
template <typename T>
Result<FrameId> PoolImpl::migrate_isolated(FrameId frame, FrameId target,
                                           bool have_target) noexcept {
  std::atomic<std::uint32_t>& info = arena_.info(frame).word();
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
  if constexpr (T::kPoolLock) pool_lock_.lock();
  SizeClass& c = classes_[z->class_index.load(std::memory_order_relaxed)];
  c.lock.lock();
  const bool still = (info.load(std::memory_order_relaxed) & kFrameOwnerMask) == owner &&
                     z->state != ZsState::free;
  if (!still || !z->lock.try_lock_write()) {  // step 4: never wait for readers
    c.lock.unlock();
    if constexpr (T::kPoolLock) pool_lock_.unlock();
    if (still) migrate_busy_.fetch_add(1, std::memory_order_relaxed);
    return fail(still ? Errc::busy : Errc::invalid_argument);
  }
  unsigned k = 0;
  while (k < nframes_of(z) && z->frames[k] != frame) k++;
  ZS_CHECK(k < nframes_of(z), "migrate: frame %u not in its owner zspage %u", frame, owner);
  std::memcpy(arena_.address(target), arena_.address(frame), kFrameSize);  // step 5
  __atomic_store_n(&z->frames[k], target, __ATOMIC_RELAXED);  // read as a hint: pool.cc
  // release: pairs with the acquire owner load above (a later migration of target).
  arena_.info(target).word().store(kFrameAllocated | owner, std::memory_order_release);
  info.store(kFrameAllocated | kFrameIsolated, std::memory_order_release);
  z->lock.unlock_write();
  c.lock.unlock();
  if constexpr (T::kPoolLock) pool_lock_.unlock();
  migrations_.fetch_add(1, std::memory_order_relaxed);
  return target;  // step 6 is the caller's (release_migrated)
}

template Result<FrameId> PoolImpl::migrate_isolated<ValidatedTranslation>(FrameId, FrameId,
                                                                          bool) noexcept;
template Result<FrameId> PoolImpl::migrate_isolated<KernelTranslation>(FrameId, FrameId,
                                                                       bool) noexcept;

std::size_t PoolImpl::pack_impl(std::size_t max_frames) noexcept {
  std::size_t moved = 0;
  FrameId f = arena_.high_water();
  while (moved < max_frames && f > 0) {
    f--;
    if (!(arena_.info(f).word().load(std::memory_order_relaxed) & kFrameOwnerMask)) continue;
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
    const unsigned n = nframes_of(z);
    const unsigned k = arena_.try_isolate(z->frames, n);
    const FrameId busy = k < n ? z->frames[k] : 0;
    z->lock.unlock_read();
    if (k == n) return;
    arena_.info(busy).wait_unlocked();  // sleeps; no lock held
  }
}

// The deferred-free worker (the kernel's async_free_zspage). Takes every class's empty
// zspages off list 0 under the class lock, then frees each holding neither the pool lock
// nor the class lock while it waits for frames (docs/locking.md#deferred-free).
void PoolImpl::deferred_free_job() noexcept {
  for (unsigned i = 0; i < kMaxClasses; i++) {
    if (!is_class(i)) continue;
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

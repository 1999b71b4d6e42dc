// pool/free.cc - free and free_batch. Protocols: docs/locking.md#free and
// docs/locking.md#free-batch.
#include <algorithm>

#include "pool/pool_impl.h"
#include "util/check.h"

namespace uzram {

std::atomic<std::uint64_t>* PoolImpl::entry_of(Handle h, const char* op) const noexcept {
  const auto hv = static_cast<std::uint64_t>(h);
  std::atomic<std::uint64_t>* e = hv >> 44 ? nullptr : handles_.entry(HandleTable::index_of(hv));
  ZS_CHECK(e != nullptr, "%s: invalid handle %#llx (pool '%s')", op,
           static_cast<unsigned long long>(hv), options_.name.c_str());
  return e;
}

void PoolImpl::check_entry(std::uint64_t v, Handle h, const char* op) noexcept {
  const auto hv = static_cast<std::uint64_t>(h);
  ZS_CHECK(HandleTable::is_allocated(v) && HandleTable::gen_of(v) == HandleTable::gen_of_handle(hv),
           "%s: handle %#llx is not allocated (already freed, or never a handle)", op,
           static_cast<unsigned long long>(hv));
}

// Frees the object whose entry (index, value v, validated under c.lock) names it: the
// entry becomes parked on the slot (next generation) at the head of the zspage's free
// list - one store to the entry just read, none to the object's frame - and the zspage is
// freed if it emptied (frames queued in `batch`). Caller holds c.lock.
// docs/locking.md#free steps 3-5.
void PoolImpl::free_locked(SizeClass& c, std::uint32_t index, std::uint64_t v, ReleaseBatch& batch,
                           bool* kick) noexcept {
  const Location loc =
      is_run_class(c.index) ? HandleTable::decode_large(v) : HandleTable::decode(v);
  ZsPage* z = zspages_.get(loc.zspage);
  obj_push_locked(c, z, loc.obj, index, HandleTable::next_gen(HandleTable::gen_of(v)));
  c.obj_used--;
  if (z->inuse == 0 && z->state == ZsState::listed) {
    if (!free_zspage_locked(c, loc.zspage, z, batch)) {
      *kick = true;
      fix_fullness_locked(c, loc.zspage, z);
    }
  } else {
    fix_fullness_locked(c, loc.zspage, z);
  }
}

// The common tail once c.lock is dropped: release frames, kick the deferred-free worker,
// run the automatic compaction policy. docs/locking.md#free step 6.
void PoolImpl::after_free(SizeClass& c, ReleaseBatch& batch, bool kick,
                          std::uint64_t freeable) noexcept {
  release(batch);
  if (kick) deferred_worker_.kick();
  // Run classes are never compacted (one object per zspage).
  if (freeable && freeable >= options_.auto_compact_frames && !is_run_class(c.index)) {
    maybe_auto_compact(c, freeable);
  }
}

// Protocol: docs/locking.md#free. A handle's index lives in its class's handle chunks
// (handle_table.h H3), so the class is known from the index alone: no read of the entry
// or the descriptor before the lock, and no re-check after it (every writer of an
// allocated entry of the class holds the class lock). In both translation modes: the
// kernel dropped pool->lock from zs_free the same way in 2026 (class index in the handle).
void PoolImpl::free_impl(Handle h) noexcept {
  std::atomic<std::uint64_t>* e = entry_of(h, "free");  // step 1
  const std::uint32_t index = HandleTable::index_of(static_cast<std::uint64_t>(h));
  SizeClass& c = classes_[handles_.group_of(index)];
  c.lock.lock();  // step 2
  // relaxed: under c.lock, which orders every writer of this class's allocated entries.
  const std::uint64_t v = e->load(std::memory_order_relaxed);
  check_entry(v, h, "free");
  // A large object: its run goes first, then its tail (docs/locking.md#large-objects).
  const Handle tail = is_run_class(c.index) ? tail_of(index) : Handle{0};
  const std::size_t tail_size =
      tail != Handle{0} ? split_large(HandleTable::decode_large(v).size, geo_.max_tail()).tail : 0;
  ReleaseBatch batch;
  bool kick = false;
  free_locked(c, index, v, batch, &kick);  // steps 3-5
  const std::uint64_t freeable = options_.auto_compact_frames ? c.freeable_locked() : 0;
  c.lock.unlock();
  after_free(c, batch, kick, freeable);  // step 6
  if (tail != Handle{0}) {
    // A tail placed in a larger class (large_alloc.cc) is no longer out of its own.
    const unsigned group =
        handles_.group_of(HandleTable::index_of(static_cast<std::uint64_t>(tail)));
    if (group != tail_home(tail_size)) tail_returned(tail_size);
    free_impl(tail);
  }
}

// Protocol: docs/locking.md#free-batch. Handles go in chunks of kChunk: the chunk is
// sorted by class (a stable counting sort on the class of each index), then each class's
// run is freed under one hold of its lock - at most kHold handles per hold, so waiters
// get in between - in two passes that turn dependent misses into parallel ones: load the
// entries (prefetched in step 1) and prefetch their descriptors; then free.
void PoolImpl::free_batch_impl(const Handle* handles, std::size_t n) noexcept {
  const Handle* hs = handles;
  if (n == 1) {  // nothing to group: the plain free (a discard of one block)
    if (static_cast<std::uint64_t>(hs[0]) != 0) free_impl(hs[0]);
    return;
  }
  constexpr std::size_t kChunk = 256;
  constexpr unsigned kHold = 64;
  std::uint32_t pos[kChunk];  // chunk positions, sorted by class
  std::uint16_t cls[kChunk];  // class of each chunk position
  unsigned start[kSlots + 1];
  for (std::size_t base = 0; base < n; base += kChunk) {
    const unsigned m = static_cast<unsigned>(std::min(kChunk, n - base));
    std::fill(start, start + kSlots + 1, 0u);
    for (unsigned i = 0; i < m; i++) {  // step 1: classes from the indexes alone
      const Handle h = hs[base + i];
      if (static_cast<std::uint64_t>(h) == 0) {
        cls[i] = kSlots;  // skipped
        continue;
      }
      std::atomic<std::uint64_t>* e = entry_of(h, "free_batch");
      __builtin_prefetch(e, 1);
      const unsigned g = handles_.group_of(HandleTable::index_of(static_cast<std::uint64_t>(h)));
      if (is_run_class(g)) {  // a large object: run and tail, one by one
        free_impl(h);
        cls[i] = kSlots;
        continue;
      }
      cls[i] = static_cast<std::uint16_t>(g);
      start[cls[i]]++;
    }
    unsigned sum = 0;
    for (unsigned k = 0; k < kSlots; k++) {
      const unsigned cnt = start[k];
      start[k] = sum;
      sum += cnt;
    }
    for (unsigned i = 0; i < m; i++) {
      if (cls[i] != kSlots) pos[start[cls[i]]++] = i;
    }
    // start[k] is now the end of class k's run.
    for (unsigned a = 0; a < sum;) {
      const unsigned k = cls[pos[a]];
      const unsigned b = start[k];
      SizeClass& c = classes_[k];
      ReleaseBatch batch;
      bool kick = false;
      c.lock.lock();  // step 2: once per run (and per kHold handles)
      for (unsigned j = a; j < b;) {
        const unsigned end = std::min(b, j + kHold);
        for (unsigned t = j; t < end; t++) {  // step 3a: entries in parallel
          const auto hv = static_cast<std::uint64_t>(hs[base + pos[t]]);
          // relaxed: under c.lock (see free_impl). Checked again in step 3b.
          const std::uint64_t v =
              handles_.entry(HandleTable::index_of(hv))->load(std::memory_order_relaxed);
          if (HandleTable::is_allocated(v)) {
            __builtin_prefetch(zspages_.get(HandleTable::decode(v).zspage), 1);
          }
        }
        for (unsigned t = j; t < end; t++) {  // step 3b: free, in the caller's order
          const Handle h = hs[base + pos[t]];
          const std::uint32_t index = HandleTable::index_of(static_cast<std::uint64_t>(h));
          // Re-load: an earlier copy of the same handle in this batch has freed it.
          const std::uint64_t v = handles_.entry(index)->load(std::memory_order_relaxed);
          check_entry(v, h, "free_batch");
          free_locked(c, index, v, batch, &kick);
          if (batch.full()) {  // step 4: release with the lock dropped
            c.lock.unlock();
            release(batch);
            c.lock.lock();
          }
        }
        j = end;
        if (j < b && c.lock.is_contended()) {
          c.lock.unlock();
          release(batch);
          c.lock.lock();
        }
      }
      const std::uint64_t freeable = options_.auto_compact_frames ? c.freeable_locked() : 0;
      c.lock.unlock();
      after_free(c, batch, kick, freeable);  // step 5
      a = b;
    }
  }
}

}  // namespace uzram

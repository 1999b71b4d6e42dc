// pool/large_alloc.cc - allocating a large object: its tail, then its run
// (docs/units.md#pool-objects-larger-than-a-frame), and where a tail goes.
#include "pool/pool_impl.h"

namespace uzram {

// docs/locking.md#large-objects, alloc: the tail first (an ordinary small alloc, or a
// spilled one), then the run, whose entry is published with the tail handle already in its
// aux word. No lock is held between the two; if the run fails the tail is freed and
// nothing leaks.
Result<Handle> PoolImpl::alloc_large(std::size_t size) noexcept {
  const LargeSplit s = split_large(size, geo_.max_tail());
  Handle tail{0};
  bool spilled = false;
  if (s.tail) {
    auto t = alloc_tail(s.tail, &spilled);
    if (!t) return t.error();
    tail = *t;
  }
  auto r = alloc_in(classes_[run_index(s.frames)], size, tail);
  if (!r) {
    if (tail != Handle{0}) free_impl(tail);  // a small object now: no tail bookkeeping
    if (spilled) tail_returned(s.tail);
    return r;
  }
  if (spilled) tails_spilled_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  return r;
}

unsigned PoolImpl::tail_home(std::size_t tail) const noexcept {
  return geo_.class_of_slot(Geometry::slot_for(tail));
}

// A tail that lived in a larger class is gone (its object freed, or its run never made):
// its own class may lend again (the cap counts tails out now, not ever).
void PoolImpl::tail_returned(std::size_t tail) noexcept {
  // relaxed: size_class.h (a heuristic's counter).
  classes_[tail_home(tail)].tails_out.fetch_sub(1, std::memory_order_relaxed);
}

// docs/units.md#tails-in-a-larger-class; docs/locking.md#alloc (tails). Its own class
// when that has a free slot; else, while the class is under its cap (geometry.h), the
// smallest larger normal class within tail_spill_limit that has one; else its own class,
// opening a zspage. One class lock at a time: each alloc_in takes and drops its class's
// lock. The room hints are read without a lock; alloc_in(open = false) re-checks under
// the class lock and takes nothing when the hint was stale.
Result<Handle> PoolImpl::alloc_tail(std::size_t size, bool* spilled) noexcept {
  const unsigned own = tail_home(size);
  // relaxed: a hint (size_class.h), verified by alloc_in under the lock.
  if (classes_[own].room_hint.load(std::memory_order_relaxed)) {
    auto h = alloc_in(classes_[own], size, Handle{0}, false);
    if (!h || *h != Handle{0}) return h;
  }
  // relaxed: size_class.h (a heuristic's counter).
  if (classes_[own].tails_out.load(std::memory_order_relaxed) >=
      std::uint32_t{kTailSpillZspages} * classes_[own].objs_per_zspage) {
    return alloc_in(classes_[own], size, Handle{0});
  }
  const std::size_t limit = tail_spill_limit(size, geo_.max_tail());
  for (unsigned i = own + 1; i < kSlots; i++) {
    if (!geo_.is_real(i)) continue;
    const ClassInfo& info = geo_.info(i);
    if (info.huge || info.size > limit) break;
    SizeClass& c = classes_[i];
    if (!c.room_hint.load(std::memory_order_relaxed)) continue;  // relaxed: as above
    auto h = alloc_in(c, size, Handle{0}, false);
    if (!h) return h;
    if (*h != Handle{0}) {
      classes_[own].tails_out.fetch_add(1, std::memory_order_relaxed);  // relaxed: size_class.h
      *spilled = true;
      return h;
    }
  }
  return alloc_in(classes_[own], size, Handle{0});  // opens a zspage if it must
}

}  // namespace uzram

// store/unit_io.cc - Store::write_blocks / read_blocks and whole units: runs of consecutive
// blocks whose aligned whole units go as one object each (docs/units.md#writes, #reads),
// the pieces of a unit range, and discard on a store with units. Locks:
// docs/locking.md#store-units. On a store of 4 KiB units every block goes on its own.
#include <algorithm>
#include <cstddef>
#include <cstring>

#include "store/same_filled.h"
#include "store/store_impl.h"
#include "store/unit.h"

namespace uzram {

Result<void> StoreImpl::do_write_blocks(std::uint64_t index, std::uint64_t count,
                                        const void* data) noexcept {
  ReaderLock cfg(init_lock_);
  if (!slots_) return Errc::not_initialized;
  if (index > nslots_ || count > nslots_ - index) return Errc::out_of_range;
  const auto* p = static_cast<const unsigned char*>(data);
  const std::uint64_t end = index + count, n = unit_blocks_;
  for (std::uint64_t i = index; i < end;) {
    const std::uint64_t head = i & ~(n - 1);
    Result<void> r;
    std::uint64_t step = 1;
    if (!in_unit(i)) {
      r = write_one(i, p);
    } else if (i == head && head + n <= end) {
      r = write_unit(i, p);
      step = n;
    } else {
      step = std::min(end, head + n) - i;
      r = write_piece(i, static_cast<unsigned>(step), p);
    }
    if (!r) return r;
    i += step;
    p += step * kBlockSize;
  }
  return {};
}

Result<void> StoreImpl::do_read_blocks(std::uint64_t index, std::uint64_t count,
                                       void* data) noexcept {
  ReaderLock cfg(init_lock_);
  if (!slots_) return Errc::not_initialized;
  if (index > nslots_ || count > nslots_ - index) return Errc::out_of_range;
  auto* p = static_cast<unsigned char*>(data);
  const std::uint64_t end = index + count, n = unit_blocks_;
  for (std::uint64_t i = index; i < end;) {
    if (in_unit(i) && (i & (n - 1)) == 0 && i + n <= end) {
      if (auto r = read_unit(i, p); !r) return r;
      i += n;
      p += n * kBlockSize;
    } else {
      if (auto r = read_one(i, p); !r) return r;
      i++;
      p += kBlockSize;
    }
  }
  return {};
}

std::uint64_t StoreImpl::publish_unit_locked(Slot& u, Handle h, std::size_t len, bool huge,
                                             std::uint32_t mask, unsigned partials) noexcept {
  Slot* head = &u;
  const std::uint64_t version = unit_version_.fetch_add(1, std::memory_order_relaxed) + 1;
  const auto members = static_cast<unsigned>(__builtin_popcount(mask));
  u.handle.store(static_cast<std::uint64_t>(h), std::memory_order_relaxed);
  u.set(static_cast<std::uint32_t>(len) | slotf::kUnit | (huge ? slotf::kHuge : 0) |
        (mask & 1 ? slotf::kMember : 0));
  for (unsigned k = 1; k < unit_blocks_; k++) {
    Slot& m = head[k];
    m.held_by(u);
    m.set(mask >> k & 1 ? slotf::kMember : 0);
    if (k > 1) m.handle.store(0, std::memory_order_relaxed);
  }
  unit::set_version(head, version, partials);
  stats_.units.fetch_add(1, std::memory_order_relaxed);
  stats_.compr_data_size.fetch_add(len, std::memory_order_relaxed);
  stats_.pages_stored.fetch_add(members, std::memory_order_relaxed);
  if (huge) {
    stats_.huge_pages.fetch_add(members, std::memory_order_relaxed);
    stats_.huge_pages_since.fetch_add(members, std::memory_order_relaxed);
  }
  return version;
}

// Protocol: docs/locking.md#store-units, "whole-unit write" (store write's steps for a unit).
Result<void> StoreImpl::write_unit(std::uint64_t first, const unsigned char* data) noexcept {
  summary_.note(first);  // a unit lies on one page of the slot table
  const unsigned n = unit_blocks_;
  Slot& u = slots_[first];
  std::uint64_t words[unit::kMaxBlocks];
  if (same_filled_blocks(data, n, words)) {  // step 1: N same-filled blocks, metadata only
    u.lock();
    free_range_locked(u);
    for (unsigned k = 0; k < n; k++) {
      Slot& s = slots_[first + k];
      s.held_by(u);
      s.handle.store(words[k], std::memory_order_relaxed);
      s.set(slotf::kSame);
      mark_accessed_locked(s);
    }
    u.unlock();
    stats_.same_pages.fetch_add(n, std::memory_order_relaxed);
    stats_.pages_stored.fetch_add(n, std::memory_order_relaxed);
    return {};
  }
  const auto fail = [this](std::error_code e) -> Result<void> {
    stats_.failed_writes.fetch_add(1, std::memory_order_relaxed);
    return e;
  };
  Stream& st = streams_[0].get();  // step 2: compress the unit, no unit lock
  auto clen =
      st.codec->compress_pieces(data, unit_size_, st.unit_cbuf, 2 * st.unit_bytes, unit_piece_);
  if (!clen) {
    StreamPool::put(st);
    return fail(clen.error());
  }
  const bool huge = *clen >= huge_unit_size_;  // step 3: raw
  const std::size_t len = huge ? unit_size_ : *clen;
  auto h = pool_->alloc(len);  // step 4
  if (!h) {
    StreamPool::put(st);
    return fail(h.error());
  }
  const bool over = !can_store(len, held_bytes(first, n));  // step 5: mem_limit after allocating
  if (over && !policy_.reacts()) {
    StreamPool::put(st);
    pool_->free(*h);
    return fail(Errc::limit_reached);
  }
  pool_->write(*h, huge ? data : st.unit_cbuf, len);  // step 6
  StreamPool::put(st);
  if (over && !policy_.wait_for_room()) {
    pool_->free(*h);
    return fail(Errc::limit_reached);
  }
  u.lock();  // step 7: free whatever the range held, publish head, members, a version
  free_range_locked(u);
  publish_unit_locked(u, *h, len, huge, (1u << n) - 1, 0);
  for (unsigned k = 0; k < n; k++) {
    Slot& s = slots_[first + k];
    s.held_by(u);
    mark_accessed_locked(s);
  }
  u.unlock();
  return {};
}

// Protocol: docs/locking.md#store-units, "read": one decompression into the destination.
Result<void> StoreImpl::read_unit(std::uint64_t first, unsigned char* data) noexcept {
  const unsigned n = unit_blocks_;
  if (!summary_.may_hold(first)) {
    std::memset(data, 0, std::size_t{n} * kBlockSize);
    return {};
  }
  Slot& u = slots_[first];
  u.lock();
  const std::uint32_t f = u.get();
  Result<void> r;
  if (!(f & slotf::kUnit)) {  // blocks of their own: one by one, under the one lock
    for (unsigned k = 0; k < n && r; k++) {
      Slot& s = slots_[first + k];
      s.held_by(u);
      r = load_locked(s, data + std::size_t{k} * kBlockSize);
      mark_accessed_locked(s);
    }
  } else {
    const auto h = static_cast<Handle>(u.handle.load(std::memory_order_relaxed));
    if (f & slotf::kHuge) {  // raw: gathered straight into the destination
      const void* p = pool_->read_begin(h, data);
      if (p != data) std::memcpy(data, p, unit_size_);
      pool_->read_end(h, p);
    } else {
      Stream& st = streams_[(f & slotf::kPrioMask) >> slotf::kPrioShift].get();
      st.resumable = nullptr;  // unit_gather is overwritten
      const void* p = pool_->read_begin(h, st.unit_gather);
      r = st.codec->decompress(p, f & slotf::kSizeMask, data, unit_size_);
      pool_->read_end(h, p);
      StreamPool::put(st);
    }
    const std::uint32_t mask = unit::members(&u, n);
    for (unsigned k = 0; k < n; k++) {
      Slot& s = slots_[first + k];
      s.held_by(u);
      if (r && !(mask >> k & 1)) std::memset(data + std::size_t{k} * kBlockSize, 0, kBlockSize);
      mark_accessed_locked(s);
    }
    if (r) stats_.unit_whole_reads.fetch_add(1, std::memory_order_relaxed);
  }
  u.unlock();
  if (!r) stats_.failed_reads.fetch_add(1, std::memory_order_relaxed);
  return r;
}

// A piece of a unit range: a partial write of a stored unit (retried once after the
// policy made room, as a block write waits for it), or ordinary block writes.
Result<void> StoreImpl::write_piece(std::uint64_t index, unsigned count,
                                    const unsigned char* data) noexcept {
  Slot& u = unit_lock(index);
  const auto k = static_cast<unsigned>(index & (unit_blocks_ - 1));
  for (bool retried = false;; retried = true) {
    u.lock();
    if (!(u.get() & slotf::kUnit)) {
      u.unlock();
      for (unsigned i = 0; i < count; i++) {
        if (auto r = write_block(index + i, data + std::size_t{i} * kBlockSize); !r) return r;
      }
      return {};
    }
    auto r = write_partial_locked(u, k, count, data);
    u.unlock();
    if (r || r.error() != Errc::limit_reached || retried || !policy_.reacts() ||
        !policy_.wait_for_room()) {
      if (!r) stats_.failed_writes.fetch_add(1, std::memory_order_relaxed);
      return r;
    }
  }
}

// Whole unit ranges inside [first, end) are freed (one free per unit); a range the
// request covers only in part is a partial write of holes, by the unit policy; if that
// cannot be done (no memory, mem_limit), its blocks just stop being members (the memory
// goes with the last one, as with free notify). Tail blocks past the last unit as ever.
void StoreImpl::discard_units(std::uint64_t first, std::uint64_t end, HandleBatch& batch) noexcept {
  const std::uint64_t n = unit_blocks_;
  const auto edge = [&](std::uint64_t lo, std::uint64_t hi) {  // [lo, hi) in one unit range
    init_lock_.assert_held_shared();                           // the lambda is not analysed
    if (!summary_.may_hold(lo)) return;
    Slot& u = unit_lock(lo);
    u.lock();
    if (!(u.get() & slotf::kUnit)) {
      u.unlock();
      discard_blocks(lo, hi, batch);
      return;
    }
    const auto k = static_cast<unsigned>(lo & (n - 1));
    const auto count = static_cast<unsigned>(hi - lo);
    if (!write_partial_locked(u, k, count, nullptr)) {
      for (unsigned j = k; j < k + count && (u.get() & slotf::kUnit); j++) {
        if ((&u)[j].flags.load(std::memory_order_relaxed) & slotf::kMember) {
          drop_member_locked(u, j, &batch);
        }
      }
    }
    u.unlock();
  };
  std::uint64_t lo = first, hi = end;
  if (in_unit(lo) && (lo & (n - 1))) {  // the first unit range, in part
    const std::uint64_t stop = std::min(hi, (lo & ~(n - 1)) + n);
    if (stop - lo < n) edge(lo, stop);
    lo = stop;
  }
  if (lo < hi && in_unit(hi - 1) && (hi & (n - 1))) {  // the last one, in part
    const std::uint64_t start = std::max(lo, (hi - 1) & ~(n - 1));
    edge(start, hi);
    hi = start;
  }
  if (lo < hi) discard_blocks(lo, hi, batch);  // whole units and tail blocks
}

}  // namespace uzram

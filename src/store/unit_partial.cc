// store/unit_partial.cc - partial reads and writes of a stored unit (docs/units.md#writes,
// #reads): a block read through the stream's decoded-unit cache; a partial write (or a
// discard of part of a unit) by the unit policy, rmw or split. Every function holds the
// unit lock; protocols in docs/locking.md#store-units.
#include <sched.h>

#include <cstring>

#include "store/same_filled.h"
#include "store/store_impl.h"
#include "store/unit.h"

namespace uzram {

Result<void> StoreImpl::decode_unit_locked(Slot& u, Stream& st, unsigned char* dst) noexcept {
  const std::uint32_t f = u.get();
  const auto h = static_cast<Handle>(u.handle.load(std::memory_order_relaxed));
  if (f & slotf::kHuge) {  // raw: gathered straight into dst
    const void* p = pool_->read_begin(h, dst);
    if (p != dst) std::memcpy(dst, p, unit_size_);
    pool_->read_end(h, p);
    return {};
  }
  st.resumable = nullptr;  // unit_gather is overwritten
  const void* p = pool_->read_begin(h, st.unit_gather);
  auto r = st.codec->decompress(p, f & slotf::kSizeMask, dst, unit_size_);
  pool_->read_end(h, p);
  return r;
}

// Protocol: docs/locking.md#store-units, "read" (a block of a stored unit). A reader that
// goes on past the prefix it decoded (sequential reads) gets the rest of the unit at once.
Result<Stream::CachedUnit*> StoreImpl::cached_unit_locked(Slot& u, Stream& st, Stream& dec,
                                                          std::size_t need, bool* hit) noexcept {
  Slot* head = &u;
  const std::uint64_t key = static_cast<std::uint64_t>(head - slots_) / unit_blocks_;
  const std::uint64_t version = unit::version(head);
  Stream::CachedUnit* c = st.cache_find(key, version);
  *hit = c && c->ready >= need;
  if (*hit) return c;
  const std::uint32_t f = u.get();
  Result<std::size_t> r = std::size_t{0};
  if (c && &dec == &st && st.resumable == c->data && st.codec->prefix_done() == c->ready) {
    r = st.codec->decompress_more(unit_size_);  // a hit: its decompression goes on
    *hit = true;
  } else {
    // Found with a prefix that cannot go on: a reader going through the unit, all of it.
    if (c) need = unit_size_;
    if (!c) c = st.cache_take(key);
    c->version = 0;
    if (&dec == &st && unit_piece_ && need < unit_size_ && !(f & slotf::kHuge)) {
      st.resumable = nullptr;  // unit_gather is overwritten
      const auto h = static_cast<Handle>(u.handle.load(std::memory_order_relaxed));
      const void* p = pool_->read_begin(h, st.unit_gather);
      // A source outside unit_gather (a small object read in place) is gone after
      // read_end: decode all of it now.
      r = st.codec->decompress_prefix(p, f & slotf::kSizeMask, c->data, unit_size_,
                                      p == st.unit_gather ? need : unit_size_);
      pool_->read_end(h, p);
    } else if (auto d = decode_unit_locked(u, dec, c->data); d) {
      r = std::size_t{unit_size_};
    } else {
      r = d.error();
    }
  }
  st.resumable = nullptr;
  if (!r) {
    c->version = 0;
    return r.error();
  }
  c->unit = key;
  c->version = version;
  c->ready = *r;
  if (*r < unit_size_) st.resumable = c->data;
  return c;
}

Result<void> StoreImpl::read_member_locked(Slot& u, unsigned k, void* block) noexcept {
  Slot* head = &u;
  if (!(head[k].flags.load(std::memory_order_relaxed) & slotf::kMember)) {  // freed: zeros
    std::memset(block, 0, kBlockSize);
    return {};
  }
  stats_.unit_partial_reads.fetch_add(1, std::memory_order_relaxed);
  const std::uint32_t f = u.get();
  const std::uint64_t key = static_cast<std::uint64_t>(head - slots_) / unit_blocks_;
  Stream& st =
      streams_[(f & slotf::kPrioMask) >> slotf::kPrioShift].get_for_unit(key, unit::version(head));
  bool hit = false;
  auto c = cached_unit_locked(u, st, st, std::size_t{k + 1} * kBlockSize, &hit);
  if (c) std::memcpy(block, (*c)->data + std::size_t{k} * kBlockSize, kBlockSize);
  StreamPool::put(st);
  if (!c) return c.error();
  if (hit) stats_.unit_cache_hits.fetch_add(1, std::memory_order_relaxed);
  return {};
}

// Protocol: docs/locking.md#store-units, "partial write". The unit is decoded into the
// primary stream's cache (or found there), patched, and either re-encoded whole (rmw) or
// split into blocks, as unit_policy says for this unit's count of partial writes.
Result<void> StoreImpl::write_partial_locked(Slot& u, unsigned k, unsigned count,
                                             const unsigned char* data) noexcept {
  Slot* head = &u;
  const unsigned n = unit_blocks_;
  const std::uint32_t f = u.get();
  const unsigned prio = (f & slotf::kPrioMask) >> slotf::kPrioShift;
  const std::uint32_t old_mask = unit::members(head, n);
  const std::uint32_t range = ((1u << count) - 1) << k;
  const std::uint32_t mask = data ? old_mask | range : old_mask & ~range;
  if (!data && mask == old_mask) return {};  // holes where the unit holds nothing: no change
  if (mask == 0) {                           // holes over every member left: the unit goes
    free_unit_locked(u);
    return {};
  }
  const std::uint32_t split_after = unit_split_after_.load(std::memory_order_relaxed);
  const unsigned partials = unit::partials(head) + 1;
  bool split = split_after != 0 && partials >= split_after;
  Stream& st = streams_[0].get();
  Stream* dec = &st;
  if (prio != 0) {  // a recompressed unit: its algorithm's stream too (try only: same level)
    while (!(dec = streams_[prio].try_get())) sched_yield();
  }
  bool hit = false;
  auto found = cached_unit_locked(u, st, *dec, unit_size_, &hit);
  if (dec != &st) StreamPool::put(*dec);
  if (!found) {
    StreamPool::put(st);
    return found.error();
  }
  Stream::CachedUnit* c = *found;
  c->version = 0;  // being patched: valid again only if the rmw publishes it
  for (unsigned j = k; j < k + count; j++) {
    unsigned char* dst = c->data + std::size_t{j} * kBlockSize;
    if (data) {
      std::memcpy(dst, data + std::size_t{j - k} * kBlockSize, kBlockSize);
    } else {
      std::memset(dst, 0, kBlockSize);
    }
  }
  auto r = split ? split_locked(u, st, c->data, mask) : rmw_locked(u, st, c, mask, partials);
  if (split && !r && r.error() == Errc::limit_reached) {
    // At mem_limit the blocks of a split take more than the unit (blocks compress worse),
    // which a full store refuses; the unit re-encoded in place takes about what it frees
    // (can_store), so the write goes on as an rmw rather than failing while the limit lasts.
    split = false;
    r = rmw_locked(u, st, c, mask, partials);
  }
  StreamPool::put(st);
  if (!r) return r;
  (split ? stats_.unit_split_writes : stats_.unit_rmw_writes)
      .fetch_add(1, std::memory_order_relaxed);
  if (data) {
    for (unsigned j = k; j < k + count; j++) {
      head[j].held_by(u);
      touch_locked(u, head[j]);
    }
  }
  return {};
}

// rmw: the patched unit (non-members zeroed: they cost nothing) compressed whole, a new
// object published with a new version; the cache entry keeps the new contents.
Result<void> StoreImpl::rmw_locked(Slot& u, Stream& st, Stream::CachedUnit* c, std::uint32_t mask,
                                   unsigned partials) noexcept {
  unsigned char* buf = c->data;
  for (unsigned j = 0; j < unit_blocks_; j++) {
    if (!(mask >> j & 1)) std::memset(buf + std::size_t{j} * kBlockSize, 0, kBlockSize);
  }
  auto clen =
      st.codec->compress_pieces(buf, unit_size_, st.unit_cbuf, 2 * st.unit_bytes, unit_piece_);
  if (!clen) return clen.error();
  const bool huge = *clen >= huge_unit_size_;
  const std::size_t len = huge ? unit_size_ : *clen;
  auto h = pool_->alloc(len);
  if (!h) return h.error();
  if (!can_store(len, u.get() & slotf::kSizeMask)) {  // at the limit: if it does not grow
    pool_->free(*h);
    return Errc::limit_reached;
  }
  pool_->write(*h, huge ? buf : st.unit_cbuf, len);
  free_unit_locked(u);  // the old object, freed at publication
  c->version = publish_unit_locked(u, *h, len, huge, mask, partials);
  return {};
}

// split: every block left in the unit (a member after the write) stored on its own, as a
// 4 KiB store would (same-filled, compressed or raw); the unit object freed. Any failure
// frees what was made so far and leaves the unit as it was.
Result<void> StoreImpl::split_locked(Slot& u, Stream& st, const unsigned char* buf,
                                     std::uint32_t mask) noexcept {
  struct Piece {
    std::uint64_t word = 0;  // handle, or fill word
    std::uint32_t flags = 0;
  } pieces[unit::kMaxBlocks];
  const unsigned n = unit_blocks_;
  std::size_t bytes = 0;  // what the pieces take
  const auto undo = [&](std::error_code e) -> Result<void> {
    init_lock_.assert_held_shared();  // the lambda is not analysed with the caller's locks
    for (unsigned j = 0; j < n; j++) {
      if (pieces[j].flags & slotf::kSizeMask) pool_->free(static_cast<Handle>(pieces[j].word));
    }
    return e;
  };
  for (unsigned j = 0; j < n; j++) {
    if (!(mask >> j & 1)) continue;
    const unsigned char* block = buf + std::size_t{j} * kBlockSize;
    if (same_filled(block, &pieces[j].word)) {
      pieces[j].flags = slotf::kSame;
      continue;
    }
    auto clen = st.codec->compress(block, kBlockSize, st.buffer, sizeof st.buffer);
    if (!clen) return undo(clen.error());
    const bool huge = *clen >= huge_class_size_;
    const std::size_t len = huge ? kBlockSize : *clen;
    auto h = pool_->alloc(len);
    if (!h) return undo(h.error());
    pool_->write(*h, huge ? block : st.buffer, len);
    pieces[j] = {static_cast<std::uint64_t>(*h),
                 static_cast<std::uint32_t>(len) | (huge ? slotf::kHuge : 0)};
    bytes += len;
  }
  if (!can_store(bytes, u.get() & slotf::kSizeMask)) return undo(Errc::limit_reached);
  free_unit_locked(u);
  Slot* head = &u;
  for (unsigned j = 0; j < n; j++) {
    const Piece& p = pieces[j];
    if (!p.flags) continue;
    Slot& s = head[j];
    s.held_by(u);
    s.handle.store(p.word, std::memory_order_relaxed);
    s.set(p.flags);
    stats_.pages_stored.fetch_add(1, std::memory_order_relaxed);
    if (p.flags & slotf::kSame) {
      stats_.same_pages.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    stats_.compr_data_size.fetch_add(p.flags & slotf::kSizeMask, std::memory_order_relaxed);
    if (p.flags & slotf::kHuge) {
      stats_.huge_pages.fetch_add(1, std::memory_order_relaxed);
      stats_.huge_pages_since.fetch_add(1, std::memory_order_relaxed);
    }
  }
  stats_.unit_splits.fetch_add(1, std::memory_order_relaxed);
  return {};
}

}  // namespace uzram

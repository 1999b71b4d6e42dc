// store/unit_pp.cc - the pieces writeback and recompress share for units (unit_pp.h):
// copying a unit's object out under its unit lock, decoding the copy, a member's own
// compression, and the pool-footprint comparison of recompression.
#include "store/unit_pp.h"

#include <cstring>
#include <new>
#include <utility>

#include "store/unit.h"

namespace uzram {

Result<void> UnitScratch::init(std::size_t unit_size) noexcept {
  unit_size_ = unit_size;
  buf_.reset(new (std::nothrow) unsigned char[4 * unit_size]);
  if (!buf_) return Errc::no_memory;
  return {};
}

void unit_copy_out_locked(StoreImpl& s, Slot& u, UnitScratch& sc, UnitCopy* c) noexcept {
  c->flags = u.get() & ~slotf::kLock;
  c->handle = u.handle.load(std::memory_order_relaxed);
  c->version = unit::version(&u);
  c->members = unit::members(&u, s.unit_blocks_);
  const auto h = static_cast<Handle>(c->handle);
  const void* p = s.pool_->read_begin(h, sc.object());
  if (p != sc.object()) std::memcpy(sc.object(), p, c->size());
  s.pool_->read_end(h, p);
}

bool unit_unchanged_locked(StoreImpl& s, Slot& u, const UnitCopy& c) noexcept {
  const std::uint32_t f = u.get();
  constexpr std::uint32_t kSame = slotf::kSizeMask | slotf::kHuge | slotf::kPrioMask;
  return (f & slotf::kUnit) && (f & slotf::kPpSlot) && (f & kSame) == (c.flags & kSame) &&
         u.handle.load(std::memory_order_relaxed) == c.handle && unit::version(&u) == c.version &&
         unit::members(&u, s.unit_blocks_) == c.members;
}

Result<void> unit_decode(StoreImpl& s, const UnitCopy& c, UnitScratch& sc) noexcept {
  const std::size_t unit_size = s.unit_size_;
  if (c.flags & slotf::kHuge) {  // a raw unit
    std::memcpy(sc.data(), sc.object(), unit_size);
    return {};
  }
  StreamPool& sp = s.streams_[c.prio()];
  if (Codec* codec = sp.stateless_decoder()) {
    return codec->decompress(sc.object(), c.size(), sc.data(), unit_size);
  }
  Stream& st = sp.get();
  auto r = st.codec->decompress(sc.object(), c.size(), sc.data(), unit_size);
  StreamPool::put(st);
  return r;
}

std::uint32_t unit_member_compress(StoreImpl& s, const unsigned char* block, unsigned char* out,
                                   std::size_t out_size) noexcept {
  Stream& st = s.streams_[0].get();
  auto r = st.codec->compress(block, kBlockSize, out, out_size);
  StreamPool::put(st);
  if (!r || *r >= s.huge_class_size_) return 0;
  return static_cast<std::uint32_t>(*r);
}

namespace {

// (run frames, class of the tail or -1): the order of the pool's footprint. A tail in the
// small classes' huge class takes a frame of its own: it counts as one more run frame.
std::pair<std::size_t, long> pool_key(const Pool& pool, std::size_t size) noexcept {
  const std::size_t frames = size / kBlockSize, tail = size % kBlockSize;
  if (tail == 0) return {frames, -1};
  const unsigned c = pool.lookup_class_index(tail);
  if (c == pool.lookup_class_index(kBlockSize)) return {frames + 1, -1};
  return {frames, static_cast<long>(c)};
}

}  // namespace

bool pool_takes_less(const Pool& pool, std::size_t a, std::size_t b) noexcept {
  return pool_key(pool, a) < pool_key(pool, b);
}

}  // namespace uzram

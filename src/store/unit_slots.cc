// store/unit_slots.cc - a unit range's slots: freeing a stored unit, a member, or whatever
// the range holds, and the invariants of a range (slot.h, docs/units.md#indexing-the-rfcs).
// Every function holds the range's unit lock (the head slot's).
#include <algorithm>

#include "store/store_impl.h"
#include "store/unit.h"
#include "util/check.h"

namespace uzram {

void StoreImpl::free_unit_locked(Slot& u, HandleBatch* batch) noexcept {
  const std::uint32_t f = u.get();
  ZS_CHECK(f & slotf::kUnit, "free_unit_locked: not a stored unit's head");
  const unsigned n = unit_blocks_;
  Slot* head = &u;
  const unsigned members = static_cast<unsigned>(__builtin_popcount(unit::members(head, n)));
  const auto h = static_cast<Handle>(u.handle.load(std::memory_order_relaxed));
  if (batch) {
    batch->add(h);
  } else {
    pool_->free(h);
  }
  stats_.compr_data_size.fetch_sub(f & slotf::kSizeMask, std::memory_order_relaxed);
  stats_.pages_stored.fetch_sub(members, std::memory_order_relaxed);
  if (f & slotf::kHuge) stats_.huge_pages.fetch_sub(members, std::memory_order_relaxed);
  stats_.units.fetch_sub(1, std::memory_order_relaxed);
  for (unsigned k = 1; k < n; k++) {
    Slot& m = head[k];
    m.held_by(u);
    m.handle.store(0, std::memory_order_relaxed);
    m.set(0);
  }
  u.handle.store(0, std::memory_order_relaxed);
  u.set(0);
}

void StoreImpl::free_range_locked(Slot& u, HandleBatch* batch) noexcept {
  if (u.get() & slotf::kUnit) {
    free_unit_locked(u, batch);
    return;
  }
  const std::uint64_t first = static_cast<std::uint64_t>(&u - slots_);
  const std::uint64_t end = std::min<std::uint64_t>(first + unit_blocks_, nslots_);
  for (std::uint64_t i = first; i < end; i++) {
    Slot& s = slots_[i];
    s.held_by(u);
    if (s.allocated()) free_slot_locked(s, batch);
  }
}

void StoreImpl::drop_member_locked(Slot& u, unsigned k, HandleBatch* batch) noexcept {
  Slot& m = (&u)[k];
  m.held_by(u);
  const std::uint32_t f = u.get();
  ZS_CHECK((f & slotf::kUnit) && (m.get() & slotf::kMember), "drop_member_locked: not a member");
  if (unit::members(&u, unit_blocks_) == (1u << k)) {  // the last one: the object goes
    free_unit_locked(u, batch);
    return;
  }
  m.set(m.get() & ~slotf::kMember);
  stats_.pages_stored.fetch_sub(1, std::memory_order_relaxed);
  if (f & slotf::kHuge) stats_.huge_pages.fetch_sub(1, std::memory_order_relaxed);
}

void StoreImpl::check_range_locked(Slot& u, InvariantCounts* c) const noexcept {
  const std::uint64_t first = static_cast<std::uint64_t>(&u - slots_);
  const std::uint64_t end = std::min<std::uint64_t>(first + unit_blocks_, nslots_);
  const std::uint32_t uf = u.get();
  const bool unit = uf & slotf::kUnit;
  ZS_CHECK(!unit || (in_unit(first) && !(uf & (slotf::kSame | slotf::kWb)) &&
                     (uf & slotf::kSizeMask) != 0),
           "slot %llu: a unit's head with flags %#x", static_cast<unsigned long long>(first), uf);
  for (std::uint64_t i = first; i < end; i++) {
    Slot& s = slots_[i];
    s.held_by(u);
    const std::uint32_t f = s.get();
    const std::uint32_t size = f & slotf::kSizeMask;
    const bool is_same = f & slotf::kSame, is_wb = f & slotf::kWb;
    ZS_CHECK(i == first || !(f & slotf::kLock), "slot %llu: a unit's other slot is locked",
             static_cast<unsigned long long>(i));
    ZS_CHECK(i == first || !(f & slotf::kUnit), "slot %llu: UNIT off the head",
             static_cast<unsigned long long>(i));
    ZS_CHECK(!(f & slotf::kMember) || unit, "slot %llu: MEMBER without a stored unit",
             static_cast<unsigned long long>(i));
    if (unit && i != first) {
      ZS_CHECK(!(f & (slotf::kSizeMask | slotf::kSame | slotf::kWb | slotf::kHuge)),
               "slot %llu: a unit's slot holds something of its own (flags %#x)",
               static_cast<unsigned long long>(i), f);
      ZS_CHECK(i == first + 1 || s.handle.load(std::memory_order_relaxed) == 0,
               "slot %llu: a unit's slot has a handle", static_cast<unsigned long long>(i));
    }
    if (f & slotf::kMember) {
      c->stored++;
      if (uf & slotf::kHuge) c->huge++;
    }
    if (unit) continue;
    ZS_CHECK(!(is_same && (is_wb || size)), "slot %llu: SAME with WB or a size (flags %#x)",
             static_cast<unsigned long long>(i), f);
    ZS_CHECK(!(is_wb && size), "slot %llu: WB with a size", static_cast<unsigned long long>(i));
    ZS_CHECK(!(f & slotf::kHuge) || size == kBlockSize, "slot %llu: HUGE with size %u",
             static_cast<unsigned long long>(i), size);
    ZS_CHECK(size <= kBlockSize, "slot %llu: a block of %u bytes",
             static_cast<unsigned long long>(i), size);
    if (is_same) c->same++;
    if (is_wb) c->wb++;
    if (size) {
      c->objs++;
      c->compr += size;
      if (f & slotf::kHuge) c->huge++;
      const auto h = static_cast<Handle>(s.handle.load(std::memory_order_relaxed));
      ZS_CHECK(pool_->object_size(h) == size, "slot %llu: object size %zu != %u",
               static_cast<unsigned long long>(i), pool_->object_size(h), size);
    }
    if (is_same || is_wb || size) c->stored++;
  }
  if (!unit) return;
  const std::uint32_t size = uf & slotf::kSizeMask;
  ZS_CHECK(!(uf & slotf::kHuge) || size == unit_size_, "unit at %llu: HUGE with size %u",
           static_cast<unsigned long long>(first), size);
  ZS_CHECK((uf & slotf::kHuge) || size < huge_unit_size_,
           "unit at %llu: %u bytes stored compressed, the raw threshold is %zu",
           static_cast<unsigned long long>(first), size, huge_unit_size_);
  ZS_CHECK(unit::members(&u, unit_blocks_) != 0, "unit at %llu: no member",
           static_cast<unsigned long long>(first));
  ZS_CHECK(unit::version(&u) != 0 && unit::version(&u) <= unit_version_.load(),
           "unit at %llu: version %llu", static_cast<unsigned long long>(first),
           static_cast<unsigned long long>(unit::version(&u)));
  const auto h = static_cast<Handle>(u.handle.load(std::memory_order_relaxed));
  ZS_CHECK(pool_->object_size(h) == size, "unit at %llu: object size %zu != %u",
           static_cast<unsigned long long>(first), pool_->object_size(h), size);
  c->objs++;
  c->units++;
  if (size > kBlockSize) c->large++;
  c->compr += size;
}

}  // namespace uzram

// store/idle.cc - the idle attribute ("idle all", "idle <seconds>": a row of the attribute
// table) and the store's invariant checker.
#include <bit>
#include <mutex>

#include "store/attr_table.h"
#include "store/fail.h"
#include "store/kv.h"
#include "store/pp_run.h"
#include "store/store_impl.h"
#include "store/unit.h"
#include "util/check.h"

namespace uzram {

// "all" (0) or an age in seconds (> 0).
Result<void> attr::parse_idle(const StoreImpl&, std::string_view text, AttrArg* out,
                              std::string* msg) noexcept {
  std::uint64_t age = 0;
  if (text != "all" && (!parse_u64(text, &age) || age == 0)) {
    return fail(msg, Errc::invalid_argument, "idle: expects 'all' or an age in seconds");
  }
  out->number = age;
  return {};
}

// "all": mark every allocated slot that is not same-filled or written back IDLE.
// "<seconds>": mark slots not accessed for at least that long IDLE, and clear IDLE on the
// younger ones (the kernel's CONFIG_ZRAM_TRACK_ENTRY_ACTIME behaviour; uzram always
// tracks access times). Caller holds init_lock_ shared.
Result<void> attr::write_idle(StoreImpl& s, AttrArg& arg, std::string*) noexcept {
  mark_idle(s, arg.number);
  return {};
}

std::uint64_t mark_idle(StoreImpl& s, std::uint64_t age) noexcept {
  // Called through the attribute table's pointer and by the policy, both under it.
  s.init_lock_.assert_held_shared();
  const bool all = age == 0;
  const std::uint32_t now = s.now_seconds();
  std::uint64_t marked = 0;
  s.for_each_stored_slot(0, s.nslots_, [&](std::uint64_t i, Slot& slot) {  // re-checked below
    s.init_lock_.assert_held_shared();  // the analysis does not see into the lambda
    Slot& u = s.unit_lock(i);
    u.lock();
    slot.held_by(u);
    const std::uint32_t f = slot.get();
    if ((f & (slotf::kSizeMask | slotf::kSame | slotf::kWb)) &&
        !(f & (slotf::kSame | slotf::kWb))) {
      const std::uint32_t t = slot.ac_time.load(std::memory_order_relaxed);
      const bool old = all || now - t >= age;
      slot.set(old ? (f | slotf::kIdle) & ~slotf::kLock : f & ~(slotf::kIdle | slotf::kLock));
      // A unit's head: the unit is idle, its members count (blocks, as idle_marked says).
      if (old) marked += f & slotf::kUnit ? std::popcount(unit::members(&slot, s.unit_blocks_)) : 1;
    }
    u.unlock();
    return true;
  });
  return marked;
}

void StoreImpl::do_check_invariants() const noexcept {
  ReaderLock l(init_lock_);
  if (!slots_) return;
  // Pages the summary says never held a block must hold none. They are checked (a relaxed
  // peek: reading maps no memory) on disks up to 4 GiB; larger ones only walk marked pages.
  if (nslots_ <= (std::uint64_t{1} << 20)) {
    for (std::uint64_t i = 0; i < nslots_; i++) {
      ZS_CHECK(summary_.may_hold(i) || !slots_[i].allocated(),
               "slot %llu holds a block on a slot-table page the summary does not mark",
               static_cast<unsigned long long>(i));
    }
  }
  // Range by range (a unit range under its unit lock; on a store without units a range is
  // one block): unit_slots.cc's check_range_locked.
  InvariantCounts c;
  std::uint64_t done = 0;  // ranges before this block were checked
  for_each_stored_slot(0, nslots_, [&](std::uint64_t i, Slot&) {
    init_lock_.assert_held_shared();  // the analysis does not see into the lambda
    if (i < done) return true;
    Slot& u = unit_lock(i);
    done = static_cast<std::uint64_t>(&u - slots_) + unit_blocks_;
    u.lock();
    check_range_locked(u, &c);
    u.unlock();
    return true;
  });
  const std::uint64_t stored = c.stored, same = c.same, huge = c.huge, wb = c.wb, compr = c.compr,
                      objs = c.objs;
  const auto ld = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  ZS_CHECK(stored == ld(stats_.pages_stored), "pages_stored %llu, slots say %llu",
           static_cast<unsigned long long>(ld(stats_.pages_stored)),
           static_cast<unsigned long long>(stored));
  ZS_CHECK(same == ld(stats_.same_pages) && huge == ld(stats_.huge_pages) &&
               wb == ld(stats_.bd_count) && compr == ld(stats_.compr_data_size),
           "store counters disagree with the slots");
  ZS_CHECK(c.units == ld(stats_.units), "units %llu, slots say %llu",
           static_cast<unsigned long long>(ld(stats_.units)),
           static_cast<unsigned long long>(c.units));
  // A large object (a unit's, above 4 KiB) is a run and maybe a tail: one or two objects.
  const PoolStats ps = pool_->stats();
  ZS_CHECK(ps.large_objects == c.large && objs <= ps.objs_used && ps.objs_used <= objs + c.large,
           "pool holds %llu objects (%llu large), slots %llu (%llu large)",
           static_cast<unsigned long long>(ps.objs_used),
           static_cast<unsigned long long>(ps.large_objects), static_cast<unsigned long long>(objs),
           static_cast<unsigned long long>(c.large));
  check_backing_invariants();
  pool_->check_invariants();
}

}  // namespace uzram

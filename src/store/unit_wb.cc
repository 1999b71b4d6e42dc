// store/unit_wb.cc - writeback of a unit: the unit is split (writeback_run.h,
// docs/units.md#post-processing). Its object is copied out under the unit lock and
// decoded once; each member goes to a backing block of its own (raw, or compressed on its
// own with compressed_writeback), a same-filled member becomes a same-filled block. The
// members go in one batch; when it is durable and the unit is unchanged, the unit's object
// is freed and its N slots are published at once, under the unit lock.
#include <bit>
#include <cstring>

#include "store/backing.h"
#include "store/fail.h"
#include "store/same_filled.h"
#include "store/writeback_run.h"

namespace uzram {

Result<void> WritebackRun::init_units(std::string* msg) noexcept {
  s_.init_lock_.assert_held_shared();  // held by the pass's caller (pp_pass.h)
  if (s_.unit_blocks_ > 1 && !scratch_.init(s_.unit_size_)) {
    return fail(msg, Errc::no_memory, "writeback: out of memory");
  }
  return init(msg);
}

// Room for every member first (a batch holds any unit: WbRun::init); then the copy under
// the unit lock, the decode and the members' placement without it. A member that cannot
// be placed (the tier full, the limit spent) drops the unit's others from the batch: the
// unit stays in RAM.
WbRun::Place WritebackRun::place_unit(WbBatch* b, std::uint64_t index) noexcept {
  s_.init_lock_.assert_held_shared();
  const unsigned n = s_.unit_blocks_;
  if (!room(b, n)) {
    ZS_CHECK(b->nobjs > 0, "writeback: a batch of %u pages cannot hold a unit", b->cap);
    return Place::full;  // the next batch
  }
  Slot& u = s_.slots_[index];
  u.lock();
  const std::uint32_t f = u.get();
  if (!(f & slotf::kUnit) || !(f & slotf::kPpSlot) || (f & slotf::kWb)) {
    u.unlock();
    return Place::skipped;  // accessed or freed since the scan
  }
  UnitCopy c;
  unit_copy_out_locked(s_, u, scratch_, &c);
  u.unlock();
  const auto members = static_cast<unsigned>(std::popcount(c.members));
  if (max_pages_ && placed_ + members > max_pages_) {  // max_pages counts blocks
    release(index);
    return Place::skipped;
  }
  if (auto r = unit_decode(s_, c, scratch_); !r) {
    release(index);
    note_error(r.error());
    return Place::skipped;
  }
  std::uint64_t words[unit::kMaxBlocks];
  std::uint32_t same = 0;
  for (unsigned k = 0; k < n; k++) {
    const unsigned char* blk = scratch_.data() + std::size_t{k} * kBlockSize;
    if ((c.members >> k & 1) && same_filled(blk, &words[k])) same |= 1u << k;
  }
  if (same == c.members) {  // nothing to write back (it was re-encoded so): leave it
    release(index);
    return Place::skipped;
  }
  const unsigned last = 31 - static_cast<unsigned>(std::countl_zero(c.members));
  const Mark m = mark(b);
  for (unsigned k = 0; k < n; k++) {
    if (!(c.members >> k & 1)) continue;
    WbObj o;
    o.index = index + k;
    o.handle = c.handle;
    o.flags = (c.flags & (slotf::kSizeMask | slotf::kHuge | slotf::kPrioMask)) | slotf::kMember |
              (k == last ? slotf::kUnit : 0);
    if (same >> k & 1) {
      o.wb_handle = words[k];
      o.wb_flags = slotf::kSame;
      add(b, o);
      continue;
    }
    const unsigned char* blk = scratch_.data() + std::size_t{k} * kBlockSize;
    const std::uint32_t len =
        compressed_ ? unit_member_compress(s_, blk, scratch_.out(), scratch_.out_size()) : 0;
    const bool raw = len == 0;
    std::uint64_t off;
    WbAddr a;
    if (const Place p = reserve(b, raw ? kBlockSize : len, raw, &off, &a); p != Place::placed) {
      rollback(b, m);
      if (p == Place::full) release(index);  // cannot happen after room(); never leak it
      return p == Place::full ? Place::skipped : p;
    }
    std::memcpy(b->pages + off, raw ? blk : scratch_.out(), raw ? kBlockSize : len);
    o.wb_handle = wb_encode(a);
    o.wb_flags = slotf::kWb | (raw ? 0 : slotf::kWbCompressed);  // priority 0: the primary
    commit(b, off, raw ? kBlockSize : len, o);
  }
  placed_ += members;
  return Place::placed;
}

// All the unit's members are in pending_. Written and the unit unchanged: the object is
// freed and each member's slot becomes WB (or SAME), keeping the unit's access time;
// else the unit stays as it is (the written blocks go back when their pages are unpinned).
void WritebackRun::publish_unit(bool ok) noexcept {
  s_.init_lock_.assert_held_shared();
  const std::uint64_t index = pending_[0].index & ~std::uint64_t{s_.unit_blocks_ - 1};
  Slot& u = s_.slots_[index];
  UnitCopy c;
  c.flags = pending_[0].flags & ~(slotf::kMember | slotf::kUnit);
  c.handle = pending_[0].handle;
  for (unsigned i = 0; i < npending_; i++) c.members |= 1u << (pending_[i].index - index);
  u.lock();
  c.version = unit::version(&u);  // members, object and PP_SLOT tell a change
  if (!ok || !unit_unchanged_locked(s_, u, c)) {
    if (u.get() & slotf::kPpSlot) u.set(u.get() & ~slotf::kPpSlot);
    u.unlock();
    npending_ = 0;
    return;
  }
  const std::uint32_t ac = u.ac_time.load(std::memory_order_relaxed);
  s_.free_unit_locked(u);  // the object; pages_stored, compr_data_size, huge_pages, units
  std::uint64_t written = 0;
  for (unsigned i = 0; i < npending_; i++) {
    const WbObj& o = pending_[i];
    Slot& m = s_.slots_[o.index];
    m.held_by(u);
    m.handle.store(o.wb_handle, std::memory_order_relaxed);
    m.set(o.wb_flags);
    m.ac_time.store(ac, std::memory_order_relaxed);
    if (o.wb_flags & slotf::kWb) {
      b_.alloc.add_live(wb_decode(o.wb_handle));  // under the unit lock: before any free
      written++;
    } else {
      s_.stats_.same_pages.fetch_add(1, std::memory_order_relaxed);
    }
  }
  u.unlock();
  s_.stats_.pages_stored.fetch_add(npending_, std::memory_order_relaxed);
  s_.stats_.bd_count.fetch_add(written, std::memory_order_relaxed);
  s_.stats_.unit_splits.fetch_add(1, std::memory_order_relaxed);
  if (done_) {
    done_->pages += written;
    done_->bytes += c.size();
  }
  npending_ = 0;
}

}  // namespace uzram

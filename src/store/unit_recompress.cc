// store/unit_recompress.cc - recompression of a stored unit (unit_pp.h): the unit is kept,
// re-encoded whole with a secondary algorithm (docs/units.md#post-processing). The unit
// lock is held to copy the object out and to publish, as for a block (recompress.cc).
#include <bit>
#include <cstring>

#include "store/fail.h"
#include "store/pp_pass.h"
#include "store/unit.h"
#include "store/unit_pp.h"

namespace uzram {
namespace {

struct NewObject {
  Handle handle{};
  std::uint32_t len = 0;
  unsigned prio = 0;
};

// Tries the priorities above the unit's own on sc.data(); the first result that takes
// less of the pool (and is below the threshold) is allocated and written into *out.
// Returns whether one was, or the error that stops the pass. No lock held.
Result<bool> try_unit_priorities(StoreImpl& s, std::uint64_t index, const RecompCommand& cmd,
                                 const UnitCopy& c, UnitScratch& sc, NewObject* out,
                                 std::string* msg) noexcept ZS_REQUIRES_SHARED(s.init_lock_) {
  const std::uint64_t limit = cmd.threshold * s.unit_blocks_;  // threshold is per 4 KiB
  for (unsigned p = std::max(cmd.prio_lo, c.prio() + 1); p < cmd.prio_max; p++) {
    if (!s.streams_[p].active()) continue;
    Stream& st = s.streams_[p].get();
    auto clen =
        st.codec->compress_pieces(sc.data(), s.unit_size_, sc.out(), sc.out_size(), s.unit_piece_);
    StreamPool::put(st);
    if (!clen) {
      return fail(msg, clen.error(),
                  "recompress: " + s.comp_[p].name + " failed on the unit at block " +
                      std::to_string(index))
          .error();
    }
    const std::size_t len = *clen;
    // Raw from huge_unit_size_ on: nothing would be saved.
    if (len >= s.huge_unit_size_ || !pool_takes_less(*s.pool_, len, c.size()) ||
        (limit && len >= limit)) {
      continue;
    }
    auto h = s.pool_->alloc(len);  // the old object stays if this fails
    if (!h) {
      return fail(msg, h.error(), "recompress: cannot allocate a pool object").error();
    }
    s.pool_->write(*h, sc.out(), len);
    *out = {*h, static_cast<std::uint32_t>(len), p};
    return true;
  }
  return false;
}

// The outcome, under the unit lock, if the unit is as it was copied: the new object
// replaces the old one (a new version: the decoded-unit caches key on it), or, with none,
// the head is marked INCOMPRESSIBLE when `incompressible`. IDLE is cleared either way. A
// changed unit keeps its new contents and the new object is freed.
void publish_unit(StoreImpl& s, std::uint64_t index, const UnitCopy& c, const NewObject* r,
                  bool incompressible, PpDone* done) noexcept ZS_REQUIRES_SHARED(s.init_lock_) {
  Slot& u = s.slots_[index];
  u.lock();
  if (!unit_unchanged_locked(s, u, c)) {
    if (u.get() & slotf::kPpSlot) u.set(u.get() & ~slotf::kPpSlot);
    u.unlock();
    if (r) s.pool_->free(r->handle);
    return;
  }
  const std::uint32_t f = u.get() & ~(slotf::kIdle | slotf::kPpSlot);
  if (!r) {
    u.set(f | (incompressible ? slotf::kIncompressible : 0));
    u.unlock();
    return;
  }
  const std::uint32_t members = static_cast<std::uint32_t>(std::popcount(c.members));
  s.pool_->free(static_cast<Handle>(c.handle));
  u.handle.store(static_cast<std::uint64_t>(r->handle), std::memory_order_relaxed);
  u.set((f & ~(slotf::kSizeMask | slotf::kHuge | slotf::kPrioMask)) | r->len |
        (r->prio << slotf::kPrioShift));
  const std::uint64_t v = s.unit_version_.fetch_add(1, std::memory_order_relaxed) + 1;
  unit::set_version(&u, v, unit::partials(&u));
  u.unlock();
  s.stats_.compr_data_size.fetch_sub(c.size() - r->len, std::memory_order_relaxed);
  if (c.flags & slotf::kHuge) s.stats_.huge_pages.fetch_sub(members, std::memory_order_relaxed);
  if (done) {
    done->pages += members;
    done->bytes += c.size() - r->len;
  }
}

}  // namespace

Result<void> recompress_unit(StoreImpl& s, std::uint64_t index, const RecompCommand& cmd,
                             UnitScratch& sc, std::uint64_t* budget, PpDone* done,
                             std::string* msg) noexcept {
  const unsigned n = s.unit_blocks_;
  Slot& u = s.slots_[index];
  u.lock();
  const std::uint32_t f = u.get() & ~slotf::kLock;
  // Accessed or freed since the scan, already small enough, or more than the budget left.
  if (!(f & slotf::kPpSlot) || !(f & slotf::kUnit) || (f & slotf::kSizeMask) < cmd.threshold * n ||
      (cmd.max_pages && *budget < n)) {
    if (f & slotf::kPpSlot) u.set(f & ~slotf::kPpSlot);
    u.unlock();
    return {};
  }
  UnitCopy c;
  unit_copy_out_locked(s, u, sc, &c);
  u.unlock();  // PP_SLOT stays: any access from now on clears it

  const auto give_back = [&s, &u] {  // the pass stops: the unit stays as it is
    s.init_lock_.assert_held_shared();
    u.lock();
    if (u.get() & slotf::kPpSlot) u.set(u.get() & ~slotf::kPpSlot);
    u.unlock();
  };
  if (auto r = unit_decode(s, c, sc); !r) {
    give_back();
    return fail(msg, r.error(),
                "recompress: cannot decompress the unit at block " + std::to_string(index));
  }
  if (cmd.max_pages) *budget -= n;
  NewObject out;
  auto accepted = try_unit_priorities(s, index, cmd, c, sc, &out, msg);
  if (!accepted) {
    give_back();
    return accepted.error();
  }
  publish_unit(s, index, c, *accepted ? &out : nullptr, !*accepted && cmd.tries_highest, done);
  return {};
}

}  // namespace uzram

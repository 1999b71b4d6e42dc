// store/wb_compact.cc - the `writeback_compact` command (uzram, beyond the kernel): space
// reclamation for packed compressed writeback. Guide:
// docs/store-postprocessing.md#space-and-reclamation.
//
// Packed objects share backing blocks, so freeing one (overwrite, discard, free
// notification) leaves its block partly live; the block comes back only when its last
// object goes. writeback_compact finds the written-back compressed objects that lie in a
// SPARSE block (live bytes below threshold percent of the block, default 50), reads them
// back from the tier and writes them again, packed, through the same batches as writeback
// (WbRun); when a batch is durable each moved slot points to its new place and the old
// block loses the object's bytes, so the sparse blocks empty out and are freed (trimmed on
// a remote). It is a copying cleaner: it needs free blocks to write into (it stops with
// "full" otherwise), moves objects in the order they lie on the tier, and holds no slot
// lock while reading or writing (a slot changed meanwhile is dropped at publication, as in
// writeback). One post-processing pass at a time (PpPass); writeback_limit does not apply
// (nothing leaves RAM).
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "store/attr_table.h"
#include "store/backing.h"
#include "store/fail.h"
#include "store/kv.h"
#include "store/pp_pass.h"
#include "store/store_impl.h"
#include "store/wb_run.h"

namespace uzram {
namespace {

constexpr bool packed_wb(std::uint32_t f) noexcept {
  return (f & slotf::kWb) && (f & slotf::kWbCompressed);
}

class CompactRun final : public WbRun {
 public:
  CompactRun(StoreImpl& s, PpPass& pass,
             std::vector<std::pair<std::uint64_t, std::uint64_t>>& c) noexcept
      : WbRun(s, "writeback_compact", false), pass_(pass), cands_(c) {}
  ~CompactRun() override {
    for (; next_ < cands_.size(); next_++) pass_.release(cands_[next_].second);
  }

 private:
  bool next(std::uint64_t* index) noexcept override {
    if (next_ == cands_.size()) return false;
    *index = cands_[next_++].second;
    return true;
  }
  void release(std::uint64_t index) noexcept override { pass_.release(index); }
  Place place(WbBatch* b, std::uint64_t index) noexcept override;
  void publish(const WbObj& o, bool ok) noexcept override;
  bool source(const WbAddr& a, unsigned char* dst) noexcept;

  PpPass& pass_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>>& cands_;  // (byte offset, slot), sorted
  std::size_t next_ = 0;
  // The blocks read last: objects in one block come one after another.
  alignas(4096) unsigned char cache_[2 * kBlockSize];
  std::uint64_t cache_first_ = 0, cache_end_ = 0;  // byte range of the tier in cache_
};

// The object's bytes: from the cached blocks, else its block(s) read whole.
bool CompactRun::source(const WbAddr& a, unsigned char* dst) noexcept {
  const std::uint64_t off = a.byte_offset();
  if (off < cache_first_ || off + a.len > cache_end_) {
    cache_first_ = cache_end_ = 0;
    std::uint64_t gen;
    if (!b_.alloc.readable(a, &gen)) return false;  // lost with the remote: stays as it is
    const std::uint64_t first = a.block * kBlockSize;
    const std::uint64_t len = std::uint64_t{a.nblocks()} * kBlockSize;
    s_.stats_.bd_reads.fetch_add(1, std::memory_order_relaxed);
    if (const int e = b_.tier->read(cache_, len, first, gen); e != 0) {
      note_error(make_error_code(Errc::io_error));
      return false;
    }
    cache_first_ = first;
    cache_end_ = first + len;
  }
  std::memcpy(dst, cache_ + (off - cache_first_), a.len);
  return true;
}

WbRun::Place CompactRun::place(WbBatch* b, std::uint64_t index) noexcept {
  s_.init_lock_.assert_held_shared();
  Slot& s = s_.slots_[index];
  Slot& u = s_.unit_lock(index);
  const std::uint32_t peek = s.flags.load(std::memory_order_relaxed);
  const std::uint64_t h0 = s.handle.load(std::memory_order_relaxed);
  if (!(peek & slotf::kPpSlot) || !packed_wb(peek)) return Place::skipped;
  const WbAddr old = wb_decode(h0);
  std::uint64_t off;
  WbAddr a;
  if (const Place p = reserve(b, old.len, false, &off, &a); p != Place::placed) return p;
  // PP_SLOT still set under the lock: the slot is as the scan found it, h0 included.
  u.lock();
  s.held_by(u);
  const std::uint32_t f = s.get();
  const bool same =
      (f & slotf::kPpSlot) && packed_wb(f) && s.handle.load(std::memory_order_relaxed) == h0;
  if (!same && (f & slotf::kPpSlot)) s.set(f & ~(slotf::kPpSlot | slotf::kLock));
  u.unlock();
  if (!same) return Place::skipped;
  if (!source(old, b->pages + off)) {  // no lock held: checked again at publication
    pass_.release(index);
    return Place::skipped;
  }
  WbObj o;
  o.index = index;
  o.handle = h0;
  o.flags = f & (slotf::kWb | slotf::kWbCompressed | slotf::kPrioMask);
  o.wb_handle = wb_encode(a);
  o.wb_flags = o.flags;
  commit(b, off, old.len, o);
  return Place::placed;
}

void CompactRun::publish(const WbObj& o, bool ok) noexcept {
  s_.init_lock_.assert_held_shared();
  Slot& s = s_.slots_[o.index];
  Slot& u = s_.unit_lock(o.index);
  u.lock();
  s.held_by(u);
  const std::uint32_t f = s.get();
  const bool unchanged =
      (f & slotf::kPpSlot) && packed_wb(f) && s.handle.load(std::memory_order_relaxed) == o.handle;
  if (ok && unchanged) {
    b_.alloc.add_live(wb_decode(o.wb_handle));
    b_.alloc.sub_live(wb_decode(o.handle));  // the old block may empty out: freed
    s.handle.store(o.wb_handle, std::memory_order_relaxed);
    s_.stats_.bd_compacted.fetch_add(1, std::memory_order_relaxed);
  }
  if (f & slotf::kPpSlot) s.set(f & ~(slotf::kPpSlot | slotf::kLock));
  u.unlock();
}

}  // namespace

// writeback_compact: "1" (or empty) for the default threshold, or threshold=PERCENT.
Result<void> attr::parse_writeback_compact(const StoreImpl& s, std::string_view text, AttrArg* out,
                                           std::string* msg) noexcept {
  s.init_lock_.assert_held_shared();
  if (!s.backing_) {
    return fail(msg, Errc::not_supported,
                "writeback_compact: no backing device (write backing_dev before disksize)");
  }
  out->number = 50;
  if (text == "1") return {};
  const auto kvs = split_kv(text);
  std::uint64_t pct = 0;
  if (kvs.size() != 1 || kvs[0].key != "threshold" || !parse_u64(kvs[0].value, &pct) || pct < 1 ||
      pct > 100) {
    return fail(msg, Errc::invalid_argument,
                "writeback_compact: expects 1 or threshold=PERCENT (1..100: blocks less live "
                "than that are compacted)");
  }
  out->number = pct;
  return {};
}

// Protocol: docs/store-postprocessing.md#space-and-reclamation. Caller holds init_lock_
// shared.
Result<void> attr::write_writeback_compact(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  s.init_lock_.assert_held_shared();
  const auto pct = static_cast<unsigned>(arg.number);
  PpPass pass(s, "writeback_compact");
  if (auto r = pass.begin(msg); !r) return r;
  BackingAlloc& al = s.backing_->alloc;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> cands;
  bool oom = false;
  s.for_each_stored_slot(0, s.nslots_, [&](std::uint64_t i, Slot& slot) {
    s.init_lock_.assert_held_shared();  // the analysis does not see into the lambda
    Slot& u = s.unit_lock(i);
    u.lock();
    slot.held_by(u);
    const std::uint32_t f = slot.get();
    bool take = false;
    WbAddr a;
    if (packed_wb(f) && !(f & slotf::kPpSlot)) {
      a = wb_decode(slot.handle.load(std::memory_order_relaxed));
      take = al.sparse(a.block, pct) || (a.nblocks() == 2 && al.sparse(a.block + 1, pct));
      if (take) slot.set((f | slotf::kPpSlot) & ~slotf::kLock);
    }
    u.unlock();
    if (!take) return true;
    try {
      cands.emplace_back(a.byte_offset(), i);
    } catch (...) {
      pass.release(i);
      oom = true;
    }
    return !oom;
  });
  if (oom) {
    for (const auto& c : cands) pass.release(c.second);
    return fail(msg, Errc::no_memory, "writeback_compact: out of memory");
  }
  if (cands.empty()) return {};
  std::sort(cands.begin(), cands.end());
  CompactRun run(s, pass, cands);
  if (auto r = run.init(msg); !r) return r;
  return run.run(msg);
}

}  // namespace uzram

// pool/validate.cc - check_invariants(): walks every class and zspage. Invariant numbers
// refer to pool/zspage.h (Z), pool/size_class.h (C) and pool/handle_table.h (H).
#include <algorithm>
#include <vector>

#include "pool/pool_impl.h"
#include "util/check.h"

namespace uzram {

// Walks z's parked chain: each entry must be parked (not allocated), in z's class's
// handle group, on a distinct slot below fresh; marks the slots in *taken if given.
// Returns the chain's length. Caller holds c.lock.
unsigned PoolImpl::parked_chain(const SizeClass& c, ZsPageId id, const ZsPage* z,
                                std::vector<bool>* taken) const noexcept {
  std::vector<bool> seen(z->fresh, false);
  unsigned n = 0;
  for (std::uint32_t index = z->free_head; index != 0; n++) {
    const std::atomic<std::uint64_t>* e = handles_.entry(index);
    ZS_CHECK(e != nullptr && n < z->fresh, "zspage %u: parked chain too long or bad index %u (Z1)",
             id, index);
    const std::uint64_t v = e->load(std::memory_order_relaxed);
    const unsigned obj = HandleTable::parked_obj(v);
    ZS_CHECK(!HandleTable::is_allocated(v) && obj < z->fresh && !seen[obj] &&
                 handles_.group_of(index) == c.index,
             "zspage %u: parked index %u (entry %#llx) is not a free slot of it (Z1)", id, index,
             static_cast<unsigned long long>(v));
    seen[obj] = true;
    if (taken) (*taken)[obj] = true;
    index = HandleTable::parked_next(v);
  }
  return n;
}

void PoolImpl::check_invariants_impl() const noexcept {
  std::uint64_t frames = 0;
  for (unsigned i = 0; i < kMaxClasses; i++) {
    if (!is_class(i)) continue;
    auto& c = const_cast<SizeClass&>(classes_[i]);
    SpinGuard guard(c.lock);
    std::uint64_t objs = 0, used = 0;
    for (unsigned g = 0; g < kNumFullnessGroups; g++) {
      ZS_CHECK(((c.nonempty >> g) & 1) == (c.heads[g] != 0), "class %u: nonempty bit %u wrong (C1)",
               i, g);
      std::uint64_t n = 0;
      ZsPageId prev = 0;
      for (ZsPageId id = c.heads[g]; id; id = zspages_.get(id)->next) {
        const ZsPage* z = zspages_.get(id);
        ZS_CHECK(++n <= zspages_.limit(), "class %u list %u: cycle", i, g);
        ZS_CHECK(z->prev == prev, "class %u: zspage %u back link %u != %u", i, id, z->prev, prev);
        prev = id;
        ZS_CHECK(z->state == ZsState::listed, "class %u: listed zspage %u in state %d", i, id,
                 static_cast<int>(z->state));
        ZS_CHECK(z->class_index.load(std::memory_order_relaxed) == i, "zspage %u: class %u != %u",
                 id, z->class_index.load(std::memory_order_relaxed), i);
        ZS_CHECK(z->fullness == g && fullness_group(z->inuse, c.objs_per_zspage) == g,
                 "zspage %u: inuse %u of %u is not fullness group %u (Z2)", id, z->inuse,
                 c.objs_per_zspage, g);
        for (unsigned k = 0; k < nframes_of(z); k++) {
          const std::uint32_t fi = arena_.info(z->frames[k]).word().load(std::memory_order_relaxed);
          ZS_CHECK((fi & kFrameOwnerMask) == id && (fi & kFrameAllocated),
                   "zspage %u frame %u: info %#x (Z3)", id, z->frames[k], fi);
        }
        // Z1: the parked chain agrees with inuse and fresh.
        const unsigned free_n = parked_chain(c, id, z, nullptr);
        ZS_CHECK(free_n + z->inuse == z->fresh && z->fresh <= c.objs_per_zspage,
                 "zspage %u: %u parked + %u used != fresh %u (of %u) (Z1)", id, free_n, z->inuse,
                 z->fresh, c.objs_per_zspage);
        objs += c.objs_per_zspage;
        used += z->inuse;
        frames += nframes_of(z);
      }
      ZS_CHECK(n == c.zspages_in[g], "class %u group %u: %llu listed, stat %llu (C2)", i, g,
               static_cast<unsigned long long>(n),
               static_cast<unsigned long long>(c.zspages_in[g]));
    }
    // relaxed: under c.lock, which orders its writers (pool.cc list_insert/remove_locked).
    ZS_CHECK(c.room_hint.load(std::memory_order_relaxed) == ((c.nonempty & kRoomMask) != 0),
             "class %u: room hint %d, nonempty %#x (C5)", i,
             static_cast<int>(c.room_hint.load(std::memory_order_relaxed)), c.nonempty);
    ZS_CHECK(objs == c.obj_allocated && used == c.obj_used,
             "class %u: objs %llu/%llu used %llu/%llu (C3)", i,
             static_cast<unsigned long long>(objs),
             static_cast<unsigned long long>(c.obj_allocated),
             static_cast<unsigned long long>(used), static_cast<unsigned long long>(c.obj_used));
    std::uint64_t spares = 0;  // C4: spares keep a whole parked chain
    for (ZsPageId id = c.spare; id; id = zspages_.get(id)->next) {
      const ZsPage* z = zspages_.get(id);
      ZS_CHECK(++spares <= zspages_.limit(), "class %u spare list: cycle", i);
      ZS_CHECK(z->state == ZsState::free && z->inuse == 0 &&
                   z->class_index.load(std::memory_order_relaxed) == i,
               "class %u: spare zspage %u in state %d, inuse %u (C4)", i, id,
               static_cast<int>(z->state), z->inuse);
      ZS_CHECK(parked_chain(c, id, z, nullptr) == z->fresh,
               "class %u: spare %u chain != fresh %u (C4)", i, id, z->fresh);
    }
    ZS_CHECK(spares == c.spares, "class %u: %llu spares listed, count %llu (C4)", i,
             static_cast<unsigned long long>(spares), static_cast<unsigned long long>(c.spares));
  }
  ZS_CHECK(frames == pages_allocated_.load(std::memory_order_relaxed),
           "pool: %llu frames in zspages, total pages %llu",
           static_cast<unsigned long long>(frames),
           static_cast<unsigned long long>(pages_allocated_.load(std::memory_order_relaxed)));
  check_handles();
}

// L1-L4 (docs/units.md): a live large object of `size` bytes in run class c (index
// `index`) has the run split_large gives it, and its tail handle (when it has one) is an
// allocated object of a small class of at most max_tail() bytes and the size the split
// says; its index is added to *tails (L2: named by one run); its class is its own or a
// larger one within tail_spill_limit (L4), counted in (*out)[own] when larger (L5). A run
// class's zspage holds at most one object (objs_per_zspage 1: Z1 above). Caller holds
// c.lock.
void PoolImpl::check_large(const SizeClass& c, std::uint32_t index, std::uint32_t size,
                           std::vector<std::uint32_t>* tails,
                           std::vector<std::uint32_t>* out) const noexcept {
  const LargeSplit s = split_large(size, geo_.max_tail());
  ZS_CHECK(size > kFrameSize && size <= options_.max_object_size && s.frames == c.pages_per_zspage,
           "large object %u: %u bytes in a run of %u frames (L1)", index, size,
           static_cast<unsigned>(c.pages_per_zspage));
  const auto tail = static_cast<std::uint64_t>(tail_of(index));
  ZS_CHECK((tail != 0) == (s.tail != 0), "large object %u: tail handle %#llx, tail %u bytes (L1)",
           index, static_cast<unsigned long long>(tail), s.tail);
  if (!tail) return;
  const std::uint32_t ti = HandleTable::index_of(tail);
  const std::atomic<std::uint64_t>* e = handles_.entry(ti);
  ZS_CHECK(e != nullptr, "large object %u: tail handle %#llx out of range (L1)", index,
           static_cast<unsigned long long>(tail));
  const std::uint64_t v = e->load(std::memory_order_relaxed);
  ZS_CHECK(
      HandleTable::is_allocated(v) && HandleTable::gen_of(v) == HandleTable::gen_of_handle(tail) &&
          !is_run_class(handles_.group_of(ti)) && HandleTable::decode(v).size == s.tail &&
          s.tail <= geo_.max_tail(),
      "large object %u: tail %#llx (entry %#llx) is not a live small object of %u bytes (L1)",
      index, static_cast<unsigned long long>(tail), static_cast<unsigned long long>(v), s.tail);
  // L4: the tail is in its own class, or spilled into a larger normal class within
  // tail_spill_limit (docs/units.md#tails-in-a-larger-class).
  const unsigned own = tail_home(s.tail);
  const unsigned in = handles_.group_of(ti);
  ZS_CHECK(in == own || (in > own && geo_.is_real(in) && !geo_.info(in).huge &&
                         geo_.info(in).size <= tail_spill_limit(s.tail, geo_.max_tail())),
           "large object %u: tail of %u bytes in class %u (own %u, limit %zu) (L4)", index, s.tail,
           in, own, tail_spill_limit(s.tail, geo_.max_tail()));
  tails->push_back(ti);
  if (in != own) (*out)[own]++;
}

// H2, Z1: every allocated handle entry names a live zspage of a class its size fits, a
// slot that is not on the free list and that no other handle names, and every zspage
// holds exactly inuse such slots. Uses the reverse index (one scan, grouped by zspage).
void PoolImpl::check_handles() const noexcept {
  ReverseIndex rix;
  ZS_CHECK(static_cast<bool>(rix.build(handles_, HandleTable::kGroups)),
           "check_invariants: no memory");
  std::uint64_t named = 0, used = 0;
  std::vector<bool> taken;
  std::vector<std::uint32_t> tails;                // tail handle indexes named by live runs
  std::vector<std::uint32_t> out(kMaxClasses, 0);  // live tails in a larger class, by own
  for (unsigned i = 0; i < kMaxClasses; i++) {
    if (!is_class(i)) continue;
    auto& c = const_cast<SizeClass&>(classes_[i]);
    SpinGuard guard(c.lock);
    used += c.obj_used;
    for (unsigned g = 0; g < kNumFullnessGroups; g++) {
      for (ZsPageId id = c.heads[g]; id; id = zspages_.get(id)->next) {
        const ZsPage* z = zspages_.get(id);
        taken.assign(c.objs_per_zspage, false);
        parked_chain(c, id, z, &taken);
        unsigned live = 0;
        for (const ReverseIndex::Entry& r : rix.of(id)) {
          const std::uint64_t v = handles_.entry(r.index)->load(std::memory_order_relaxed);
          const Location loc =
              is_run_class(i) ? HandleTable::decode_large(v) : HandleTable::decode(v);
          if (is_run_class(i)) check_large(c, r.index, loc.size, &tails, &out);
          ZS_CHECK(HandleTable::is_allocated(v) && loc.zspage == id,
                   "handle index %u changed during check_invariants", r.index);
          ZS_CHECK(handles_.group_of(r.index) == i,
                   "handle index %u of class %u is in group %u (H3)", r.index, i,
                   handles_.group_of(r.index));
          ZS_CHECK(loc.obj < c.objs_per_zspage && !taken[loc.obj],
                   "zspage %u slot %u: free, or named by two handles (H2)", id, loc.obj);
          taken[loc.obj] = true;
          ZS_CHECK(loc.size <= c.size || is_run_class(i),  // a run: check_large
                   "zspage %u slot %u: size %u > class %u", id, loc.obj, loc.size, c.size);
          live++;
        }
        ZS_CHECK(live == z->inuse, "zspage %u: %u handles name it, inuse %u (Z1)", id, live,
                 z->inuse);
        for (unsigned o = 0; o < z->fresh; o++) {
          ZS_CHECK(taken[o], "zspage %u slot %u: neither parked nor named by a handle (Z1)", id, o);
        }
        named += live;
      }
    }
  }
  std::sort(tails.begin(), tails.end());
  ZS_CHECK(std::adjacent_find(tails.begin(), tails.end()) == tails.end(),
           "large objects: two runs name the same tail handle (L2)");
  // L5: each class's count of tails out is the number of its live tails in larger classes.
  for (unsigned i = 0; i < kMaxClasses; i++) {
    if (!is_class(i)) continue;
    // relaxed: no other thread uses the pool (check_invariants' contract).
    const std::uint32_t counted = classes_[i].tails_out.load(std::memory_order_relaxed);
    ZS_CHECK(counted == out[i], "class %u: %u tails counted out, %u live in larger classes (L5)", i,
             counted, out[i]);
  }
  const std::uint64_t allocated = rix.size();
  ZS_CHECK(named == used && allocated == used,
           "pool: %llu handles allocated, %llu name listed zspages, %llu objects in use (H2)",
           static_cast<unsigned long long>(allocated), static_cast<unsigned long long>(named),
           static_cast<unsigned long long>(used));
}

}  // namespace uzram

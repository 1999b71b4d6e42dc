// pool/validate.cc - check_invariants(): walks every class and zspage. Invariant numbers
// refer to pool/zspage.h (Z), pool/size_class.h (C) and pool/handle_table.h (H).
#include "pool/pool_impl.h"
#include "util/check.h"

namespace uzram {

void PoolImpl::check_invariants_impl() const noexcept {
  std::uint64_t frames = 0;
  for (unsigned i = 0; i < kSlots; i++) {
    if (!geo_.is_real(i)) continue;
    auto& c = const_cast<SizeClass&>(classes_[i]);
    SpinGuard guard(c.lock);
    std::uint64_t objs = 0, used = 0;
    for (unsigned g = 0; g < kNumFullnessGroups; g++) {
      ZS_CHECK(((c.nonempty >> g) & 1) == (c.heads[g] != 0), "class %u: nonempty bit %u wrong (C1)", i, g);
      std::uint64_t n = 0;
      ZsPageId prev = 0;
      for (ZsPageId id = c.heads[g]; id; id = zspages_.get(id)->next) {
        const ZsPage* z = zspages_.get(id);
        ZS_CHECK(++n <= zspages_.limit(), "class %u list %u: cycle", i, g);
        ZS_CHECK(z->prev == prev, "class %u: zspage %u back link %u != %u", i, id, z->prev, prev);
        prev = id;
        ZS_CHECK(z->state == ZsState::listed, "class %u: listed zspage %u in state %d", i, id,
                 static_cast<int>(z->state));
        ZS_CHECK(z->class_index.load(std::memory_order_relaxed) == i, "zspage %u: class %u != %u", id,
                 z->class_index.load(std::memory_order_relaxed), i);
        ZS_CHECK(z->fullness == g && fullness_group(z->inuse, c.objs_per_zspage) == g,
                 "zspage %u: inuse %u of %u is not fullness group %u (Z2)", id, z->inuse,
                 c.objs_per_zspage, g);
        ZS_CHECK(z->nframes == c.pages_per_zspage, "zspage %u: %u frames", id, z->nframes);
        for (unsigned k = 0; k < z->nframes; k++) {
          const std::uint32_t fi = arena_.info(z->frames[k]).load(std::memory_order_relaxed);
          ZS_CHECK((fi & kFrameOwnerMask) == id && (fi & kFrameAllocated),
                   "zspage %u frame %u: info %#x (Z3)", id, z->frames[k], fi);
        }
        // Z1: the free list and the headers agree with inuse.
        unsigned free_n = 0;
        for (unsigned o = z->freeobj; o != kNoObj; free_n++) {
          ZS_CHECK(free_n < c.objs_per_zspage && o < c.objs_per_zspage,
                   "zspage %u: free list too long or bad index %u (Z1)", id, o);
          o = c.huge ? kNoObj : static_cast<unsigned>(*header(z, c, o) >> 1);
        }
        ZS_CHECK(free_n + z->inuse == c.objs_per_zspage, "zspage %u: %u free + %u used != %u (Z1)",
                 id, free_n, z->inuse, c.objs_per_zspage);
        if (!c.huge) {
          unsigned live = 0;
          for (unsigned o = 0; o < c.objs_per_zspage; o++) {
            const std::uint64_t h = *header(z, c, o);
            if (!(h & 1)) continue;
            live++;
            const std::uint64_t v = handles_.entry(static_cast<std::uint32_t>(h >> 1))->load(std::memory_order_relaxed);
            const Location loc = HandleTable::decode(v);
            ZS_CHECK(HandleTable::is_allocated(v) && loc.zspage == id && loc.obj == o,
                     "zspage %u slot %u: handle entry does not point back (H2)", id, o);
            ZS_CHECK(loc.size + kHeaderSize <= c.size, "zspage %u slot %u: size %u > class %u", id, o,
                     loc.size, c.size);
          }
          ZS_CHECK(live == z->inuse, "zspage %u: %u tagged headers, inuse %u (Z1)", id, live, z->inuse);
        }
        objs += c.objs_per_zspage;
        used += z->inuse;
        frames += z->nframes;
      }
      ZS_CHECK(n == c.zspages_in[g], "class %u group %u: %llu listed, stat %llu (C2)", i, g,
               static_cast<unsigned long long>(n), static_cast<unsigned long long>(c.zspages_in[g]));
    }
    ZS_CHECK(objs == c.obj_allocated && used == c.obj_used,
             "class %u: objs %llu/%llu used %llu/%llu (C3)", i, static_cast<unsigned long long>(objs),
             static_cast<unsigned long long>(c.obj_allocated), static_cast<unsigned long long>(used),
             static_cast<unsigned long long>(c.obj_used));
  }
  ZS_CHECK(frames == pages_allocated_.load(std::memory_order_relaxed),
           "pool: %llu frames in zspages, total pages %llu", static_cast<unsigned long long>(frames),
           static_cast<unsigned long long>(pages_allocated_.load(std::memory_order_relaxed)));
}

}  // namespace uzram

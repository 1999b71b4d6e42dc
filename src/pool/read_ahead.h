// pool/read_ahead.h - software read-ahead for reads that walk a size class's slots in
// order (layer 2; docs/benchmarks.md#read-ahead-per-class-streams).
//
// Objects written one after another lie in one stream per size class: object k of a
// class sits right after object k - 1 in the same zspage. A reader that reads them back
// in that order (the fill-read cycle, a sequential scan of a store) walks ~100 such
// streams at once, more than the hardware prefetcher tracks, so without help every object
// is a cache miss. ReadStreams notices, per thread and per class, that a read is of the
// slot right after the previous read of that class in the same zspage; read_begin then
// prefetches the next slot into L2 - the object this reader will ask for next in this
// class, ~100 reads later - and the next line of the class's handle entries, and at a
// zspage's last two slots the class's next zspage (PoolImpl::next_zspage_hint). A reader
// in any other order never matches, so it pays one thread-local load and store per read
// and no memory traffic.
//
// Thread safety: the state is thread_local; nothing is shared. A false match (two pools
// read by one thread, or a 32-bit key collision) only costs a useless prefetch.
#ifndef UZRAM_POOL_READ_AHEAD_H_
#define UZRAM_POOL_READ_AHEAD_H_

#include <cstddef>
#include <cstdint>

#include "pool/geometry.h"

namespace uzram {

class ReadStreams {
 public:
  // Records a read of slot `obj` of zspage `zspage` in small class `cls` (< kSlots) and
  // returns whether this thread's previous read of that class was slot obj - 1 of the
  // same zspage.
  static bool follows(unsigned cls, std::uint32_t zspage, std::uint32_t obj) noexcept {
    const std::uint32_t key = (zspage << kObjBits) | obj;  // obj < 2048 (handle_table.h)
    const std::uint32_t prev = last_[cls];
    last_[cls] = key;
    return obj != 0 && prev + 1 == key;
  }
  // Forgets this thread's history (tests).
  static void reset() noexcept {
    for (std::uint32_t& k : last_) k = 0;
  }

 private:
  static constexpr unsigned kObjBits = 11;
  // Zero-initialised per thread (no constructor, no TLS init call): 1 KiB per thread.
  static thread_local std::uint32_t last_[kSlots];
};

// Prefetches the cache lines of [p, p + n) with the given locality (0: non-temporal,
// into L1 only; 2: into L2, prefetcht1).
template <int kLocality>
inline void prefetch_lines(const std::byte* p, std::size_t n) noexcept {
  const auto first = reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{63};
  const auto end = reinterpret_cast<std::uintptr_t>(p) + n;
  for (std::uintptr_t a = first; a < end; a += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(a), 0, kLocality);
  }
}

}  // namespace uzram

#endif  // UZRAM_POOL_READ_AHEAD_H_

// pool/handle_table.cc - handle index allocation (per group) and the chunked entry table.
#include "pool/handle_table.h"

#include <sys/mman.h>

#include <algorithm>

#include "util/check.h"
#include "util/resident.h"

namespace uzram {

namespace {
constexpr std::size_t kChunkBytes = std::size_t{HandleTable::kChunkEntries} * 8;

void* map_chunks(std::size_t n, int extra_flags) noexcept {
  void* p = mmap(nullptr, n * kChunkBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}
}  // namespace

bool HandleTable::Reserve::holds(const void* p) const noexcept {
  const auto* b = static_cast<const std::byte*>(p);
  return base && b >= base && b < base + chunks * kChunkBytes;
}

// Populated now, so that grow() need not ask the kernel for memory while it serves.
Result<void> HandleTable::Reserve::map(std::size_t n) noexcept {
  if (n == 0) return {};
  void* p = map_chunks(n, MAP_POPULATE);
  if (p == nullptr) return Errc::no_memory;
  base = static_cast<std::byte*>(p);
  chunks = n;
  return {};
}

HandleTable::Taken HandleTable::take_chunk(const Reserve& r) noexcept {
  if (r.used < r.chunks) return {r.base + r.used * kChunkBytes, true};
  return {map_chunks(1, 0), false};
}

void HandleTable::keep_chunk(const Taken& t, Reserve& r) noexcept {
  if (t.reserved) {
    r.used++;
  } else {
    mapped_on_demand_.fetch_add(1, std::memory_order_relaxed);  // statistics
  }
}

HandleTable::~HandleTable() {
  if (!chunks_) return;
  for (std::size_t i = 0; i < max_chunks_; i++) {
    auto* c = reinterpret_cast<std::byte*>(chunks_[i].load(std::memory_order_relaxed));
    if (c && !reserve_.holds(c)) munmap(c, kChunkBytes);
    if (aux_) {
      std::atomic<std::uint64_t>* a = aux_[i].load(std::memory_order_relaxed);
      if (a && !aux_reserve_.holds(a)) munmap(a, kChunkBytes);
    }
  }
  if (reserve_.base) munmap(reserve_.base, reserve_.chunks * kChunkBytes);
  if (aux_reserve_.base) munmap(aux_reserve_.base, aux_reserve_.chunks * kChunkBytes);
  munmap(chunks_, max_chunks_ * sizeof(*chunks_));
  if (aux_) munmap(aux_, max_chunks_ * sizeof(*aux_));
  if (meta_) munmap(meta_, max_chunks_ * sizeof(*meta_));
}

Result<void> HandleTable::init(std::size_t max_handles, unsigned aux_from,
                               std::size_t reserve_chunks,
                               std::size_t aux_reserve_chunks) noexcept {
  // Every group may hold one partly used chunk beyond what max_handles fills; indexes are
  // 32-bit, so at most 2^20 - 1 chunks.
  max_chunks_ = (max_handles + kChunkEntries - 1) / kChunkEntries + kGroups;
  if (max_chunks_ > (std::size_t{1} << (32 - kChunkShift)) - 1)
    max_chunks_ = (std::size_t{1} << (32 - kChunkShift)) - 1;
  void* p = mmap(nullptr, max_chunks_ * sizeof(*chunks_), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Errc::no_memory;
  chunks_ = static_cast<std::atomic<std::atomic<std::uint64_t>*>*>(p);
  // Zero-filled memory is a valid ChunkMeta array (group 0, touched 0).
  p = mmap(nullptr, max_chunks_ * sizeof(*meta_), PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Errc::no_memory;
  meta_ = static_cast<ChunkMeta*>(p);
  aux_from_ = aux_from;
  if (aux_from < kGroups) {
    p = mmap(nullptr, max_chunks_ * sizeof(*aux_), PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return Errc::no_memory;
    aux_ = static_cast<std::atomic<std::atomic<std::uint64_t>*>*>(p);
  }
  if (auto r = reserve_.map(std::min(reserve_chunks, max_chunks_)); !r) return r;
  return aux_reserve_.map(aux_ ? std::min(aux_reserve_chunks, max_chunks_) : 0);
}

bool HandleTable::grow(unsigned group) noexcept {
  MutexLock g(grow_lock_);
  Group& gr = groups_[group];
  // acquire: pairs with the exchange in alloc_locked() (nothing to order; a hint).
  if (gr.spare.load(std::memory_order_acquire) != 0) return true;  // someone else grew it
  const std::uint32_t limit = limit_.load(std::memory_order_relaxed);
  const std::size_t chunk = limit >> kChunkShift;
  if (chunk >= max_chunks_) return false;
  // Entry chunks, and the aux chunks of large objects' groups, come from the reserves
  // first (PoolOptions::reserve_handles); beyond them they are mapped here.
  const Taken entries = take_chunk(reserve_);
  if (entries.p == nullptr) return false;
  if (group >= aux_from_) {
    const Taken aux = take_chunk(aux_reserve_);
    if (aux.p == nullptr) {
      if (!entries.reserved) munmap(entries.p, kChunkBytes);
      return false;
    }
    // relaxed: published by the release store of the entry chunk below.
    aux_[chunk].store(static_cast<std::atomic<std::uint64_t>*>(aux.p), std::memory_order_relaxed);
    keep_chunk(aux, aux_reserve_);
  }
  keep_chunk(entries, reserve_);
  meta_[chunk].group = static_cast<std::uint16_t>(group);
  if (chunk == 0)
    meta_[0].touched.store(1, std::memory_order_relaxed);  // index 0 is never a handle
  // release: pairs with the acquire in entry() and for_each_allocated().
  chunks_[chunk].store(static_cast<std::atomic<std::uint64_t>*>(entries.p),
                       std::memory_order_release);
  limit_.store(static_cast<std::uint32_t>(limit + kChunkEntries), std::memory_order_release);
  // release: pairs with the acquire exchange in alloc_locked().
  gr.spare.store(static_cast<std::uint32_t>(chunk + 1), std::memory_order_release);
  return true;
}

std::uint64_t HandleTable::alloc_locked(unsigned group, const SpinLock&) noexcept {
  ZS_DCHECK(group < kGroups, "handle group %u", group);
  Group& g = groups_[group];
  std::uint32_t used =
      g.chunk ? meta_[g.chunk - 1].touched.load(std::memory_order_relaxed) : kChunkEntries;
  if (used == kChunkEntries) {
    // acquire: pairs with the release store in grow(); the chunk is mapped and published.
    const std::uint32_t spare = g.spare.exchange(0, std::memory_order_acquire);
    if (spare == 0) return 0;
    g.chunk = spare;
    used = meta_[g.chunk - 1].touched.load(std::memory_order_relaxed);
  }
  // relaxed load above: touched is written only under this group's lock.
  const std::uint32_t index = ((g.chunk - 1) << kChunkShift) | used;
  // release: the entry (zero: parked, gen 0) is in place before scanners count it.
  meta_[g.chunk - 1].touched.store(used + 1, std::memory_order_release);
  return index;  // gen 0: a never-used entry is zero
}

bool HandleTable::has_room_locked(unsigned group, std::uint32_t n, const SpinLock&) const noexcept {
  const Group& g = groups_[group];
  const std::uint32_t used =
      g.chunk ? meta_[g.chunk - 1].touched.load(std::memory_order_relaxed) : kChunkEntries;
  // relaxed: a hint; alloc_locked() takes the spare with an acquire exchange.
  const std::uint32_t spare = g.spare.load(std::memory_order_relaxed) ? kChunkEntries : 0;
  return kChunkEntries - used + spare >= n;
}

std::size_t HandleTable::metadata_bytes() const noexcept {
  const std::uint32_t n = limit_.load(std::memory_order_acquire) >> kChunkShift;
  // The reserves: populated at init, used or not.
  std::size_t bytes = (reserve_.chunks + aux_reserve_.chunks) * kChunkBytes;
  for (std::uint32_t k = 0; k < n; k++) {
    // acquire: pairs with the release store in grow() (only the pointer's value is used).
    const auto* c = chunks_[k].load(std::memory_order_acquire);
    // relaxed: statistics.
    const std::size_t used = meta_[k].touched.load(std::memory_order_relaxed);
    const std::size_t pages = (used * 8 + 4095) / 4096 * 4096;
    if (!reserve_.holds(c)) bytes += pages;
    // relaxed: published with the entry chunk (acquire above).
    if (meta_[k].group >= aux_from_ &&
        !aux_reserve_.holds(aux_[k].load(std::memory_order_relaxed))) {
      bytes += pages;
    }
  }
  return bytes;
}

std::size_t HandleTable::resident_bytes() const noexcept {
  if (!chunks_) return 0;
  const std::uint32_t n = limit_.load(std::memory_order_acquire) >> kChunkShift;
  std::size_t bytes = resident_bytes_of(chunks_, n * sizeof(*chunks_)) +
                      resident_bytes_of(meta_, n * sizeof(*meta_));
  for (std::uint32_t k = 0; k < n; k++) {
    // acquire: pairs with the release store in grow() (the chunk is mapped).
    const auto* c = chunks_[k].load(std::memory_order_acquire);
    bytes += resident_bytes_of(c, std::size_t{kChunkEntries} * 8);
    // relaxed: published with the entry chunk (acquire above).
    if (aux_ && aux_[k].load(std::memory_order_relaxed)) {
      bytes += resident_bytes_of(aux_[k].load(std::memory_order_relaxed),
                                 std::size_t{kChunkEntries} * 8);
    }
  }
  return bytes;
}

}  // namespace uzram

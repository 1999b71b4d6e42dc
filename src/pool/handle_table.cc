// pool/handle_table.cc - handle index allocation (per group) and the chunked entry table.
#include "pool/handle_table.h"

#include <sys/mman.h>

#include <algorithm>

#include "util/check.h"
#include "util/resident.h"

namespace uzram {

namespace {
bool within(const void* p, const std::byte* base, std::size_t chunks) noexcept {
  const auto* b = static_cast<const std::byte*>(p);
  return base && b >= base && b < base + chunks * (std::size_t{HandleTable::kChunkEntries} * 8);
}
}  // namespace

HandleTable::~HandleTable() {
  if (!chunks_) return;
  const std::size_t chunk_bytes = std::size_t{kChunkEntries} * 8;
  for (std::size_t i = 0; i < max_chunks_; i++) {
    auto* c = reinterpret_cast<std::byte*>(chunks_[i].load(std::memory_order_relaxed));
    if (c && !within(c, reserve_, reserve_chunks_)) munmap(c, chunk_bytes);
    if (aux_) {
      std::atomic<std::uint64_t>* a = aux_[i].load(std::memory_order_relaxed);
      if (a && !within(a, aux_reserve_, aux_reserve_chunks_)) munmap(a, chunk_bytes);
    }
  }
  if (reserve_) munmap(reserve_, reserve_chunks_ * chunk_bytes);
  if (aux_reserve_) munmap(aux_reserve_, aux_reserve_chunks_ * chunk_bytes);
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
  reserve_chunks = std::min(reserve_chunks, max_chunks_);
  if (reserve_chunks > 0) {
    p = mmap(nullptr, reserve_chunks * kChunkEntries * 8, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return Errc::no_memory;
    reserve_ = static_cast<std::byte*>(p);
    reserve_chunks_ = reserve_chunks;
  }
  aux_reserve_chunks = aux_ ? std::min(aux_reserve_chunks, max_chunks_) : 0;
  if (aux_reserve_chunks > 0) {
    p = mmap(nullptr, aux_reserve_chunks * kChunkEntries * 8, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return Errc::no_memory;
    aux_reserve_ = static_cast<std::byte*>(p);
    aux_reserve_chunks_ = aux_reserve_chunks;
  }
  return {};
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
  const std::size_t chunk_bytes = std::size_t{kChunkEntries} * 8;
  void* p;
  const bool from_reserve = reserve_used_ < reserve_chunks_;
  if (from_reserve) {
    p = reserve_ + reserve_used_ * chunk_bytes;
  } else {
    p = mmap(nullptr, chunk_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
  }
  bool aux_from_reserve = false;
  if (group >= aux_from_) {
    void* a;
    aux_from_reserve = aux_reserve_used_ < aux_reserve_chunks_;
    if (aux_from_reserve) {
      a = aux_reserve_ + aux_reserve_used_ * chunk_bytes;
    } else {
      a = mmap(nullptr, chunk_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (a == MAP_FAILED) {
        if (!from_reserve) munmap(p, chunk_bytes);
        return false;
      }
    }
    // relaxed: published by the release store of the entry chunk below.
    aux_[chunk].store(static_cast<std::atomic<std::uint64_t>*>(a), std::memory_order_relaxed);
    if (aux_from_reserve) {
      aux_reserve_used_++;
    } else {
      mapped_on_demand_.fetch_add(1, std::memory_order_relaxed);  // statistics
    }
  }
  if (from_reserve) {
    reserve_used_++;
  } else {
    mapped_on_demand_.fetch_add(1, std::memory_order_relaxed);  // statistics
  }
  meta_[chunk].group = static_cast<std::uint16_t>(group);
  if (chunk == 0)
    meta_[0].touched.store(1, std::memory_order_relaxed);  // index 0 is never a handle
  // release: pairs with the acquire in entry() and for_each_allocated().
  chunks_[chunk].store(static_cast<std::atomic<std::uint64_t>*>(p), std::memory_order_release);
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
  const std::size_t chunk_bytes = std::size_t{kChunkEntries} * 8;
  // The reserves: populated at init, used or not.
  std::size_t bytes = (reserve_chunks_ + aux_reserve_chunks_) * chunk_bytes;
  for (std::uint32_t k = 0; k < n; k++) {
    // acquire: pairs with the release store in grow() (only the pointer's value is used).
    const auto* c = chunks_[k].load(std::memory_order_acquire);
    // relaxed: statistics.
    const std::size_t used = meta_[k].touched.load(std::memory_order_relaxed);
    const std::size_t pages = (used * 8 + 4095) / 4096 * 4096;
    if (!within(c, reserve_, reserve_chunks_)) bytes += pages;
    // relaxed: published with the entry chunk (acquire above).
    if (meta_[k].group >= aux_from_ &&
        !within(aux_[k].load(std::memory_order_relaxed), aux_reserve_, aux_reserve_chunks_)) {
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

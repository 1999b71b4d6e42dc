// pool/zspage.cc - ZsPageTable: descriptor ids and storage, one table per chain length.
#include "pool/zspage.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>

#include "util/check.h"
#include "util/resident.h"

namespace uzram {

ZsPageTable::~ZsPageTable() {
  for (unsigned n = 0; n < kMaxChain; n++) {
    if (layout_[n].base) munmap(layout_[n].base, (tables_[n].max + 1) * layout_[n].stride);
  }
}

Result<void> ZsPageTable::init(std::size_t max_frames, unsigned chain) noexcept {
  // `chain` here is the longest zspage: the pool passes max(chain size, longest run).
  if (chain == 0 || chain > kMaxChain) return Errc::invalid_argument;
  chain_ = chain;
  index_bits_ = 28 - static_cast<unsigned>(std::bit_width(chain - 1));
  index_mask_ = (std::uint32_t{1} << index_bits_) - 1;
  for (unsigned n = 1; n <= chain; n++) {
    Table& t = tables_[n - 1];
    Layout& l = layout_[n - 1];
    l.stride =
        (kZsPageHeaderBytes + 4 * n + alignof(ZsPage) - 1) / alignof(ZsPage) * alignof(ZsPage);
    t.max = std::min<std::size_t>(max_frames / n, index_mask_);
    void* p = mmap(nullptr, (t.max + 1) * l.stride, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return Errc::no_memory;
    l.base = static_cast<std::byte*>(p);
  }
  return {};
}

Result<ZsPageId> ZsPageTable::alloc(unsigned nframes) noexcept {
  ZS_DCHECK(nframes >= 1 && nframes <= chain_, "zspage of %u frames at chain %u", nframes, chain_);
  Table& t = tables_[nframes - 1];
  // relaxed: ids are handed out once; the descriptor is published through the class lock.
  const std::uint32_t index = t.next.fetch_add(1, std::memory_order_relaxed);
  if (index > t.max) {
    t.next.fetch_sub(1, std::memory_order_relaxed);
    return Errc::no_memory;
  }
  return ((nframes - 1) << index_bits_) | index;
}

std::size_t ZsPageTable::metadata_bytes() const noexcept {
  std::size_t bytes = 0;
  for (unsigned n = 1; n <= chain_; n++) {
    bytes += tables_[n - 1].next.load(std::memory_order_relaxed) *
             layout_[n - 1].stride;  // relaxed: statistics
  }
  return bytes;
}

std::size_t ZsPageTable::resident_bytes() const noexcept {
  std::size_t bytes = 0;
  for (unsigned n = 1; n <= chain_; n++) {
    // relaxed: statistics; ids below `next` were handed out (their pages may be touched).
    const std::size_t used = tables_[n - 1].next.load(std::memory_order_relaxed);
    if (used) bytes += resident_bytes_of(layout_[n - 1].base, (used + 1) * layout_[n - 1].stride);
  }
  return bytes;
}

std::size_t ZsPageTable::limit() const noexcept {
  std::size_t ids = 0;
  for (unsigned n = 1; n <= chain_; n++) ids += tables_[n - 1].next.load(std::memory_order_relaxed);
  return ids;
}

}  // namespace uzram

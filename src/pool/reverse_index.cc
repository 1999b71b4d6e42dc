// pool/reverse_index.cc - ReverseIndex::build: count, collect, sort.
#include "pool/reverse_index.h"

#include <algorithm>
#include <new>

namespace uzram {

Result<void> ReverseIndex::build(const HandleTable& handles, unsigned group) noexcept {
  entries_.reset();
  n_ = 0;
  std::size_t count = 0;
  handles.for_each_allocated(group, [&](std::uint32_t, std::uint64_t) { count++; });
  // Entries allocated between the two scans are left out; that is allowed (see above).
  entries_.reset(new (std::nothrow) Entry[count + 1]);
  if (!entries_) return Errc::no_memory;
  handles.for_each_allocated(group, [&](std::uint32_t index, std::uint64_t v) {
    if (n_ < count) entries_[n_++] = {HandleTable::decode(v).zspage, index};
  });
  std::sort(entries_.get(), entries_.get() + n_, [](const Entry& a, const Entry& b) {
    return a.zspage != b.zspage ? a.zspage < b.zspage : a.index < b.index;
  });
  return {};
}

std::span<const ReverseIndex::Entry> ReverseIndex::of(ZsPageId id) const noexcept {
  const Entry* first = entries_.get();
  const Entry* last = first + n_;
  const Entry* lo =
      std::lower_bound(first, last, id, [](const Entry& e, ZsPageId z) { return e.zspage < z; });
  const Entry* hi =
      std::upper_bound(lo, last, id, [](ZsPageId z, const Entry& e) { return z < e.zspage; });
  return {lo, hi};
}

}  // namespace uzram

// pool/reverse_index.h - ReverseIndex: which handles live in which zspage of one size
// class, built by a scan of that class's handle-table chunks (layer 2).
//
// Objects carry no in-object header (docs/design.md#memory), so nothing in a zspage says
// which handle owns a slot. Compaction, the one operation that needs to know (it moves a
// source zspage's objects and re-points their handles), builds this index for a class
// before compacting it: one scan of the class's chunks (HandleTable groups handles by
// class) and a sort by zspage, O(n log n) for the class's n live objects and 8 bytes per
// object of memory, freed when the class is done.
//
// It is a snapshot taken without locks: by the time it is used an entry may have been
// freed, reallocated, or moved, and objects allocated after the scan are not in it. Users
// treat it as a list of candidates and re-check each entry under the class lock
// (compaction.cc); a zspage whose objects are not all listed is simply not emptied.
#ifndef UZRAM_POOL_REVERSE_INDEX_H_
#define UZRAM_POOL_REVERSE_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "pool/handle_table.h"
#include "pool/zspage.h"

namespace uzram {

class ReverseIndex {
 public:
  struct Entry {
    ZsPageId zspage;
    std::uint32_t index;  // handle index (not the handle: no generation)
  };

  // Scans the chunks of handle group `group` (HandleTable::kGroups: all). Errors:
  // no_memory (the index is then empty).
  [[nodiscard]] Result<void> build(const HandleTable& handles, unsigned group) noexcept;

  // The entries that named zspage `id` during the scan, in handle-index order.
  std::span<const Entry> of(ZsPageId id) const noexcept;
  std::size_t size() const noexcept { return n_; }

 private:
  std::unique_ptr<Entry[]> entries_;  // sorted by (zspage, index)
  std::size_t n_ = 0;
};

}  // namespace uzram

#endif  // UZRAM_POOL_REVERSE_INDEX_H_

// store/slot_summary.h - SlotSummary: one bit per 4 KiB page of the slot table (256
// slots), set once a slot on that page may have been allocated (layer 3). The slot table is
// a MAP_NORESERVE mapping as large as the disk is addressable (16 bytes per block: 4 GiB for
// 1 TiB); the summary lets every walk over "what is stored" (reset, destruction,
// block_state, idle, writeback and recompress scans, discard) and every access to a block
// that was never written (read, free notification) skip the pages that cannot hold data,
// without touching them: reset costs what is stored, and the table's pages become resident
// only where data was written. docs/store.md#slot-summary.
//
// Protocol: do_write calls note(index) before it publishes anything in the slot, holding
// init_lock_ shared. Bits are cleared only by reset (init_lock_ exclusive), so a clear bit
// read under init_lock_ (shared or exclusive) means: no slot of that page was allocated by
// a write that completed before the reader started. Relaxed atomics: a reader racing with
// the first write to a page sees the block as never written, which is the order "read,
// then write"; init_lock_ orders reset against everything.
#ifndef UZRAM_STORE_SLOT_SUMMARY_H_
#define UZRAM_STORE_SLOT_SUMMARY_H_

#include <atomic>
#include <cstdint>

#include "store/slot.h"
#include "uzram/result.h"

namespace uzram {

class SlotSummary {
 public:
  static constexpr std::uint64_t kSlotsPerPage = 4096 / sizeof(Slot);

  SlotSummary() = default;
  ~SlotSummary() { release(); }
  SlotSummary(const SlotSummary&) = delete;
  SlotSummary& operator=(const SlotSummary&) = delete;

  // Sizes the summary for nslots slots, all clear. The bits live in a MAP_NORESERVE
  // mapping: only the words set become resident. Errors: Errc::no_memory.
  [[nodiscard]] Result<void> init(std::uint64_t nslots) noexcept;
  void release() noexcept;

  // Marks the page of slot `index`. Test-then-set: after the first write to a page this is
  // one load of a word that stays shared in every cache (no line bouncing on hot paths).
  void note(std::uint64_t index) noexcept {
    const std::uint64_t page = index / kSlotsPerPage;
    std::atomic_ref<std::uint64_t> w(words_[page / 64]);
    const std::uint64_t bit = std::uint64_t{1} << (page % 64);
    if (!(w.load(std::memory_order_relaxed) & bit)) w.fetch_or(bit, std::memory_order_relaxed);
  }
  // False: no slot of index's page has ever been allocated (see the protocol above).
  bool may_hold(std::uint64_t index) const noexcept {
    const std::uint64_t page = index / kSlotsPerPage;
    return (load(page / 64) >> (page % 64)) & 1;
  }

  // Calls fn(first, end) for each maximal run [first, end) of slots within [lo, hi) whose
  // pages are marked, in ascending order; fn returns false to stop. Cost: the marked
  // slots, plus one word read per 16384 slots of [lo, hi).
  template <typename Fn>
  void for_each_range(std::uint64_t lo, std::uint64_t hi, Fn&& fn) const noexcept {
    if (hi > nslots_) hi = nslots_;
    std::uint64_t page = lo / kSlotsPerPage;
    const std::uint64_t end_page = (hi + kSlotsPerPage - 1) / kSlotsPerPage;
    while (page < end_page) {
      const std::uint64_t word = load(page / 64) >> (page % 64);
      if (word == 0) {  // nothing in the rest of this word
        page = (page / 64 + 1) * 64;
        continue;
      }
      page += static_cast<unsigned>(__builtin_ctzll(word));
      if (page >= end_page) break;
      std::uint64_t run_end = page + 1;
      while (run_end < end_page && ((load(run_end / 64) >> (run_end % 64)) & 1)) run_end++;
      const std::uint64_t first = page * kSlotsPerPage > lo ? page * kSlotsPerPage : lo;
      const std::uint64_t last = run_end * kSlotsPerPage < hi ? run_end * kSlotsPerPage : hi;
      if (!fn(first, last)) return;
      page = run_end;
    }
  }

  std::uint64_t pages_marked() const noexcept;
  // The resident bytes of the summary itself: its pages holding a set bit (a page of
  // clear words was never written, so it is unmapped or the shared zero page).
  std::uint64_t resident_bytes() const noexcept;  // tests and statistics

 private:
  std::uint64_t load(std::uint64_t w) const noexcept {
    return std::atomic_ref<std::uint64_t>(words_[w]).load(std::memory_order_relaxed);
  }

  std::uint64_t* words_ = nullptr;
  std::uint64_t nwords_ = 0;
  std::uint64_t nslots_ = 0;
};

}  // namespace uzram

#endif  // UZRAM_STORE_SLOT_SUMMARY_H_

// store/pp_pass.h - PpPass: the frame that writeback and recompress share (layer 3), zram's
// pp_ctl with its rules around it. Guide: docs/store-postprocessing.md.
//
// A pass
//  1. takes the store's one-pass-at-a-time flag, pp_in_progress_ (begin(): a second pass
//     gets Errc::busy, the kernel's -EAGAIN);
//  2. scans the stored slots and marks each candidate PP_SLOT under its slot lock,
//     collecting them in PpBuckets (scan(): largest objects first);
//  3. hands the candidates out (next()); the caller re-checks each under its slot lock (a
//     candidate accessed or freed since the scan has lost PP_SLOT) and clears PP_SLOT
//     itself when it processes one.
// A candidate popped and not processed is given back with release(); the destructor
// releases every candidate still in the set (a pass stopped early) and drops the flag.
//
// Caller holds init_lock_ shared for the pass's lifetime; the device is initialised.
// Thread safety: one PpPass per pass, used by one thread.
#ifndef UZRAM_STORE_PP_PASS_H_
#define UZRAM_STORE_PP_PASS_H_

#include <cstdint>
#include <string>

#include "store/fail.h"
#include "store/pp_buckets.h"
#include "store/store_impl.h"

namespace uzram {

// The `type=` filters of writeback and recompress, by slot flag; 0 takes every candidate.
inline constexpr unsigned kPpIdle = 1, kPpHuge = 2, kPpIncompressible = 4;

constexpr bool pp_type_matches(unsigned mode, std::uint32_t flags) noexcept {
  return (!(mode & kPpIdle) || (flags & slotf::kIdle)) &&
         (!(mode & kPpHuge) || (flags & slotf::kHuge)) &&
         (!(mode & kPpIncompressible) || (flags & slotf::kIncompressible));
}

class PpPass {
 public:
  // `what` names the command in messages ("writeback", "recompress").
  PpPass(StoreImpl& store, const char* what) noexcept : s_(store), what_(what) {}
  ~PpPass();
  PpPass(const PpPass&) = delete;
  PpPass& operator=(const PpPass&) = delete;

  // Takes pp_in_progress_; Errc::busy ("WHAT: another writeback or recompress is in
  // progress") when another pass holds it.
  [[nodiscard]] Result<void> begin(std::string* msg) noexcept;

  // Marks PP_SLOT on, and collects, the candidates among slots [lo, end): pool objects (a
  // size, and not WB, SAME or PP_SLOT already: a block's object, or a unit's at its head;
  // a unit's other slots hold no object) whose flags want(flags) accepts (called under
  // the block's unit lock). Errc::no_memory ("WHAT: out of memory") when the set cannot
  // grow; every candidate collected is released then.
  template <typename Want>
  [[nodiscard]] Result<void> scan(std::uint64_t lo, std::uint64_t end, Want&& want,
                                  std::string* msg) noexcept {
    s_.init_lock_.assert_held_shared();  // held by the caller for the pass (see above)
    const bool all = s_.for_each_stored_slot(lo, end, [&](std::uint64_t i, Slot& slot) {
      s_.init_lock_.assert_held_shared();  // the analysis does not see into the lambda
      Slot& u = s_.unit_lock(i);
      u.lock();  // the relaxed peek is re-checked under the lock (the block's unit lock)
      slot.held_by(u);
      const std::uint32_t f = slot.get();
      const bool take = is_candidate(f) && want(f);
      if (take) slot.set((f | slotf::kPpSlot) & ~slotf::kLock);
      u.unlock();
      return !take || add(i, f & slotf::kSizeMask);
    });
    if (all) return {};
    return out_of_memory(msg);
  }

  // The next candidate, largest object first; false when none is left.
  [[nodiscard]] bool next(std::uint64_t* index) noexcept { return buckets_.pop(index); }
  [[nodiscard]] bool empty() const noexcept { return buckets_.empty(); }
  // Clears PP_SLOT on slot `index` (takes its slot lock): a candidate not processed.
  void release(std::uint64_t index) noexcept;

 private:
  static constexpr bool is_candidate(std::uint32_t f) noexcept {
    return (f & slotf::kSizeMask) && !(f & (slotf::kWb | slotf::kSame | slotf::kPpSlot));
  }
  bool add(std::uint64_t index, std::uint32_t size) noexcept;
  Result<void> out_of_memory(std::string* msg) noexcept;
  void release_all() noexcept;

  StoreImpl& s_;
  const char* const what_;
  bool running_ = false;  // this pass holds pp_in_progress_
  PpBuckets buckets_;
};

}  // namespace uzram

#endif  // UZRAM_STORE_PP_PASS_H_

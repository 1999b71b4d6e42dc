// store/writeback_run.h - WritebackRun: writeback's side of WbRun (layer 3). Candidates
// come from the pass (largest objects first), are read from the pool under their unit
// lock (raw, decompressed, or the compressed bytes to pack), and are published by freeing
// the pool object: the slot becomes WB with where its bytes went. A unit's head is split
// (unit_wb.cc, docs/units.md#post-processing): its object is decoded once and each member
// becomes a block of its own, written back (or same-filled); the members go in one batch
// and are published together, when the last one is. Blocks: writeback.cc.
#ifndef UZRAM_STORE_WRITEBACK_RUN_H_
#define UZRAM_STORE_WRITEBACK_RUN_H_

#include <cstdint>

#include "store/pp_pass.h"
#include "store/pp_run.h"
#include "store/unit.h"
#include "store/unit_pp.h"
#include "store/wb_run.h"

namespace uzram {

class WritebackRun final : public WbRun {
 public:
  WritebackRun(StoreImpl& s, PpPass& pass, std::uint64_t max_pages, PpDone* done) noexcept
      : WbRun(s, "writeback", true),
        pass_(pass),
        compressed_(s.compressed_writeback_),
        max_pages_(max_pages),
        done_(done) {}
  // The unit scratch, on a unit store (Errc::no_memory); then WbRun::init.
  [[nodiscard]] Result<void> init_units(std::string* msg) noexcept;

 private:
  static constexpr bool candidate(std::uint32_t f) noexcept {
    return (f & slotf::kPpSlot) && (f & slotf::kSizeMask) &&
           !(f & (slotf::kWb | slotf::kSame | slotf::kUnit));
  }
  // The rest, past a cap: PpPass releases them.
  bool next(std::uint64_t* index) noexcept override {
    return !(max_pages_ && placed_ >= max_pages_) && pass_.next(index);
  }
  void release(std::uint64_t index) noexcept override { pass_.release(index); }
  Place place(WbBatch* b, std::uint64_t index) noexcept override;
  void publish(const WbObj& o, bool ok) noexcept override;
  // A unit's head (unit_wb.cc).
  Place place_unit(WbBatch* b, std::uint64_t index) noexcept;
  void publish_unit(bool ok) noexcept;

  PpPass& pass_;
  const bool compressed_;          // compressed_writeback: pack the compressed bytes
  const std::uint64_t max_pages_;  // WbCommand::max_pages: 0 no cap
  std::uint64_t placed_ = 0;       // blocks placed in a batch so far
  PpDone* const done_;             // blocks published and pool bytes freed (may be null)
  // Units: the pass's buffers, and the members of the unit being published (its objects
  // are consecutive in one batch; the last carries UNIT in WbObj::flags).
  UnitScratch scratch_;
  WbObj pending_[unit::kMaxBlocks];
  unsigned npending_ = 0;
};

}  // namespace uzram

#endif  // UZRAM_STORE_WRITEBACK_RUN_H_

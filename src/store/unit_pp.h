// store/unit_pp.h - post-processing of compression units (layer 3): what writeback and
// recompress need to handle a stored unit (docs/units.md#post-processing,
// docs/store-postprocessing.md#units). Writeback splits a unit: it is decoded once and
// each member goes to its own backing block (raw, or compressed on its own 4 KiB with
// compressed_writeback), a same-filled member becoming a same-filled block. Recompression
// keeps a unit: it is re-encoded whole with a secondary algorithm, and kept only when the
// new object takes fewer pool frames.
//
// Like a block's, a unit's pass holds its unit lock only to copy the object out and to
// publish; decoding and encoding run on the pass's private copy (docs/locking.md).
#ifndef UZRAM_STORE_UNIT_PP_H_
#define UZRAM_STORE_UNIT_PP_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "store/attr_table.h"
#include "store/pp_run.h"
#include "store/store_impl.h"

namespace uzram {

// One pass's buffers for units: the object as stored, the decoded unit, and an output of
// twice the unit (what a codec's compress() wants).
class UnitScratch {
 public:
  // Errc::no_memory when the buffers cannot be had.
  [[nodiscard]] Result<void> init(std::size_t unit_size) noexcept;
  unsigned char* object() const noexcept { return buf_.get(); }
  unsigned char* data() const noexcept { return buf_.get() + unit_size_; }
  unsigned char* out() const noexcept { return buf_.get() + 2 * unit_size_; }
  std::size_t out_size() const noexcept { return 2 * unit_size_; }

 private:
  std::size_t unit_size_ = 0;
  std::unique_ptr<unsigned char[]> buf_;
};

// What a pass found in a unit's head under its unit lock.
struct UnitCopy {
  std::uint32_t flags = 0;    // the head's, without LOCK
  std::uint64_t handle = 0;   // the unit's object
  std::uint64_t version = 0;  // unit::version
  std::uint32_t members = 0;  // unit::members
  std::uint32_t size() const noexcept { return flags & slotf::kSizeMask; }
  unsigned prio() const noexcept { return (flags & slotf::kPrioMask) >> slotf::kPrioShift; }
};

// Records the stored unit at `u` (its head, held) in *c and copies its object into
// sc.object().
void unit_copy_out_locked(StoreImpl& s, Slot& u, UnitScratch& sc, UnitCopy* c) noexcept
    ZS_REQUIRES(u) ZS_REQUIRES_SHARED(s.init_lock_);
// Whether the unit at `u` (held) is still the one copied: a unit, PP_SLOT still set (any
// access clears it), the same object, version and members.
bool unit_unchanged_locked(StoreImpl& s, Slot& u, const UnitCopy& c) noexcept ZS_REQUIRES(u)
    ZS_REQUIRES_SHARED(s.init_lock_);
// Decodes the copied object into sc.data() (unit_size bytes). No lock needed.
[[nodiscard]] Result<void> unit_decode(StoreImpl& s, const UnitCopy& c, UnitScratch& sc) noexcept
    ZS_REQUIRES_SHARED(s.init_lock_);
// A block of a unit compressed on its own with the primary algorithm into out (at least
// 2 x 4096 bytes): its length, or 0 when it would be stored raw (huge_class_size or more,
// or the codec failed).
std::uint32_t unit_member_compress(StoreImpl& s, const unsigned char* block, unsigned char* out,
                                   std::size_t out_size) noexcept ZS_REQUIRES_SHARED(s.init_lock_);
// The kernel's "a smaller class" for objects of any size: true when an object of `a`
// bytes takes less of the pool than one of `b` (fewer run frames, or as many and a
// smaller class for the tail; a tail the small classes store whole counts as a frame).
bool pool_takes_less(const Pool& pool, std::size_t a, std::size_t b) noexcept;

// recompress of the unit whose head is slot `index` (a candidate of the pass, PP_SLOT
// set): re-encoded whole with the priorities above its own, kept when it takes less of
// the pool and is below threshold x N (when a threshold is set). *budget counts blocks
// (max_pages): a unit costs N, and is left when fewer are left. Marked INCOMPRESSIBLE as
// a block would be. Returns the error that stops the pass, if any.
[[nodiscard]] Result<void> recompress_unit(StoreImpl& s, std::uint64_t index,
                                           const RecompCommand& cmd, UnitScratch& sc,
                                           std::uint64_t* budget, PpDone* done,
                                           std::string* msg) noexcept
    ZS_REQUIRES_SHARED(s.init_lock_);

}  // namespace uzram

#endif  // UZRAM_STORE_UNIT_PP_H_

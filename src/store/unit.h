// store/unit.h - compression units in the slot table (layer 3): the head's version word and
// the members of a stored unit (slot.h, docs/units.md#indexing-the-rfcs). Every function
// here is for a holder of the unit lock (StoreImpl::unit_lock: the head slot's lock);
// `head` points at the head slot, `n` is the store's unit_blocks_ (at least 2).
#ifndef UZRAM_STORE_UNIT_H_
#define UZRAM_STORE_UNIT_H_

#include <cstddef>
#include <cstdint>

#include "store/slot.h"

namespace uzram::unit {

// The largest N (64 KiB / 4 KiB): a member mask fits in 32 bits.
inline constexpr unsigned kMaxBlocks = 16;

// The unit's version (the store-wide counter's value at its publication) and the number of
// partial writes it took in place since (saturating at kPartialMask).
inline std::uint64_t version(const Slot* head) noexcept {
  return head[1].handle.load(std::memory_order_relaxed) >> slotf::kVersionShift;
}
inline unsigned partials(const Slot* head) noexcept {
  return static_cast<unsigned>(head[1].handle.load(std::memory_order_relaxed) &
                               slotf::kPartialMask);
}
inline void set_version(Slot* head, std::uint64_t version, unsigned partials) noexcept {
  const std::uint64_t p = partials > slotf::kPartialMask ? slotf::kPartialMask : partials;
  head[1].handle.store(version << slotf::kVersionShift | p, std::memory_order_relaxed);
}

// Bit k set: block k of the unit is a member (its data lives in the unit's object).
inline std::uint32_t members(const Slot* head, unsigned n) noexcept {
  std::uint32_t m = 0;
  for (unsigned k = 0; k < n; k++) {
    if (head[k].flags.load(std::memory_order_relaxed) & slotf::kMember) m |= 1u << k;
  }
  return m;
}

// The pieces a unit of unit_size bytes is compressed in (Codec::compress_pieces): a block
// read decodes the pieces up to its block's. 16 KiB (8 KiB in a 16 KiB unit): at 32 and
// 64 KiB zstd then stores fewer bytes than with the unit in one piece; 8 KiB pieces decode
// a little less but store 0.2 % more at 32 KiB (docs/units.md#partial-decoding).
inline constexpr std::size_t piece_bytes(std::uint32_t unit_size) noexcept {
  return unit_size <= 4096 ? 0 : unit_size <= 16384 ? 8192 : 16384;
}

inline bool stored(const Slot* head) noexcept {
  return head->flags.load(std::memory_order_relaxed) & slotf::kUnit;
}

}  // namespace uzram::unit

#endif  // UZRAM_STORE_UNIT_H_

// store/wb_layout.h - where a written-back slot's bytes are (layer 3): the handle word of a
// WB slot, and the byte ranges of the backing tier it covers. Guide:
// docs/store-postprocessing.md#the-packed-layout.
//
// A written-back slot has WB set and size 0 (it holds no pool object). Its handle word:
//
//   bits  0..38  backing block (39 bits: a backing tier of up to 2 PiB)
//   bits 39..50  byte offset of the object in that block (0..4095)
//   bits 51..63  length in bytes (13 bits); 0 = a whole raw page (offset 0, 4096 bytes)
//
// Raw pages (huge objects, and every object without compressed_writeback) take one whole
// block: length 0, offset 0, so the handle is just the block number, as in the kernel.
// With compressed_writeback=1 a non-huge object is written as its compressed bytes, PACKED
// with others: objects follow one another in the backing tier's byte space, so one block
// holds several objects and an object may continue into the next block (block + 1) when
// the two were written in one run. The slot then also has WB_COMPRESSED and keeps its
// priority bits (the algorithm that decompresses it). An object never spans more than two
// blocks (compressed objects are shorter than huge_class_size < 4096 bytes).
//
// Which blocks hold live bytes is the backing allocator's business (backing_alloc.h): per
// block, the bytes of the live objects in it; a block whose count drops to 0 is free.
#ifndef UZRAM_STORE_WB_LAYOUT_H_
#define UZRAM_STORE_WB_LAYOUT_H_

#include <cstdint>

#include "uzram/store.h"

namespace uzram {

inline constexpr unsigned kWbOffShift = 39;
inline constexpr unsigned kWbLenShift = 51;
inline constexpr std::uint64_t kWbMaxBlocks = std::uint64_t{1} << kWbOffShift;
inline constexpr std::uint64_t kWbBlockMask = kWbMaxBlocks - 1;

struct WbAddr {
  std::uint64_t block = 0;
  std::uint32_t offset = 0;  // in block
  std::uint32_t len = 0;     // 0: a raw page

  constexpr bool raw() const noexcept { return len == 0; }
  constexpr std::uint32_t bytes() const noexcept { return raw() ? kBlockSize : len; }
  // Blocks covered: 1, or 2 when the object continues into block + 1.
  constexpr unsigned nblocks() const noexcept { return offset + bytes() > kBlockSize ? 2u : 1u; }
  // Bytes of the object in its first block (the rest, if any, is in block + 1).
  constexpr std::uint32_t head_bytes() const noexcept {
    return nblocks() == 1 ? bytes() : kBlockSize - offset;
  }
  constexpr std::uint64_t byte_offset() const noexcept { return block * kBlockSize + offset; }
};

constexpr std::uint64_t wb_encode(const WbAddr& a) noexcept {
  return a.block | (std::uint64_t{a.offset} << kWbOffShift) | (std::uint64_t{a.len} << kWbLenShift);
}

constexpr WbAddr wb_decode(std::uint64_t h) noexcept {
  WbAddr a;
  a.block = h & kWbBlockMask;
  a.offset = static_cast<std::uint32_t>((h >> kWbOffShift) & (kBlockSize - 1));
  a.len = static_cast<std::uint32_t>(h >> kWbLenShift);
  return a;
}

static_assert(wb_decode(wb_encode({kWbMaxBlocks - 1, 4095, 8191})).len == 8191);
static_assert(wb_decode(wb_encode({5, 4000, 200})).nblocks() == 2);
static_assert(wb_decode(wb_encode({5, 0, 0})).bytes() == kBlockSize);

}  // namespace uzram

#endif  // UZRAM_STORE_WB_LAYOUT_H_

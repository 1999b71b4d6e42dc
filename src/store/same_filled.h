// store/same_filled.h - zram's same-filled test (layer 3): a 4 KiB block made of one
// repeated 8-byte word is stored as that word (metadata only), and a unit whose blocks all
// are is stored as that many such blocks (docs/units.md#writes). Inline, so tools that
// model the store (bench/macro/unit_probe.cc) apply the very same test.
#ifndef UZRAM_STORE_SAME_FILLED_H_
#define UZRAM_STORE_SAME_FILLED_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace uzram {

inline constexpr std::size_t kSameFilledBlock = 4096;

// Whether the block is one repeated 8-byte word (word 0 against the last word first, then
// all of them); *word gets it. `block` is 8-byte aligned.
inline bool same_filled(const void* block, std::uint64_t* word) noexcept {
  const auto* w = static_cast<const std::uint64_t*>(block);
  constexpr std::size_t n = kSameFilledBlock / 8;
  const std::uint64_t v = w[0];
  if (w[n - 1] != v) return false;
  for (std::size_t i = 1; i < n - 1; i++) {
    if (w[i] != v) return false;
  }
  *word = v;
  return true;
}

// Whether each of the `blocks` consecutive blocks is same-filled (each its own word,
// words[k] for block k): such a unit is stored as metadata only. Stops at the first block
// that is not (the last block of each first, so a unit of data fails fast).
inline bool same_filled_blocks(const void* data, std::size_t blocks,
                               std::uint64_t* words) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t k = blocks; k-- > 0;) {
    if (!same_filled(p + k * kSameFilledBlock, &words[k])) return false;
  }
  return true;
}

// The block filled with `word`.
inline void fill_word(void* block, std::uint64_t word) noexcept {
  auto* w = static_cast<std::uint64_t*>(block);
  for (std::size_t i = 0; i < kSameFilledBlock / 8; i++) w[i] = word;
}

}  // namespace uzram

#endif  // UZRAM_STORE_SAME_FILLED_H_

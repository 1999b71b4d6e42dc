// store/unit_model.h - the reference model of a unit store (docs/units.md) for the
// randomized tests: the disk's bytes, which blocks are stored (what mm_stat counts), and
// which unit ranges hold a unit object, as far as the operations tell; plus generators of
// unit contents of every kind the store treats differently (incompressible, same-filled,
// compressible, incompressible per block but compressible as a unit, mixed).
#ifndef UZRAM_TESTS_STORE_UNIT_MODEL_H_
#define UZRAM_TESTS_STORE_UNIT_MODEL_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "testing/seed.h"
#include "util/random.h"
#include "uzram/store.h"

namespace uzram::testing {

// Sanitizer builds run the randomized unit tests shorter (they are 5-10x slower).
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
inline constexpr bool kUnitTestSanitized = true;
#else
inline constexpr bool kUnitTestSanitized = false;
#endif
#else
inline constexpr bool kUnitTestSanitized = false;
#endif

// One block of a kind: 0 random, 1 same-filled (a random word), 2 zeros, 3 text-like
// (compresses 2-4x), 4 half random, half zeros.
inline void unit_block(Random& rng, unsigned char* b, unsigned kind) {
  static const char* const kWords[] = {"the ",   "unit ", "page ",  "slot ", "object ",
                                       "class ", "zram ", "write ", "back ", "block "};
  switch (kind) {
    case 0: fill_random(rng, b, kBlockSize); break;
    case 1: {
      const std::uint64_t w = rng.next();
      for (std::size_t i = 0; i < kBlockSize; i += 8) std::memcpy(b + i, &w, 8);
      break;
    }
    case 2: std::memset(b, 0, kBlockSize); break;
    case 3:
      for (std::size_t i = 0; i < kBlockSize;) {
        const char* w = kWords[rng.uniform(10)];
        for (; *w && i < kBlockSize; w++) b[i++] = static_cast<unsigned char>(*w);
        if (rng.one_in(5) && i < kBlockSize) b[i++] = static_cast<unsigned char>(rng.next());
      }
      break;
    default:
      fill_random(rng, b, kBlockSize / 2);
      std::memset(b + kBlockSize / 2, 0, kBlockSize / 2);
      break;
  }
}

// `blocks` blocks of one unit kind: 0 incompressible, 1 same-filled blocks (each its own
// word; zeros now and then), 2 compressible, 3 one random block repeated (huge as 4 KiB
// blocks, compressible as a unit), 4 mixed block kinds. `fresh` excludes the kinds whose
// bytes could equal what a block held before (zeros, same fills): the mem_limit tests
// tell old from new contents by comparing.
inline void unit_data(Random& rng, unsigned char* p, std::uint64_t blocks, unsigned kind) {
  for (std::uint64_t b = 0; b < blocks; b++) {
    unsigned char* d = p + b * kBlockSize;
    switch (kind) {
      case 0: unit_block(rng, d, 0); break;
      case 1: unit_block(rng, d, rng.one_in(4) ? 2 : 1); break;
      case 2: unit_block(rng, d, 3); break;
      case 3:
        if (b == 0) {
          unit_block(rng, d, 0);
        } else {
          std::memcpy(d, p, kBlockSize);
        }
        break;
      default: unit_block(rng, d, static_cast<unsigned>(rng.uniform(5))); break;
    }
  }
}

inline bool block_same_filled(const unsigned char* b) {
  std::uint64_t w0, w;
  std::memcpy(&w0, b, 8);
  for (std::size_t i = 8; i < kBlockSize; i += 8) {
    std::memcpy(&w, b + i, 8);
    if (w != w0) return false;
  }
  return true;
}

// What the operations tell about a unit range: no unit object, one, or either (a partial
// write whose outcome the counters could not attribute, a writeback that split some).
enum class UnitState : std::uint8_t { none, unit, unknown };

class UnitModel {
 public:
  UnitModel(std::uint64_t blocks, std::uint64_t per_unit)
      : blocks_(blocks),
        n_(per_unit),
        units_(per_unit > 1 ? blocks / per_unit : 0),
        bytes_(blocks * kBlockSize, 0),
        stored_(blocks, false),
        state_(units_, UnitState::none) {}

  std::uint64_t blocks() const { return blocks_; }
  std::uint64_t per_unit() const { return n_; }
  std::uint64_t units() const { return units_; }  // whole units of the disk (0 at 4K)
  const unsigned char* data(std::uint64_t block) const { return &bytes_[block * kBlockSize]; }
  bool stored(std::uint64_t block) const { return stored_[block]; }
  UnitState state(std::uint64_t unit) const { return state_[unit]; }
  void set_state(std::uint64_t unit, UnitState s) { state_[unit] = s; }
  // The unit of a block; units() when the block is in the disk's tail (no unit).
  std::uint64_t unit_of(std::uint64_t block) const {
    return n_ > 1 && block / n_ < units_ ? block / n_ : units_;
  }

  void write(std::uint64_t block, const unsigned char* src) {
    std::memcpy(&bytes_[block * kBlockSize], src, kBlockSize);
    stored_[block] = true;
  }
  void clear(std::uint64_t block) {
    std::memset(&bytes_[block * kBlockSize], 0, kBlockSize);
    stored_[block] = false;
  }
  void reset() {
    std::fill(bytes_.begin(), bytes_.end(), 0);
    std::fill(stored_.begin(), stored_.end(), false);
    std::fill(state_.begin(), state_.end(), UnitState::none);
  }

  std::uint64_t stored_blocks() const {
    std::uint64_t n = 0;
    for (bool s : stored_) n += s;
    return n;
  }
  std::uint64_t stored_same() const {
    std::uint64_t n = 0;
    for (std::uint64_t b = 0; b < blocks_; b++) n += stored_[b] && block_same_filled(data(b));
    return n;
  }
  std::uint64_t unit_stored(std::uint64_t unit) const {
    std::uint64_t n = 0;
    for (std::uint64_t b = unit * n_; b < (unit + 1) * n_; b++) n += stored_[b];
    return n;
  }
  // Every stored block of the unit is same-filled (a re-encoding may store such a unit as
  // same-filled blocks).
  bool unit_all_same(std::uint64_t unit) const {
    for (std::uint64_t b = unit * n_; b < (unit + 1) * n_; b++) {
      if (stored_[b] && !block_same_filled(data(b))) return false;
    }
    return true;
  }
  std::uint64_t count(UnitState s) const {
    std::uint64_t n = 0;
    for (UnitState x : state_) n += x == s;
    return n;
  }
  // A unit range with no stored block holds no unit object (freed with its last member).
  void settle() {
    for (std::uint64_t u = 0; u < units_; u++) {
      if (unit_stored(u) == 0) state_[u] = UnitState::none;
    }
  }

  // The first block in [index, index + count) whose bytes differ from `got`, or -1.
  std::int64_t mismatch(std::uint64_t index, std::uint64_t count, const unsigned char* got) const {
    for (std::uint64_t b = 0; b < count; b++) {
      if (std::memcmp(got + b * kBlockSize, data(index + b), kBlockSize) != 0) {
        return static_cast<std::int64_t>(index + b);
      }
    }
    return -1;
  }

 private:
  std::uint64_t blocks_, n_, units_;
  std::vector<unsigned char> bytes_;
  std::vector<bool> stored_;
  std::vector<UnitState> state_;
};

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_STORE_UNIT_MODEL_H_

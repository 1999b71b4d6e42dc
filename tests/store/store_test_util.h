// Helpers for store tests: deterministic block contents of a few kinds, store setup.
#ifndef UZRAM_TESTS_STORE_STORE_TEST_UTIL_H_
#define UZRAM_TESTS_STORE_STORE_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

#include "uzram/store.h"

namespace uzram::testing {

// kind 0: random (incompressible); 1: same-filled word; 2: text-like (compresses ~3x);
// 3: half random, half zeros.
inline void make_block(unsigned char* b, int kind, std::uint64_t seed) {
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 0x1234567ULL + static_cast<std::uint64_t>(kind);
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  static const char* const kWords[] = {"zram ", "pool ",   "compress ", "the ",    "page ",
                                       "swap ", "memory ", "kernel ",   "handle ", "class "};
  switch (kind) {
    case 0:
      for (unsigned i = 0; i < kBlockSize; i++) b[i] = static_cast<unsigned char>(next() >> 24);
      break;
    case 1: {
      const std::uint64_t w = next();
      for (unsigned i = 0; i < kBlockSize; i++)
        b[i] = static_cast<unsigned char>(w >> (8 * (i % 8)));
      break;
    }
    case 2:
      for (unsigned i = 0; i < kBlockSize;) {
        const char* w = kWords[next() % 10];
        while (*w && i < kBlockSize) b[i++] = static_cast<unsigned char>(*w++);
      }
      break;
    default:
      for (unsigned i = 0; i < kBlockSize; i++)
        b[i] = i < kBlockSize / 2 ? static_cast<unsigned char>(next() >> 24) : 0;
      break;
  }
}

inline std::unique_ptr<Store> new_store(const char* algo, const char* size) {
  auto st = std::move(Store::create().value());
  std::string msg;
  EXPECT_TRUE(st->write_attr("comp_algorithm", algo, &msg)) << msg;
  EXPECT_TRUE(st->write_attr("disksize", size, &msg)) << msg;
  return st;
}

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_STORE_STORE_TEST_UTIL_H_

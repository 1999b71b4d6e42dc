// Helpers for the concurrency tests: deterministic object contents and run parameters. The
// run's seed is testing/seed.h's test_seed(), as in every other test.
#ifndef UZRAM_TESTS_STRESS_UTIL_H_
#define UZRAM_TESTS_STRESS_UTIL_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "testing/seed.h"

namespace uzram::testing {

// Fills buf[0..n) with bytes derived from seed.
inline void fill_pattern(unsigned char* buf, std::size_t n, std::uint64_t seed) {
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (std::size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = static_cast<unsigned char>(x);
  }
}

inline bool check_pattern(const void* p, std::size_t n, std::uint64_t seed) {
  unsigned char tmp[65536];  // the largest object (PoolOptions::max_object_size)
  fill_pattern(tmp, n, seed);
  return std::memcmp(tmp, p, n) == 0;
}

inline long env_long(const char* name, long dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtol(v, nullptr, 10) : dflt;
}

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_STRESS_UTIL_H_

// testing/seed.h - reproducible randomness for tests: test_seed() returns the seed of this
// run (UZRAM_TEST_SEED=<n> overrides, else a fresh one) and prints it once, so a failure
// can be replayed. Put SCOPED_TRACE(seed_trace(seed)) in a test to repeat it on failure.
#ifndef UZRAM_TESTS_TESTING_SEED_H_
#define UZRAM_TESTS_TESTING_SEED_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "util/random.h"

namespace uzram::testing {

inline std::uint64_t test_seed() {
  static const std::uint64_t seed = [] {
    std::uint64_t s;
    const char* env = std::getenv("UZRAM_TEST_SEED");
    if (env != nullptr && *env != '\0') {
      s = std::strtoull(env, nullptr, 0);
    } else {
      std::random_device rd;
      s = (std::uint64_t{rd()} << 32) ^ rd();
    }
    std::fprintf(stderr, "uzram tests: seed %llu (set UZRAM_TEST_SEED=%llu to replay)\n",
                 static_cast<unsigned long long>(s), static_cast<unsigned long long>(s));
    return s;
  }();
  return seed;
}

inline std::string seed_trace(std::uint64_t seed) {
  return "UZRAM_TEST_SEED=" + std::to_string(seed);
}

// Fills buf[0..n) with bytes from rng.
inline void fill_random(Random& rng, void* buf, std::size_t n) {
  auto* p = static_cast<unsigned char*>(buf);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t v = rng.next();
    for (int b = 0; b < 8; b++) p[i + b] = static_cast<unsigned char>(v >> (8 * b));
  }
  if (i < n) {
    const std::uint64_t v = rng.next();
    for (int b = 0; i < n; i++, b++) p[i] = static_cast<unsigned char>(v >> (8 * b));
  }
}

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_TESTING_SEED_H_

// util/random.h - Random: a small seeded xoshiro256** generator (layer 0). Tests and
// benchmarks use it so every run is reproducible from its printed seed.
#ifndef UZRAM_UTIL_RANDOM_H_
#define UZRAM_UTIL_RANDOM_H_

#include <cmath>
#include <cstdint>

namespace uzram {

class Random {
 public:
  explicit Random(std::uint64_t seed) noexcept {
    std::uint64_t z = seed;
    for (auto& s : s_) s = splitmix(z);
  }
  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n); n > 0.
  std::uint64_t uniform(std::uint64_t n) noexcept { return next() % n; }
  // Uniform in [lo, hi].
  std::uint64_t range(std::uint64_t lo, std::uint64_t hi) noexcept {
    return lo + uniform(hi - lo + 1);
  }
  double unit() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Standard normal (Box-Muller).
  double normal() noexcept {
    double u1 = unit(), u2 = unit();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  bool one_in(std::uint64_t n) noexcept { return uniform(n) == 0; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix(std::uint64_t& x) noexcept {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint64_t s_[4];
};

}  // namespace uzram

#endif  // UZRAM_UTIL_RANDOM_H_

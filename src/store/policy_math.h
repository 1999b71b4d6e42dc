// store/policy_math.h - the policy engine's arithmetic (layer 3): the ChromeOS idle-age
// formula, the per-round allowance, the sliding day window, the round schedule, and the age
// histogram that finds the coldest blocks without sorting them. Pure: every function takes
// the time ("now", seconds of the store's clock) as an argument, so the tests drive it with
// any clock. Thread safety: none; the engine (store/policy.h) guards its instances.
#ifndef UZRAM_STORE_POLICY_MATH_H_
#define UZRAM_STORE_POLICY_MATH_H_

#include <cstdint>
#include <string_view>

namespace uzram {

// ChromeOS's idle age in seconds: (max - min) * e^(-5 * util) + min, util (the memory
// utilisation, 0..1) clamped to [0, 1]. The fuller memory is, the younger a block may be
// and still count as idle: min + 0.7 % of the range at util 1.
[[nodiscard]] std::uint64_t policy_idle_age(std::uint64_t idle_min, std::uint64_t idle_max,
                                            double util) noexcept;

// Why a round writes nothing back.
enum class SkipReason : std::uint8_t { none, below_min, day_budget, backing_full };
const char* skip_reason_name(SkipReason r) noexcept;

struct Allowance {
  std::uint64_t pages = 0;  // 0 exactly when skip != none
  SkipReason skip = SkipReason::none;
};
// ChromeOS's pages per round: floor(zram_util * round_max), capped by the free backing
// blocks and what is left of the day's budget (day_left; ~0 for no cap), and skipped when
// below max(round_min, 1). The reason names the cap that took it below round_min (the day
// before the device), else below_min (the device's data is too small a share of it).
[[nodiscard]] Allowance round_allowance(double zram_util, std::uint64_t round_min,
                                        std::uint64_t round_max, std::uint64_t backing_free,
                                        std::uint64_t day_left) noexcept;

// Pages written back in the last 24 hours, counted in minutes: a record of minute M counts
// until minute M + 1440 (between 24 h and 24 h + 1 min after it).
class DayWindow {
 public:
  static constexpr unsigned kSlices = 1440;
  void add(std::uint64_t now, std::uint64_t pages) noexcept;
  [[nodiscard]] std::uint64_t used(std::uint64_t now) const noexcept;
  void clear() noexcept;

 private:
  struct Slice {
    std::uint64_t minute = ~std::uint64_t{0};  // ~0: empty
    std::uint64_t pages = 0;
  };
  Slice slices_[kSlices];
};

// When the next time-driven round is due: `interval` after the start of the last one, and
// at least `backoff` after its end; the first one `interval` after the anchor (when the
// policy was switched on, or the store initialised with it on).
struct RoundClock {
  bool has_round = false;
  std::uint64_t anchor = 0, last_start = 0, last_end = 0;
  [[nodiscard]] std::uint64_t next_due(std::uint64_t interval,
                                       std::uint64_t backoff) const noexcept;
};

// Bytes and blocks of pool objects by age, in 128 buckets: one per second below 16 s, then
// four per power of two (a bucket is at most 25 % wider than its floor). cutoff() answers
// "how old must a block be for the oldest blocks to hold `need` bytes": the floor of that
// bucket, and how many blocks to take (all of the older buckets, and the share of that
// bucket its average object size says).
class AgeHistogram {
 public:
  static constexpr unsigned kBuckets = 128;
  [[nodiscard]] static unsigned bucket_of(std::uint32_t age) noexcept;
  [[nodiscard]] static std::uint32_t bucket_floor(unsigned bucket) noexcept;

  // An object of `bytes` holding `blocks` blocks (a unit's: its members) `age` seconds old.
  void add(std::uint32_t age, std::uint32_t bytes, std::uint32_t blocks = 1) noexcept {
    const unsigned b = bucket_of(age);
    bytes_[b] += bytes;
    blocks_[b] += blocks;
  }
  struct Cut {
    std::uint32_t age = 0;     // blocks at least this old
    std::uint64_t blocks = 0;  // how many of them to take (0: no block at all)
  };
  [[nodiscard]] Cut cutoff(std::uint64_t need_bytes) const noexcept;

 private:
  std::uint64_t bytes_[kBuckets] = {};
  std::uint64_t blocks_[kBuckets] = {};
};

// The system's memory utilisation from the text of /proc/meminfo: 1 - MemAvailable /
// MemTotal, or -1 when either line is missing or MemTotal is 0.
[[nodiscard]] double meminfo_utilisation(std::string_view meminfo) noexcept;

}  // namespace uzram

#endif  // UZRAM_STORE_POLICY_MATH_H_

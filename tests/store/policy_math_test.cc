// store/policy_math_test.cc - the policy's arithmetic (store/policy_math.h) with an
// injected clock: the ChromeOS idle-age formula, the per-round allowance and why it skips,
// the sliding day window, the round schedule (interval against backoff), the age histogram
// that finds the coldest blocks, and /proc/meminfo parsing.
#include <gtest/gtest.h>

#include <cmath>

#include "store/policy_math.h"
#include "testing/seed.h"

namespace uzram {
namespace {

constexpr std::uint64_t kHour = 3600, kMin = 60;

TEST(PolicyMathTest, IdleAgeIsTheChromeosFormula) {
  const std::uint64_t lo = 20 * kHour, hi = 25 * kHour;
  EXPECT_EQ(policy_idle_age(lo, hi, 0.0), hi);  // memory empty: the longest age
  // Full memory: min + range * e^-5 (5 h * 0.00674 = 121 s).
  EXPECT_EQ(policy_idle_age(lo, hi, 1.0), lo + 121);
  for (double u : {0.1, 0.25, 0.5, 0.75, 0.9}) {
    const double want = static_cast<double>(hi - lo) * std::exp(-5 * u) + static_cast<double>(lo);
    EXPECT_NEAR(static_cast<double>(policy_idle_age(lo, hi, u)), want, 0.5) << u;
  }
  // Monotonic: fuller memory, younger idle blocks.
  for (int i = 0; i < 100; i++) {
    EXPECT_GE(policy_idle_age(lo, hi, i / 100.0), policy_idle_age(lo, hi, (i + 1) / 100.0));
  }
  // Utilisation outside [0, 1] (a pool above mem_limit, a bad reading) is clamped.
  EXPECT_EQ(policy_idle_age(lo, hi, 3.0), policy_idle_age(lo, hi, 1.0));
  EXPECT_EQ(policy_idle_age(lo, hi, -1.0), hi);
  EXPECT_EQ(policy_idle_age(lo, hi, std::nan("")), hi);
  // A fixed age: min == max.
  EXPECT_EQ(policy_idle_age(600, 600, 0.3), 600u);
}

TEST(PolicyMathTest, AllowanceScalesWithUtilisationAndSkipsBelowMin) {
  constexpr std::uint64_t kNoCap = ~std::uint64_t{0};
  // ChromeOS on its 1 GiB backing file: 1280 .. 76800 pages per round.
  Allowance a = round_allowance(0.5, 1280, 76800, kNoCap, kNoCap);
  EXPECT_EQ(a.pages, 38400u);
  EXPECT_EQ(a.skip, SkipReason::none);
  EXPECT_EQ(round_allowance(1.0, 1280, 76800, kNoCap, kNoCap).pages, 76800u);
  // Too little data in the device: under round_min, skipped.
  a = round_allowance(0.01, 1280, 76800, kNoCap, kNoCap);  // 768 < 1280
  EXPECT_EQ(a.pages, 0u);
  EXPECT_EQ(a.skip, SkipReason::below_min);
  // Capped by the free backing blocks, and skipped when that is under round_min.
  EXPECT_EQ(round_allowance(0.5, 1280, 76800, 5000, kNoCap).pages, 5000u);
  a = round_allowance(0.5, 1280, 76800, 1000, kNoCap);
  EXPECT_EQ(a.pages, 0u);
  EXPECT_EQ(a.skip, SkipReason::backing_full);
  // Capped by what is left of the day; the day is named first when both are short.
  EXPECT_EQ(round_allowance(0.5, 1280, 76800, kNoCap, 2000).pages, 2000u);
  a = round_allowance(0.5, 1280, 76800, 1000, 100);
  EXPECT_EQ(a.skip, SkipReason::day_budget);
  // round_min 0 still needs one page.
  a = round_allowance(0.0, 0, 76800, kNoCap, kNoCap);
  EXPECT_EQ(a.pages, 0u);
  EXPECT_EQ(a.skip, SkipReason::below_min);
  EXPECT_EQ(round_allowance(2.0, 1, 10, kNoCap, kNoCap).pages, 10u);  // clamped to 1
  EXPECT_STREQ(skip_reason_name(SkipReason::day_budget), "day budget spent");
}

TEST(PolicyMathTest, DayWindowSlidesOverTwentyFourHours) {
  DayWindow d;
  const std::uint64_t t0 = 1000 * kHour;  // any origin
  EXPECT_EQ(d.used(t0), 0u);
  d.add(t0, 100);
  d.add(t0 + 30, 5);  // same minute
  d.add(t0 + 6 * kHour, 50);
  EXPECT_EQ(d.used(t0), 105u);
  EXPECT_EQ(d.used(t0 + 6 * kHour), 155u);
  EXPECT_EQ(d.used(t0 + 23 * kHour + 59 * kMin), 155u);
  // The first minute's pages leave once 24 h have passed over their minute.
  EXPECT_EQ(d.used(t0 - t0 % kMin + 24 * kHour), 50u);
  EXPECT_EQ(d.used(t0 + 30 * kHour + kMin), 0u);
  // A slot reused a day later starts afresh.
  d.add(t0 + 24 * kHour, 7);
  EXPECT_EQ(d.used(t0 + 24 * kHour), 57u);
  // A clock that reads earlier than a record (never, but harmless) does not count it.
  EXPECT_EQ(d.used(t0 - kHour), 0u);
  d.clear();
  EXPECT_EQ(d.used(t0 + 24 * kHour), 0u);
}

TEST(PolicyMathTest, RoundScheduleHonoursIntervalAndBackoff) {
  RoundClock c;
  c.anchor = 500;
  EXPECT_EQ(c.next_due(kHour, 10 * kMin), 500 + kHour);  // the first: interval after on
  c.has_round = true;
  c.last_start = 10'000;
  c.last_end = 10'060;                                      // a one-minute round
  EXPECT_EQ(c.next_due(kHour, 10 * kMin), 10'000 + kHour);  // interval from its start
  // A round longer than interval - backoff: backoff counts from its end.
  c.last_end = 10'000 + 55 * kMin;
  EXPECT_EQ(c.next_due(kHour, 10 * kMin), 10'000 + 65 * kMin);
  // An interval shorter than the backoff: the backoff rules.
  c.last_end = 10'010;
  EXPECT_EQ(c.next_due(60, 10 * kMin), 10'010 + 10 * kMin);
}

TEST(PolicyMathTest, AgeBucketsCoverEveryAgeInOrder) {
  EXPECT_EQ(AgeHistogram::bucket_of(0), 0u);
  EXPECT_EQ(AgeHistogram::bucket_of(15), 15u);
  EXPECT_EQ(AgeHistogram::bucket_of(~std::uint32_t{0}), AgeHistogram::kBuckets - 1);
  for (unsigned b = 0; b + 1 < AgeHistogram::kBuckets; b++) {
    const std::uint32_t lo = AgeHistogram::bucket_floor(b),
                        next = AgeHistogram::bucket_floor(b + 1);
    ASSERT_LT(lo, next) << b;
    EXPECT_EQ(AgeHistogram::bucket_of(lo), b);
    EXPECT_EQ(AgeHistogram::bucket_of(next - 1), b);
    if (lo >= 16) {
      EXPECT_LE(next - lo, lo / 4) << b;  // at most 25 % wide
    }
  }
  Random rng(testing::test_seed());
  SCOPED_TRACE(testing::seed_trace(testing::test_seed()));
  for (int i = 0; i < 10000; i++) {
    const auto age = static_cast<std::uint32_t>(rng.next());
    const unsigned b = AgeHistogram::bucket_of(age);
    ASSERT_LE(AgeHistogram::bucket_floor(b), age);
    if (b + 1 < AgeHistogram::kBuckets) {
      ASSERT_LT(age, AgeHistogram::bucket_floor(b + 1));
    }
  }
}

TEST(PolicyMathTest, CutoffTakesTheOldestBlocksFirst) {
  AgeHistogram h;
  EXPECT_EQ(h.cutoff(1000).blocks, 0u);           // nothing stored
  for (int i = 0; i < 10; i++) h.add(3, 1000);    // young
  for (int i = 0; i < 10; i++) h.add(100, 2000);  // older
  for (int i = 0; i < 10; i++) h.add(5000, 500);  // oldest
  // 4 KB: the oldest bucket holds 5 KB: 8 of its blocks, all at least its floor old.
  AgeHistogram::Cut c = h.cutoff(4000);
  EXPECT_EQ(c.blocks, 8u);
  EXPECT_LE(c.age, 5000u);
  EXPECT_GT(c.age, 100u);
  // 9 KB: all 10 oldest (5 KB), then 2 of the 2 KB ones.
  c = h.cutoff(9000);
  EXPECT_EQ(c.blocks, 12u);
  EXPECT_LE(c.age, 100u);
  EXPECT_GT(c.age, 3u);
  // More than everything: every block, any age.
  c = h.cutoff(1'000'000);
  EXPECT_EQ(c.blocks, 30u);
  EXPECT_EQ(c.age, 0u);
  // At least one block even for a tiny need.
  EXPECT_EQ(h.cutoff(1).blocks, 1u);
}

TEST(PolicyMathTest, MeminfoUtilisation) {
  EXPECT_DOUBLE_EQ(meminfo_utilisation("MemTotal:       1000 kB\nMemFree: 1 kB\n"
                                       "MemAvailable:    250 kB\n"),
                   0.75);
  EXPECT_DOUBLE_EQ(meminfo_utilisation("MemAvailable: 0 kB\nMemTotal: 8 kB\n"), 1.0);
  EXPECT_DOUBLE_EQ(meminfo_utilisation("MemTotal: 8 kB\nMemAvailable: 80 kB\n"), 0.0);
  EXPECT_EQ(meminfo_utilisation("MemTotal: 8 kB\n"), -1);
  EXPECT_EQ(meminfo_utilisation("MemTotal: 0 kB\nMemAvailable: 0 kB\n"), -1);
  EXPECT_EQ(meminfo_utilisation("MemTotalx: 8 kB\nMemAvailable: 1 kB\n"), -1);
  EXPECT_EQ(meminfo_utilisation("MemTotal: lots\nMemAvailable: 1 kB\n"), -1);
  EXPECT_EQ(meminfo_utilisation(""), -1);
}

}  // namespace
}  // namespace uzram

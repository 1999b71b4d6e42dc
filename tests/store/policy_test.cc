// store/policy_test.cc - the policy engine's time-driven rounds on a store with a backing
// file, with the store's clock moved by the test (no real hours): when rounds run
// (interval, backoff), what they mark idle (the ChromeOS idle age against memory), what
// they write back in which order within the round's allowance and the day's budget,
// recompression before writeback, policy_stat and the log, and reset. Every block is read
// back against a model afterwards. Seeded.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "store/pp_test_helpers.h"

namespace uzram {
namespace {

using namespace uzram::testing;  // NOLINT

constexpr std::uint32_t kHour = 3600, kMin = 60;

class PolicyTest : public ::testing::Test {
 protected:
  void SetUp() override { rng_ = std::make_unique<Random>(test_seed()); }

  std::unique_ptr<Store> store(std::uint64_t blocks, std::vector<std::string> recomp = {}) {
    EXPECT_EQ(truncate(file_.path().c_str(), static_cast<off_t>(blocks * kBlockSize)), 0);
    StoreConfig c;
    c.backing = file_.path();
    c.blocks = blocks;
    c.recomp = std::move(recomp);
    return make_store(c);
  }
  static void policy(Store& s, const std::string& v) { write_attr_ok(s, "policy", v); }
  // Moves the store's clock and lets the worker do what is due.
  static void advance(Store& s, std::uint32_t seconds) {
    impl(&s)->advance_clock_for_testing(seconds);
    impl(&s)->policy_.run_now();
  }
  static PolicyStats stats(Store& s) { return impl(&s)->policy_.stats(); }
  static std::uint64_t wb(Store& s, WbKind k) { return stats(s).wb_kind[static_cast<unsigned>(k)]; }

  void write_huge(Store& s, std::uint64_t lo, std::uint64_t hi) {
    for (std::uint64_t i = lo; i < hi; i++) model_.write(s, i, random_page(*rng_));
  }
  void write_text(Store& s, std::uint64_t lo, std::uint64_t hi) {
    for (std::uint64_t i = lo; i < hi; i++) model_.write(s, i, text_page(*rng_));
  }
  void verify(Store& s, std::uint64_t blocks) {
    model_.verify(s, blocks);
    s.check_invariants();
  }

  TempFile file_;
  Model model_;
  std::unique_ptr<Random> rng_;
};

// Rounds every interval; a fixed idle age (idle_min = idle_max); passes in order.
constexpr const char* kHourly =
    "custom interval=1h backoff=10m idle_min=2h idle_max=2h round_min=4K round_max=4M day_max=0 "
    "order=huge_idle,idle,huge pressure=off";

TEST_F(PolicyTest, RoundsFollowTheClockAndTheOrderOfPasses) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(256);
  write_huge(*s, 0, 32);
  write_text(*s, 32, 96);
  policy(*s, kHourly);
  advance(*s, 30 * kMin);
  EXPECT_EQ(stats(*s).rounds, 0u);  // not due yet
  EXPECT_EQ(s->bd_stat().bd_count, 0u);
  // 1 h: nothing is 2 h old, so only the huge pass writes: every huge block.
  advance(*s, 30 * kMin);
  EXPECT_EQ(stats(*s).rounds, 1u);
  EXPECT_EQ(stats(*s).idle_marked, 0u);
  EXPECT_EQ(stats(*s).idle_age, 2u * kHour);
  EXPECT_EQ(wb(*s, WbKind::huge), 32u);
  EXPECT_EQ(wb(*s, WbKind::huge_idle) + wb(*s, WbKind::idle), 0u);
  EXPECT_EQ(s->bd_stat().bd_count, 32u);
  verify(*s, 96);  // reads every block: the text ones are touched at 1 h now
  for (std::uint64_t i = 64; i < 96; i++) model_.write(*s, i, text_page(*rng_));  // and these
  // 3 h: blocks last touched at 1 h are 2 h old: idle, written back by the idle pass.
  advance(*s, 2 * kHour);
  EXPECT_EQ(stats(*s).rounds, 2u);
  EXPECT_EQ(stats(*s).idle_marked, 64u);
  EXPECT_EQ(wb(*s, WbKind::idle), 64u);
  EXPECT_EQ(wb(*s, WbKind::huge), 32u);
  EXPECT_EQ(s->bd_stat().bd_count, 96u);
  EXPECT_EQ(s->mm_stat().compr_data_size, 0u);
  EXPECT_EQ(stats(*s).passes, 6u);  // three writeback passes a round
  EXPECT_EQ(stats(*s).pass_errors, 0u);
  verify(*s, 96);
}

TEST_F(PolicyTest, HugeIdleGoesFirstWithinTheAllowance) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(256);
  write_huge(*s, 0, 16);
  write_text(*s, 16, 64);
  // 64 of 256 blocks stored: a quarter of round_max (64 pages) is 16 blocks per round.
  policy(*s,
         "custom interval=1h idle_min=1h idle_max=1h round_min=4K round_max=256K "
         "order=huge_idle,idle pressure=off");
  advance(*s, kHour);
  EXPECT_EQ(wb(*s, WbKind::huge_idle), 16u);  // all of them: huge and idle
  EXPECT_EQ(wb(*s, WbKind::idle), 0u);        // nothing left of the allowance
  advance(*s, kHour);                         // 48 stored in RAM: 12 of them
  EXPECT_EQ(wb(*s, WbKind::idle), 12u);
  verify(*s, 64);
}

TEST_F(PolicyTest, BackoffCountsFromTheEndOfARound) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(256);
  write_huge(*s, 0, 8);
  policy(*s,
         "custom interval=1m backoff=10m idle_min=1d idle_max=1d round_max=4M order=huge "
         "pressure=off");
  advance(*s, kMin);
  EXPECT_EQ(stats(*s).rounds, 1u);
  advance(*s, kMin);  // the interval has passed, the backoff has not
  EXPECT_EQ(stats(*s).rounds, 1u);
  advance(*s, 8 * kMin);
  EXPECT_EQ(stats(*s).rounds, 1u);
  advance(*s, kMin);  // 10 min after the first round
  EXPECT_EQ(stats(*s).rounds, 2u);
  // Switched off and on: the clock starts again from then.
  policy(*s, "off");
  advance(*s, kHour);
  EXPECT_EQ(stats(*s).rounds, 2u);
  policy(*s, "custom interval=1h idle_min=1d idle_max=1d order=huge pressure=off");
  advance(*s, 59 * kMin);
  EXPECT_EQ(stats(*s).rounds, 2u);
  advance(*s, kMin);
  EXPECT_EQ(stats(*s).rounds, 3u);
  verify(*s, 8);
}

TEST_F(PolicyTest, DayBudgetSkipsRoundsUntilTwentyFourHoursPass) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(256);
  write_huge(*s, 0, 128);
  policy(*s,
         "custom interval=1h backoff=0 idle_min=1d idle_max=1d round_min=8K round_max=1M "
         "day_max=64K order=huge pressure=off");
  advance(*s, kHour);
  EXPECT_EQ(wb(*s, WbKind::huge), 16u);  // the whole day's budget
  EXPECT_EQ(stats(*s).rounds_skipped, 0u);
  for (int h = 2; h <= 24; h++) advance(*s, kHour);
  EXPECT_EQ(stats(*s).rounds, 24u);
  EXPECT_EQ(stats(*s).rounds_skipped, 23u);
  EXPECT_EQ(wb(*s, WbKind::huge), 16u);
  advance(*s, kHour);  // 25 h: the first round's pages have left the window
  EXPECT_EQ(wb(*s, WbKind::huge), 32u);
  EXPECT_EQ(stats(*s).rounds_skipped, 23u);
  verify(*s, 128);
}

TEST_F(PolicyTest, RoundMinAndAFullDeviceSkip) {
  SCOPED_TRACE(seed_trace(test_seed()));
  ASSERT_EQ(truncate(file_.path().c_str(), 4 * kBlockSize), 0);  // 3 usable blocks
  StoreConfig c;
  c.backing = file_.path();
  c.blocks = 256;
  auto s = make_store(c);
  write_huge(*s, 0, 64);
  // 64 of 256 stored: 1/4 of 64 pages is 16, under round_min (20): skipped.
  policy(*s,
         "custom interval=1h idle_min=1d idle_max=1d round_min=80K round_max=256K "
         "order=huge pressure=off");
  advance(*s, kHour);
  EXPECT_EQ(stats(*s).rounds_skipped, 1u);
  EXPECT_EQ(s->bd_stat().bd_count, 0u);
  // round_min 8K: capped by the 3 free blocks, over round_min 2: 3 written back.
  policy(*s,
         "custom interval=1h idle_min=1d idle_max=1d round_min=8K round_max=256K "
         "order=huge pressure=off");
  advance(*s, kHour);
  EXPECT_EQ(s->bd_stat().bd_count, 3u);
  advance(*s, kHour);  // full: skipped, no pass run
  EXPECT_EQ(stats(*s).rounds_skipped, 2u);
  EXPECT_EQ(stats(*s).pass_errors, 0u);
  verify(*s, 64);
}

TEST_F(PolicyTest, IdleAgeFollowsMemoryUtilisation) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(1024);
  write_text(*s, 0, 256);
  policy(*s,
         "custom interval=1h idle_min=20h idle_max=25h round_max=4M order=none "
         "pressure=off");
  const std::uint64_t pool = s->mm_stat().mem_used_total / kBlockSize;
  write_attr_ok(*s, "mem_limit", std::to_string(pool * 100 * kBlockSize));  // 1 % used
  advance(*s, 21 * kHour);
  EXPECT_EQ(stats(*s).rounds, 1u);
  const std::uint64_t roomy = stats(*s).idle_age;
  EXPECT_NEAR(static_cast<double>(roomy), 20 * kHour + 5 * kHour * std::exp(-0.05), 60);
  EXPECT_EQ(stats(*s).idle_marked, 0u);  // 21 h old is not idle with memory to spare
  write_attr_ok(*s, "mem_limit", std::to_string(pool * kBlockSize));  // full
  advance(*s, kHour);
  EXPECT_EQ(stats(*s).idle_age, 20u * kHour + 121);
  EXPECT_EQ(stats(*s).idle_marked, 256u);  // 22 h old is
  EXPECT_EQ(s->bd_stat().bd_count, 0u);    // order=none: marking only
  verify(*s, 256);
}

TEST_F(PolicyTest, RecompressionBeforeWriteback) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(256, {"zstd"});
  for (std::uint64_t i = 0; i < 32; i++) model_.write(*s, i, nibble_page(*rng_));  // huge in lz4
  ASSERT_EQ(s->mm_stat().huge_pages, 32u);
  policy(*s,
         "custom interval=1h idle_min=1h idle_max=1h round_max=4M recompress=huge "
         "order=huge_idle,idle pressure=off");
  advance(*s, kHour);
  const PolicyStats st = stats(*s);
  EXPECT_EQ(st.recompressed, 32u);  // zstd gets them to about half a page
  EXPECT_GT(st.recomp_saved, 32u * 1024);
  EXPECT_EQ(s->mm_stat().huge_pages, 0u);
  EXPECT_EQ(st.wb_kind[static_cast<unsigned>(WbKind::huge_idle)], 0u);  // none huge any more
  EXPECT_EQ(st.wb_kind[static_cast<unsigned>(WbKind::idle)], 32u);      // still idle: written back
  EXPECT_EQ(st.passes, 3u);
  verify(*s, 32);
}

TEST_F(PolicyTest, StatLineAndLog) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(256);
  std::mutex mu;
  std::vector<std::string> lines;
  s->set_log_hook([&](std::string_view l) {
    std::lock_guard g(mu);
    lines.emplace_back(l);
  });
  write_huge(*s, 0, 8);
  policy(*s,
         "custom interval=1h idle_min=1d idle_max=1d round_max=4M day_max=16K order=huge "
         "pressure=off");
  advance(*s, kHour);
  advance(*s, kHour);
  // rounds skipped idle recomp saved | huge_idle idle huge incompr pressure bytes | passes
  // errors triggers waited wait_ms failed idle_age
  EXPECT_EQ(s->read_attr("policy_stat").value(),
            "       2        1        0        0        0        0        0        4        0"
            "        0    16384        1        0        0        0        0        0    86400\n");
  s->set_log_hook(nullptr);
  std::lock_guard g(mu);
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[0].rfind("policy: round 1: memory ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("wrote back 4"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[1], "policy: round 2: no writeback (day budget spent)");
}

TEST_F(PolicyTest, ResetTurnsItOffAndClearsItsCounters) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(256);
  write_huge(*s, 0, 8);
  policy(*s, "custom interval=1h idle_min=1h idle_max=1h order=huge pressure=off");
  advance(*s, kHour);
  EXPECT_EQ(stats(*s).rounds, 1u);
  write_attr_ok(*s, "reset", "1");
  EXPECT_EQ(s->read_attr("policy").value(), "off\n");
  EXPECT_EQ(stats(*s).rounds, 0u);
  EXPECT_EQ(stats(*s).wb_kind[static_cast<unsigned>(WbKind::huge)], 0u);
  // Initialised again, with the policy set before disksize: it runs from init.
  ASSERT_EQ(truncate(file_.path().c_str(), 256 * kBlockSize), 0);
  write_attr_ok(*s, "backing_dev", file_.path());
  write_attr_ok(*s, "policy",
                "custom interval=1h idle_min=1h idle_max=1h round_max=4M order=huge pressure=off");
  write_attr_ok(*s, "disksize", "1M");
  model_ = Model{};
  write_huge(*s, 0, 4);
  impl(s.get())->policy_.run_now();  // the worker anchors the clock at its first run
  advance(*s, kHour);
  EXPECT_EQ(stats(*s).rounds, 1u);
  EXPECT_EQ(s->bd_stat().bd_count, 4u);
  verify(*s, 8);
}

TEST_F(PolicyTest, AManualPassMeanwhileIsBusyNotBroken) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(256);
  write_huge(*s, 0, 16);
  policy(*s, "custom interval=1h idle_min=1h idle_max=1h round_max=4M order=huge pressure=off");
  // Hold the one-pass guard as a running `writeback` would.
  StoreImpl* si = impl(s.get());
  ASSERT_FALSE(si->pp_in_progress_.exchange(true));
  advance(*s, kHour);
  EXPECT_EQ(stats(*s).rounds, 1u);
  EXPECT_EQ(stats(*s).pass_errors, 1u);  // busy: the round's later passes are not tried
  EXPECT_EQ(s->bd_stat().bd_count, 0u);
  si->pp_in_progress_.store(false);
  advance(*s, kHour);
  EXPECT_EQ(s->bd_stat().bd_count, 16u);
  verify(*s, 16);
}

}  // namespace
}  // namespace uzram

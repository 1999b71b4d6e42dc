// store/policy_pressure_test.cc - the policy's memory reaction on a store with a backing
// file and a mem_limit: it keeps the pool under the high watermark by writing back the
// coldest blocks; a write that meets mem_limit waits for the room and succeeds, where the
// same writes without the policy fail; when no room can be made the waits are bounded and
// counted and the old contents stay; and writers, readers, the worker, policy and limit
// changes and resets run together (TSan). Seeded; every block is read back against a model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include "store/pp_test_helpers.h"

namespace uzram {
namespace {

using namespace uzram::testing;  // NOLINT
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kLimitPages = 256;  // 1 MiB of pool
constexpr std::uint64_t kSlack = 16;        // a waiting write's object may open a zspage

class PolicyPressureTest : public ::testing::Test {
 protected:
  void SetUp() override { rng_ = std::make_unique<Random>(test_seed()); }

  std::unique_ptr<Store> store(std::uint64_t blocks, std::uint64_t backing_blocks) {
    EXPECT_EQ(truncate(file_.path().c_str(), static_cast<off_t>(backing_blocks * kBlockSize)), 0);
    StoreConfig c;
    c.backing = file_.path();
    c.blocks = blocks;
    auto s = make_store(c);
    write_attr_ok(*s, "mem_limit", std::to_string(kLimitPages * kBlockSize));
    return s;
  }
  static PolicyStats stats(Store& s) { return impl(&s)->policy_.stats(); }
  static std::uint64_t pool_pages(Store& s) { return s.mm_stat().mem_used_total / kBlockSize; }

  // Writes text blocks [0, n), moving the store's clock 10 s ahead every 128 blocks (so
  // that they have distinct ages); returns how many failed (their old contents stay).
  std::uint64_t fill(Store& s, std::uint64_t n) {
    std::uint64_t failed = 0;
    for (std::uint64_t i = 0; i < n; i++) {
      if (i % 128 == 127) impl(&s)->advance_clock_for_testing(10);
      const Page p = text_page(*rng_);
      auto r = s.write(i, p.data());
      if (r) {
        model_.set(i, p);
      } else {
        EXPECT_EQ(r.error(), Errc::limit_reached) << i;
        failed++;
      }
    }
    return failed;
  }

  TempFile file_;
  Model model_;
  std::unique_ptr<Random> rng_;
};

TEST_F(PolicyPressureTest, ReactionKeepsThePoolUnderTheWatermark) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(2048, 2048);
  write_attr_ok(*s, "policy", "custom interval=0 high=90 low=60 wait=30s pressure=writeback");
  EXPECT_EQ(fill(*s, 2048), 0u);  // ~3 MiB compressed through a 1 MiB pool
  impl(s.get())->policy_.run_now();
  const PolicyStats st = stats(*s);
  EXPECT_GT(st.triggers, 0u);
  EXPECT_GT(st.wb_pressure, 0u);
  EXPECT_EQ(st.limit_failed, 0u);
  EXPECT_EQ(s->io_stat().failed_writes, 0u);
  EXPECT_LE(pool_pages(*s), kLimitPages * 90 / 100);
  EXPECT_LE(s->mm_stat().mem_used_max / kBlockSize, kLimitPages + kSlack);
  EXPECT_EQ(s->bd_stat().bd_count, st.wb_pressure);
  // The oldest blocks went first: the last ones written are still in RAM.
  EXPECT_EQ(slot_flags(*s, 2047) & slotf::kWb, 0u);
  EXPECT_NE(slot_flags(*s, 0) & slotf::kWb, 0u);
  model_.verify(*s, 2048);
  s->check_invariants();
}

TEST_F(PolicyPressureTest, WithoutThePolicyTheSameWritesFail) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(2048, 2048);
  const std::uint64_t failed = fill(*s, 2048);
  EXPECT_GT(failed, 1000u);
  EXPECT_EQ(s->io_stat().failed_writes, failed);
  EXPECT_EQ(s->bd_stat().bd_count, 0u);
  model_.verify(*s, 2048);
  s->check_invariants();
}

// A policy switched on and then off again leaves the store as the kernel's: writes at
// mem_limit fail at once (nothing waits, nothing is counted as the policy's), nothing is
// written back by a reaction or by a round however far the clock moves.
TEST_F(PolicyPressureTest, OffAgainIsTheOldBehaviour) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(2048, 2048);
  write_attr_ok(*s, "policy", "custom interval=60 backoff=0 idle_min=1 idle_max=2 wait=30s");
  write_attr_ok(*s, "policy", "off");
  EXPECT_EQ(s->read_attr("policy").value(), "off\n");
  const auto t0 = Clock::now();
  const std::uint64_t failed = fill(*s, 2048);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(30));  // no write waited 30 s
  EXPECT_GT(failed, 1000u);
  EXPECT_EQ(s->io_stat().failed_writes, failed);
  impl(s.get())->advance_clock_for_testing(2 * 86400);
  impl(s.get())->policy_.run_now();
  const PolicyStats st = stats(*s);
  EXPECT_EQ(st.rounds, 0u);
  EXPECT_EQ(st.triggers, 0u);
  EXPECT_EQ(st.waited, 0u);
  EXPECT_EQ(st.limit_failed, 0u);
  EXPECT_EQ(st.passes, 0u);
  EXPECT_EQ(s->bd_stat().bd_count, 0u);
  EXPECT_EQ(s->bd_stat().bd_writes, 0u);
  EXPECT_LE(s->mm_stat().mem_used_max / kBlockSize, kLimitPages + kSlack);
  model_.verify(*s, 2048);
  s->check_invariants();
}

TEST_F(PolicyPressureTest, AWriteAtTheLimitWaitsThenSucceeds) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(2048, 2048);
  // high=100: the worker reacts only when a write meets mem_limit; that write waits.
  write_attr_ok(*s, "policy", "custom interval=0 high=100 low=50 wait=30s");
  EXPECT_EQ(fill(*s, 1024), 0u);
  const PolicyStats st = stats(*s);
  EXPECT_GT(st.waited, 0u);
  EXPECT_GT(st.triggers, 0u);
  EXPECT_EQ(st.limit_failed, 0u);
  EXPECT_GT(s->bd_stat().bd_count, 0u);
  EXPECT_LE(s->mm_stat().mem_used_max / kBlockSize, kLimitPages + kSlack);
  model_.verify(*s, 1024);
  s->check_invariants();
}

TEST_F(PolicyPressureTest, NoRoomToMakeMeansBoundedCountedFailures) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(2048, 8);  // 7 usable backing blocks: full almost at once
  write_attr_ok(*s, "policy", "custom interval=0 high=90 low=60 wait=300ms");
  std::uint64_t failed = 0, slowest_ms = 0;
  for (std::uint64_t i = 0; i < 1024; i++) {
    const Page p = text_page(*rng_);
    const auto t0 = Clock::now();
    auto r = s->write(i, p.data());
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    slowest_ms = std::max<std::uint64_t>(slowest_ms, static_cast<std::uint64_t>(ms.count()));
    if (r) {
      model_.set(i, p);
    } else {
      ASSERT_EQ(r.error(), Errc::limit_reached);
      failed++;
    }
  }
  const PolicyStats st = stats(*s);
  EXPECT_GT(failed, 0u);
  EXPECT_EQ(st.limit_failed, failed);  // every failure at the limit is counted
  EXPECT_GT(st.waited, 0u);
  EXPECT_LE(st.waited, failed + 16);    // after the first, failures are told at once
  EXPECT_LT(slowest_ms, 300u + 5000u);  // bounded by wait (and a busy machine)
  EXPECT_EQ(s->bd_stat().bd_count, 7u);
  // An overwrite that fails keeps the old contents.
  const Page p = text_page(*rng_);
  if (s->write(0, p.data())) model_.set(0, p);
  model_.verify(*s, 1024);
  s->check_invariants();
}

TEST_F(PolicyPressureTest, WaitZeroFailsAtOnceButTheReactionStillRuns) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(2048, 2048);
  write_attr_ok(*s, "policy", "custom interval=0 high=80 low=50 wait=0");
  const std::uint64_t failed = fill(*s, 2048);
  impl(s.get())->policy_.run_now();
  const PolicyStats st = stats(*s);
  EXPECT_EQ(st.waited, 0u);
  EXPECT_EQ(st.limit_failed, failed);
  EXPECT_GT(st.wb_pressure, 0u);
  EXPECT_LE(pool_pages(*s), kLimitPages * 80 / 100);
  model_.verify(*s, 2048);
  s->check_invariants();
}

TEST_F(PolicyPressureTest, WaitingWritesProceedOnceTheReactionCan) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(2048, 2048);
  // Hold the one-pass guard: the reaction can do nothing but retry.
  StoreImpl* si = impl(s.get());
  write_attr_ok(*s, "policy", "custom interval=0 high=100 low=50 wait=30s");
  ASSERT_FALSE(si->pp_in_progress_.exchange(true));
  std::atomic<bool> done{false};
  std::thread writer([&] {
    EXPECT_EQ(fill(*s, 1024), 0u);
    done = true;
  });
  while (stats(*s).waited == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(done.load());
  si->pp_in_progress_.store(false);  // now the reaction can write back
  writer.join();
  EXPECT_EQ(stats(*s).limit_failed, 0u);
  model_.verify(*s, 1024);
  s->check_invariants();
}

// Writers on their own ranges, a reader, the worker (reacting and running 1-second rounds
// in real time), and policy and mem_limit changes, together.
TEST_F(PolicyPressureTest, WritersReadersWorkerAndChangesTogether) {
  SCOPED_TRACE(seed_trace(test_seed()));
  constexpr unsigned kWriters = 3;
  constexpr std::uint64_t kRange = 512;
  auto s = store(kWriters * kRange, kWriters * kRange);
  write_attr_ok(*s, "policy", "custom interval=1 backoff=0 idle_min=1 idle_max=2 wait=10s");
  std::atomic<bool> stop{false};
  std::vector<std::map<std::uint64_t, Page>> written(kWriters);  // each writer's own
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kWriters; t++) {
    threads.emplace_back([&, t] {
      Random rng(test_seed() + t);
      while (!stop.load()) {
        const std::uint64_t i = t * kRange + rng.uniform(kRange);
        const Page p = rng.one_in(4) ? random_page(rng) : text_page(rng);
        if (s->write(i, p.data())) written[t][i] = p;
      }
    });
  }
  threads.emplace_back([&] {
    Random rng(test_seed() + 99);
    Page got;
    while (!stop.load()) {
      const auto r = s->read(rng.uniform(kWriters * kRange), got.data());
      EXPECT_TRUE(r.has_value());
    }
  });
  const char* const policies[] = {
      "custom interval=1 backoff=0 idle_min=1 idle_max=2 wait=10s",
      "custom interval=0 high=70 low=40 wait=10s", "chromeos",
      "custom interval=1 order=huge,idle idle_min=0 idle_max=1 high=95 low=90 wait=10s"};
  for (int i = 0; i < 40; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    write_attr_ok(*s, "policy", policies[i % 4]);
    write_attr_ok(*s, "mem_limit", std::to_string((kLimitPages + (i % 3) * 128) * kBlockSize));
    EXPECT_TRUE(s->read_attr("policy_stat").has_value());
    if (i % 10 == 9) write_attr_ok(*s, "idle", "all");
  }
  stop = true;
  for (auto& th : threads) th.join();
  write_attr_ok(*s, "policy", "off");
  impl(s.get())->policy_.run_now();
  for (const auto& w : written) {
    for (const auto& [i, p] : w) model_.set(i, p);
  }
  model_.verify(*s, kWriters * kRange);
  s->check_invariants();
  EXPECT_GT(stats(*s).triggers, 0u);
}

// Writers waiting at the limit while the store is reset and initialised again: the reset
// waits for them (bounded), the worker stops cleanly, nothing deadlocks or leaks.
TEST_F(PolicyPressureTest, ResetWhileWritesWaitAndTheWorkerRuns) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(1024, 1024);
  const std::string policy =
      "custom interval=1 backoff=0 idle_min=0 idle_max=1 high=60 low=30 wait=200ms";
  write_attr_ok(*s, "policy", policy);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ok{0};
  std::vector<std::thread> writers;
  for (unsigned t = 0; t < 3; t++) {
    writers.emplace_back([&, t] {
      Random rng(test_seed() + t);
      while (!stop.load()) {
        const Page p = text_page(rng);
        if (s->write(rng.uniform(1024), p.data())) ok++;  // not_initialized during resets
      }
    });
  }
  for (int i = 0; i < 8; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    write_attr_ok(*s, "reset", "1");
    EXPECT_EQ(s->read_attr("policy").value(), "off\n");
    write_attr_ok(*s, "backing_dev", file_.path());
    write_attr_ok(*s, "policy", policy);
    write_attr_ok(*s, "disksize", std::to_string(1024 * kBlockSize));
    write_attr_ok(*s, "mem_limit", std::to_string(kLimitPages * kBlockSize));
  }
  stop = true;
  for (auto& th : writers) th.join();
  EXPECT_GT(ok.load(), 0u);
  impl(s.get())->policy_.run_now();
  s->check_invariants();
  s.reset();  // destruction with the worker idle
}

}  // namespace
}  // namespace uzram

// Stress (not a benchmark): worker threads alloc / write / read-and-verify (sleeping at
// random while read-locked) / overwrite / free / free_batch, while a compactor and a
// migrator run (and, with a short decay_ms, the idle-frame decay returns frames).
// Every object is checksummed; at the end nothing may leak. Duration: UZRAM_STRESS_MS
// (default 1500 ms per configuration), threads: UZRAM_STRESS_THREADS (default 4).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "pool/pool_internal.h"
#include "stress/stress_util.h"
#include "util/random.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

using testing::check_pattern;
using testing::env_long;
using testing::fill_pattern;

struct Obj {
  Handle h;
  std::uint32_t size;
  std::uint64_t seed;
};

struct Counters {
  std::atomic<long> ops{0}, sleeps{0}, compactions{0}, migrations{0}, batched{0};
};

void worker(Pool& pool, std::uint64_t seed, const std::atomic<bool>& stop, Counters& n,
            std::vector<Obj>& objs) {
  Random rng(seed);
  unsigned char buf[4096], copy[4096];
  while (!stop.load(std::memory_order_relaxed)) {
    const unsigned op = static_cast<unsigned>(rng.uniform(100));
    if ((op < 30 && objs.size() < 4000) || objs.empty()) {
      const auto size = static_cast<std::uint32_t>(rng.one_in(8) ? rng.range(1, 64) : rng.range(1, 4096));
      auto h = pool.alloc(size);
      ASSERT_TRUE(h) << h.error().message();
      const std::uint64_t s = rng.next();
      fill_pattern(buf, size, s);
      pool.write(*h, buf, size);
      objs.push_back({*h, size, s});
    } else if (op < 70) {
      const Obj& o = objs[rng.uniform(objs.size())];
      const void* p = pool.read_begin(o.h, copy);
      if (rng.one_in(64)) {  // a reader that sleeps holding the zspage read lock
        std::this_thread::sleep_for(std::chrono::microseconds(rng.range(50, 500)));
        n.sleeps.fetch_add(1, std::memory_order_relaxed);
      }
      ASSERT_TRUE(check_pattern(p, o.size, o.seed)) << "corrupt object, size " << o.size;
      pool.read_end(o.h, p);
    } else if (op < 85) {
      Obj& o = objs[rng.uniform(objs.size())];
      o.seed = rng.next();
      fill_pattern(buf, o.size, o.seed);
      pool.write(o.h, buf, o.size);
    } else if (op < 93) {
      const std::size_t i = rng.uniform(objs.size());
      pool.free(objs[i].h);
      objs[i] = objs.back();
      objs.pop_back();
    } else {  // a batch of up to 32 objects, as a discard would free them
      Handle batch[32];
      const std::size_t k = rng.range(1, std::min<std::size_t>(32, objs.size()));
      for (std::size_t j = 0; j < k; j++) {
        const std::size_t i = rng.uniform(objs.size());
        batch[j] = objs[i].h;
        objs[i] = objs.back();
        objs.pop_back();
      }
      pool.free_batch(batch, k);
      n.batched.fetch_add(static_cast<long>(k), std::memory_order_relaxed);
    }
    n.ops.fetch_add(1, std::memory_order_relaxed);
  }
}

void run_stress(const PoolOptions& options, TranslationMode mode = TranslationMode::validated) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay with UZRAM_TEST_SEED)");
  auto pool = std::move(create_pool(options, mode).value());
  const int threads = static_cast<int>(env_long("UZRAM_STRESS_THREADS", 4));
  const long ms = env_long("UZRAM_STRESS_MS", 1500);
  std::atomic<bool> stop{false};
  Counters n;
  std::vector<std::vector<Obj>> objs(threads);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++) {
    ts.emplace_back([&, t] { worker(*pool, seed + t, stop, n, objs[t]); });
  }
  ts.emplace_back([&] {  // compactor
    while (!stop.load()) {
      pool->compact();
      n.compactions.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  ts.emplace_back([&] {  // migrator
    Random rng(seed ^ 0xabcdef);
    while (!stop.load()) {
      const auto frames = pool->stats().arena_frames;
      if (frames && migrate_frame(*pool, static_cast<std::uint32_t>(rng.uniform(frames)))) {
        n.migrations.fetch_add(1);
      }
      if (rng.one_in(200)) (void)pack(*pool, 8);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  stop.store(true);
  for (auto& t : ts) t.join();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  pool->flush_deferred();
  pool->check_invariants();
  unsigned char copy[4096];
  for (auto& v : objs) {
    std::vector<Handle> rest;
    for (const Obj& o : v) {
      const void* p = pool->read_begin(o.h, copy);
      ASSERT_TRUE(check_pattern(p, o.size, o.seed));
      pool->read_end(o.h, p);
      rest.push_back(o.h);
    }
    pool->free_batch(rest.data(), rest.size());
  }
  pool->flush_deferred();
  pool->check_invariants();
  const PoolStats s = pool->stats();
  EXPECT_EQ(s.total_pages, 0u) << "frames leaked";
  EXPECT_EQ(s.objs_used, 0u);
  std::printf(
      "stress: %ld ops, %ld batch-freed, %ld sleeping reads, %ld compactions, "
      "%ld migrations (%llu busy), %llu deferred frees, %llu frames compacted, "
      "%llu frames returned\n",
      n.ops.load(), n.batched.load(), n.sleeps.load(), n.compactions.load(), n.migrations.load(),
      static_cast<unsigned long long>(s.migrate_busy),
      static_cast<unsigned long long>(s.deferred_frees),
      static_cast<unsigned long long>(s.pages_compacted),
      static_cast<unsigned long long>(s.frames_returned));
  EXPECT_GT(n.migrations.load(), 0);
  EXPECT_GT(n.batched.load(), 0);
}

TEST(StressTest, ValidatedTranslation) { run_stress({}); }

TEST(StressTest, KernelRwlockTranslation) { run_stress({}, TranslationMode::kernel_rwlock); }

// The decay returns idle frames every few milliseconds while workers allocate them.
TEST(StressTest, ShortDecay) {
  PoolOptions o;
  o.decay_ms = 16;
  run_stress(o);
}

TEST(StressTest, AutoCompactionBackground) {
  PoolOptions o;
  o.auto_compact_frames = 8;
  o.chain_size = 4;
  run_stress(o);
}

TEST(StressTest, AutoCompactionInline) {
  PoolOptions o;
  o.auto_compact_frames = 8;
  o.background_compact = false;
  o.chain_size = 16;
  run_stress(o);
}

}  // namespace
}  // namespace uzram

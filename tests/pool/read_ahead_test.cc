// Read-ahead for reads in slot order (pool/read_ahead.h, docs/benchmarks.md): the
// per-thread stream detector, the first-in-first-out reuse of spare descriptors that the
// next-zspage hint relies on, and reads that stay intact whatever the prefetches guess -
// in fill order, in random order, after frames moved, and while a migrator moves them.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "pool/read_ahead.h"
#include "testing/pool_helpers.h"
#include "testing/seed.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

using testing::make_pool;

TEST(ReadStreamsTest, FollowsTheNextSlotOfTheSameZspageAndClass) {
  ReadStreams::reset();
  EXPECT_FALSE(ReadStreams::follows(10, 7, 0));
  EXPECT_TRUE(ReadStreams::follows(10, 7, 1));
  EXPECT_TRUE(ReadStreams::follows(10, 7, 2));
  // Another class in between does not break the stream of class 10.
  EXPECT_FALSE(ReadStreams::follows(11, 3, 5));
  EXPECT_TRUE(ReadStreams::follows(10, 7, 3));
  EXPECT_TRUE(ReadStreams::follows(11, 3, 6));
  // Not the next slot, or another zspage: no stream.
  EXPECT_FALSE(ReadStreams::follows(10, 7, 5));
  EXPECT_FALSE(ReadStreams::follows(10, 7, 4));
  EXPECT_FALSE(ReadStreams::follows(10, 8, 5));
  // The first slot of a zspage never follows (the hint covers it, not the detector).
  EXPECT_FALSE(ReadStreams::follows(10, 9, 0));
  // Per thread: another thread's reads neither continue nor break this one's stream.
  std::thread([] {
    EXPECT_FALSE(ReadStreams::follows(10, 9, 1));
    EXPECT_TRUE(ReadStreams::follows(10, 9, 2));
  }).join();
  EXPECT_TRUE(ReadStreams::follows(10, 9, 1));
}

std::vector<unsigned char> bytes_of(std::size_t size, std::uint64_t seed) {
  std::vector<unsigned char> b(size);
  Random rng(seed);
  testing::fill_random(rng, b.data(), size);
  return b;
}

struct Objects {
  std::vector<Handle> handles;
  std::vector<std::size_t> sizes;
};

// Stores n objects of sizes near 1.5 KiB (several classes, many straddling a frame
// boundary), object i with the bytes bytes_of(size, seed + i).
Objects fill(Pool& pool, std::size_t n, std::uint64_t seed) {
  Objects o;
  Random rng(seed);
  for (std::size_t i = 0; i < n; i++) {
    const std::size_t size = 1000 + rng.uniform(1200);
    auto h = pool.alloc(size);
    EXPECT_TRUE(h.has_value());
    if (!h) break;
    const auto b = bytes_of(size, seed + i);
    pool.write(*h, b.data(), size);
    o.handles.push_back(*h);
    o.sizes.push_back(size);
  }
  return o;
}

// Reads every object in `order` and compares it with what fill() stored.
void expect_intact(Pool& pool, const Objects& o, const std::vector<std::size_t>& order,
                   std::uint64_t seed) {
  std::vector<unsigned char> local(kPageSize);
  for (std::size_t i : order) {
    const void* p = pool.read_begin(o.handles[i], local.data());
    const auto want = bytes_of(o.sizes[i], seed + i);
    const bool same = std::memcmp(p, want.data(), want.size()) == 0;
    pool.read_end(o.handles[i], p);
    ASSERT_TRUE(same) << "object " << i << " (" << o.sizes[i] << " bytes)";
  }
}

std::vector<std::size_t> in_order(std::size_t n) {
  std::vector<std::size_t> v(n);
  for (std::size_t i = 0; i < n; i++) v[i] = i;
  return v;
}

class ReadAheadTest : public ::testing::TestWithParam<TranslationMode> {};

// A class's emptied zspages are refilled in the order they emptied, so a fill-free-refill
// cycle hands out the same handle indexes in the same order (the generations differ): the
// next object of a class in fill order keeps the next index, across zspages too.
TEST_P(ReadAheadTest, SparesAreReusedInTheOrderTheyEmptied) {
  auto pool = make_pool(8, GetParam());
  ASSERT_NE(pool, nullptr);
  // 1560 bytes -> the 1568 class: 13 objects in 5 frames; 6.5 zspages.
  constexpr std::size_t kN = 85;
  std::vector<std::uint32_t> first;
  std::vector<Handle> hs;
  for (std::size_t i = 0; i < kN; i++) hs.push_back(*pool->alloc(1560));
  for (Handle h : hs) first.push_back(static_cast<std::uint32_t>(h));
  for (std::size_t round = 0; round < 3; round++) {
    for (Handle h : hs) pool->free(h);  // in fill order
    pool->check_invariants();
    for (std::size_t i = 0; i < kN; i++) {
      auto h = pool->alloc(1560);
      ASSERT_TRUE(h.has_value());
      hs[i] = *h;
      EXPECT_EQ(static_cast<std::uint32_t>(*h), first[i]) << "round " << round << " object " << i;
    }
    pool->check_invariants();
  }
  for (Handle h : hs) pool->free(h);
}

// Reads in fill order (the read-ahead and the next-zspage hint fire) and in random order
// (they do not) return the stored bytes through fill-free-refill cycles and after frames
// moved, which makes straddling objects copy and leaves the hints stale.
TEST_P(ReadAheadTest, ReadsInAnyOrderStayIntact) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  auto pool = make_pool(8, GetParam());
  ASSERT_NE(pool, nullptr);
  constexpr std::size_t kN = 3000;
  Random rng(seed);
  for (int round = 0; round < 3; round++) {
    const std::uint64_t s = seed + 100000 * round;
    Objects o = fill(*pool, kN, s);
    ASSERT_EQ(o.handles.size(), kN);
    ASSERT_NO_FATAL_FAILURE(expect_intact(*pool, o, in_order(kN), s));
    // Move a third of the frames somewhere else, then read again both ways.
    const std::size_t frames = pool->stats().arena_frames;
    for (std::size_t f = 0; f < frames; f += 3) (void)migrate_frame(*pool, f);
    pool->check_invariants();
    ASSERT_NO_FATAL_FAILURE(expect_intact(*pool, o, in_order(kN), s));
    std::vector<std::size_t> order = in_order(kN);
    for (std::size_t i = kN - 1; i > 0; i--) std::swap(order[i], order[rng.uniform(i + 1)]);
    ASSERT_NO_FATAL_FAILURE(expect_intact(*pool, o, order, s));
    for (Handle h : o.handles) pool->free(h);
    pool->check_invariants();
  }
}

// A reader walks the objects in fill order (so it reads descriptors and frame ids of
// zspages it holds no lock on, as hints) while another thread migrates frames and frees
// and refills the objects of another range: every read is intact (TSan checks the hints).
TEST_P(ReadAheadTest, SequentialReaderWhileFramesMove) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  auto pool = make_pool(8, GetParam());
  ASSERT_NE(pool, nullptr);
  constexpr std::size_t kN = 1500;
  const Objects o = fill(*pool, kN, seed);
  ASSERT_EQ(o.handles.size(), kN);
  std::atomic<bool> stop{false};
  std::thread mover([&] {
    Random rng(seed + 1);
    while (!stop.load(std::memory_order_relaxed)) {
      Objects churn = fill(*pool, 200, seed + 7);
      const std::size_t frames = pool->stats().arena_frames;
      for (int k = 0; k < 50; k++) (void)migrate_frame(*pool, rng.uniform(frames));
      for (Handle h : churn.handles) pool->free(h);
    }
  });
  for (int pass = 0; pass < 10; pass++) {
    ASSERT_NO_FATAL_FAILURE(expect_intact(*pool, o, in_order(kN), seed));
  }
  stop.store(true, std::memory_order_relaxed);
  mover.join();
  pool->check_invariants();
  for (Handle h : o.handles) pool->free(h);
}

INSTANTIATE_TEST_SUITE_P(Modes, ReadAheadTest,
                         ::testing::Values(TranslationMode::validated,
                                           TranslationMode::kernel_rwlock),
                         [](const auto& i) { return std::string(testing::mode_name(i.param)); });

}  // namespace
}  // namespace uzram

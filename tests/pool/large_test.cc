// Large objects (PoolOptions::max_object_size > 4096, docs/units.md): options, the
// run + tail layout at its boundaries, and randomized operation sequences (small and large
// objects mixed, partial writes, free_batch, compaction, migration, pack) checked against a
// reference model with check_invariants() after every mutation. Seeded: the seed is
// printed, UZRAM_TEST_SEED replays it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "pool/geometry.h"
#include "pool/pool_internal.h"
#include "testing/seed.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

std::unique_ptr<Pool> make_large_pool(std::size_t max_object_size, unsigned chain = 8,
                                      TranslationMode mode = TranslationMode::validated) {
  PoolOptions o;
  o.name = "large";
  o.chain_size = chain;
  o.max_bytes = std::size_t{1} << 30;
  o.max_object_size = max_object_size;
  auto r = create_pool(o, mode);
  EXPECT_TRUE(r.has_value()) << r.error().message();
  return r ? std::move(r).value() : nullptr;
}

void fill(Random& rng, std::vector<unsigned char>& b, std::size_t from, std::size_t len) {
  for (std::size_t i = from; i < from + len; i++)
    b[i] = static_cast<unsigned char>(rng.uniform(256));
}

void expect_bytes(Pool& pool, Handle h, const std::vector<unsigned char>& want) {
  ASSERT_EQ(pool.object_size(h), want.size());
  std::vector<unsigned char> local(kMaxLargeObjectSize);
  const void* p = pool.read_begin(h, local.data());
  const int cmp = std::memcmp(p, want.data(), want.size());
  pool.read_end(h, p);
  ASSERT_EQ(cmp, 0) << "handle " << static_cast<std::uint64_t>(h) << " (" << want.size()
                    << " bytes) differs from the model";
}

TEST(LargeObjectTest, OptionLimits) {
  for (std::size_t bad :
       {std::size_t{0}, std::size_t{4095}, std::size_t{65537}, std::size_t{1} << 20}) {
    PoolOptions o;
    o.max_object_size = bad;
    auto r = Pool::create(o);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error(), Errc::invalid_argument);
  }
  auto def = Pool::create();
  ASSERT_TRUE(def.has_value());
  Pool& p = **def;
  EXPECT_EQ(p.max_object_size(), 4096u);
  EXPECT_EQ(p.huge_object_size(), p.huge_class_size());
  auto r = p.alloc(4097);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Errc::too_large);

  auto big = make_large_pool(32768);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(big->max_object_size(), 32768u);
  EXPECT_EQ(big->huge_object_size(), 8 * big->huge_class_size());  // 29000 at chain 8
  EXPECT_EQ(big->alloc(32769).error(), Errc::too_large);
  EXPECT_EQ(big->alloc(0).error(), Errc::invalid_argument);
}

// Every boundary of split_large: a tail of 1 byte, the largest tail, one byte more (no
// tail, one more frame), whole frames, the largest object; frames and classes accounted.
TEST(LargeObjectTest, LayoutBoundaries) {
  for (unsigned chain : {4u, 8u, 16u}) {
    SCOPED_TRACE(::testing::Message() << "chain " << chain);
    auto pool = make_large_pool(65536, chain);
    ASSERT_NE(pool, nullptr);
    const std::size_t tmax = Geometry(chain).max_tail();
    Random rng(chain);
    std::vector<std::size_t> sizes = {4097,      4096 + tmax, 4096 + tmax + 1,
                                      8192,      8193,        32768,
                                      65536 - 1, 65536,       12 * 4096 + tmax + 1};
    std::vector<Handle> hs;
    std::vector<std::vector<unsigned char>> data;
    std::size_t frames = 0;
    for (std::size_t size : sizes) {
      auto h = pool->alloc(size);
      ASSERT_TRUE(h.has_value()) << size << ": " << h.error().message();
      std::vector<unsigned char> b(size);
      fill(rng, b, 0, size);
      pool->write(*h, b.data(), size);
      hs.push_back(*h);
      data.push_back(std::move(b));
      frames += split_large(size, tmax).frames;
      pool->check_invariants();
    }
    for (std::size_t i = 0; i < hs.size(); i++)
      ASSERT_NO_FATAL_FAILURE(expect_bytes(*pool, hs[i], data[i]));
    const PoolStats st = pool->stats();
    EXPECT_EQ(st.large_objects, sizes.size());
    EXPECT_GE(st.total_pages, frames);  // runs, plus the zspages of the tails
    // The run classes are in the class table: one object per zspage, huge.
    std::size_t run_rows = 0;
    for (const ClassStats& c : pool->class_stats()) {
      if (c.size > 4096) {
        run_rows++;
        EXPECT_EQ(c.objs_per_zspage, 1u);
        EXPECT_EQ(c.pages_per_zspage * 4096u, c.size);
        EXPECT_TRUE(c.huge);
      }
    }
    EXPECT_EQ(run_rows, 15u);  // runs of 2..16 frames (the 1-frame run is a 4096 row)
    EXPECT_NE(pool->format_class_stats().find("65536"), std::string::npos);
    // Compaction never moves runs, and leaves every object intact.
    pool->compact();
    pool->check_invariants();
    for (std::size_t i = 0; i < hs.size(); i++)
      ASSERT_NO_FATAL_FAILURE(expect_bytes(*pool, hs[i], data[i]));
    pool->free_batch(hs.data(), hs.size());
    pool->flush_deferred();
    pool->check_invariants();
    EXPECT_EQ(pool->total_pages(), 0u);
    EXPECT_EQ(pool->stats().large_objects, 0u);
  }
}

// Migration moves a run's frames one at a time; the object reads back the same.
TEST(LargeObjectTest, MigrateEveryFrameOfARun) {
  auto pool = make_large_pool(65536);
  ASSERT_NE(pool, nullptr);
  Random rng(7);
  std::vector<unsigned char> b(40000);
  fill(rng, b, 0, b.size());
  auto h = pool->alloc(b.size());
  ASSERT_TRUE(h.has_value());
  pool->write(*h, b.data(), b.size());
  const auto frames = static_cast<std::uint32_t>(pool->stats().arena_frames);
  std::size_t moved = 0;
  for (std::uint32_t f = 0; f < frames; f++) {
    auto r = migrate_frame(*pool, f);
    if (r) moved++;
    pool->check_invariants();
  }
  EXPECT_EQ(moved, pool->total_pages());
  ASSERT_NO_FATAL_FAILURE(expect_bytes(*pool, *h, b));
  pool->free(*h);
  EXPECT_EQ(pool->total_pages(), 0u);
}

// read_begin of a large object returns holding no lock: compaction and migration of the
// run and the tail proceed while the caller uses the copy.
TEST(LargeObjectTest, ReadBeginHoldsNoLock) {
  auto pool = make_large_pool(16384);
  ASSERT_NE(pool, nullptr);
  Random rng(9);
  std::vector<unsigned char> b(9000);
  fill(rng, b, 0, b.size());
  auto h = pool->alloc(b.size());
  ASSERT_TRUE(h.has_value());
  pool->write(*h, b.data(), b.size());
  std::vector<unsigned char> local(16384);
  const void* p = pool->read_begin(*h, local.data());
  EXPECT_EQ(p, local.data());
  const auto frames = static_cast<std::uint32_t>(pool->stats().arena_frames);
  for (std::uint32_t f = 0; f < frames; f++) {
    auto r = migrate_frame(*pool, f);
    if (!r) {
      EXPECT_EQ(r.error(), Errc::invalid_argument);  // never busy
    }
  }
  EXPECT_EQ(pool->stats().migrate_busy, 0u);
  EXPECT_EQ(std::memcmp(p, b.data(), b.size()), 0);
  pool->read_end(*h, p);
  ASSERT_NO_FATAL_FAILURE(expect_bytes(*pool, *h, b));
  pool->free(*h);
}

std::size_t random_size(Random& rng, std::size_t max, std::size_t tmax) {
  switch (rng.uniform(6)) {
    case 0: return rng.range(1, 4096);                              // small
    case 1: return rng.range(4097, 4096 + tmax + 2);                // 1-frame run, tail edge
    case 2: return std::min(max, rng.range(1, max / 4096) * 4096);  // whole frames
    case 3: return std::min(max, rng.range(1, max / 4096) * 4096 + tmax + rng.range(0, 2) - 1);
    default: return rng.range(1, max);
  }
}

class LargeRandomOpsTest
    : public ::testing::TestWithParam<std::tuple<unsigned, std::size_t, TranslationMode>> {};

TEST_P(LargeRandomOpsTest, MatchesModel) {
  const auto [chain, max, mode] = GetParam();
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  Random rng(seed * 131 + chain * 7 + max + (mode == TranslationMode::kernel_rwlock));
  auto pool = make_large_pool(max, chain, mode);
  ASSERT_NE(pool, nullptr);
  const std::size_t tmax = Geometry(chain).max_tail();
  std::vector<Handle> hs;
  std::vector<std::vector<unsigned char>> data;
  auto remove = [&](std::size_t i) {
    hs[i] = hs.back();
    data[i] = std::move(data.back());
    hs.pop_back();
    data.pop_back();
  };
  std::size_t migrated = 0, large_seen = 0;
  constexpr int kOps = 2500;
  for (int op = 0; op < kOps; ++op) {
    SCOPED_TRACE(::testing::Message() << "op " << op);
    const std::uint64_t r = rng.uniform(100);
    bool mutated = true;
    if (hs.empty() || (r < 35 && hs.size() < 200)) {
      const std::size_t size = random_size(rng, max, tmax);
      auto h = pool->alloc(size);
      ASSERT_TRUE(h.has_value()) << size << ": " << h.error().message();
      std::vector<unsigned char> b(size);
      fill(rng, b, 0, size);
      pool->write(*h, b.data(), size);
      hs.push_back(*h);
      data.push_back(std::move(b));
      large_seen += size > 4096;
    } else if (r < 50) {  // rewrite a prefix (or all)
      const std::size_t i = rng.uniform(hs.size());
      const std::size_t len = rng.range(1, data[i].size());
      fill(rng, data[i], 0, len);
      pool->write(hs[i], data[i].data(), len);
    } else if (r < 65) {
      const std::size_t i = rng.uniform(hs.size());
      ASSERT_NO_FATAL_FAILURE(expect_bytes(*pool, hs[i], data[i]));
      mutated = false;
    } else if (r < 78) {
      const std::size_t i = rng.uniform(hs.size());
      ASSERT_NO_FATAL_FAILURE(expect_bytes(*pool, hs[i], data[i]));
      pool->free(hs[i]);
      remove(i);
    } else if (r < 88) {
      const std::size_t k = rng.range(1, std::min<std::size_t>(20, hs.size()));
      std::vector<Handle> batch;
      for (std::size_t j = 0; j < k; j++) {
        const std::size_t i = rng.uniform(hs.size());
        ASSERT_NO_FATAL_FAILURE(expect_bytes(*pool, hs[i], data[i]));
        batch.push_back(hs[i]);
        remove(i);
        if (rng.uniform(6) == 0) batch.push_back(Handle{0});
      }
      pool->free_batch(batch.data(), batch.size());
    } else if (r < 91) {
      pool->compact();
    } else if (r < 98) {
      const auto frames = static_cast<std::uint32_t>(pool->stats().arena_frames);
      const auto f = static_cast<std::uint32_t>(rng.uniform(frames + 2));
      auto res = migrate_frame(*pool, f);
      if (res) {
        migrated++;
      } else {
        ASSERT_EQ(res.error(), Errc::invalid_argument) << f << ": " << res.error().message();
      }
    } else {
      pack(*pool, rng.range(1, 8));
    }
    if (mutated) pool->check_invariants();
    std::size_t large = 0;
    for (const auto& d : data) large += d.size() > 4096;
    ASSERT_EQ(pool->stats().large_objects, large);
  }
  for (std::size_t i = 0; i < hs.size(); ++i)
    ASSERT_NO_FATAL_FAILURE(expect_bytes(*pool, hs[i], data[i]));
  EXPECT_GT(migrated, 0u);
  EXPECT_GT(large_seen, 0u);
  pool->free_batch(hs.data(), hs.size());
  pool->flush_deferred();
  pool->check_invariants();
  EXPECT_EQ(pool->total_pages(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, LargeRandomOpsTest,
    ::testing::Combine(::testing::Values(4u, 8u, 16u),
                       ::testing::Values(std::size_t{16384}, std::size_t{65536}),
                       ::testing::Values(TranslationMode::validated,
                                         TranslationMode::kernel_rwlock)),
    [](const auto& i) {
      return "chain" + std::to_string(std::get<0>(i.param)) + "_max" +
             std::to_string(std::get<1>(i.param)) + "_" +
             (std::get<2>(i.param) == TranslationMode::validated ? "validated" : "kernel_rwlock");
    });

}  // namespace
}  // namespace uzram

// Compaction: every object keeps its bytes (and its handle), freeable frames go back,
// pages_compacted accumulates, and a pass with nothing to do frees nothing.
#include <gtest/gtest.h>

#include <cstring>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "testing/pool_helpers.h"
#include "testing/seed.h"
#include "uzram/pool.h"
#include "uzram/zsmalloc.h"

namespace uzram {
namespace {

using testing::fill_random;
using testing::make_pool;
using Objects = std::unordered_map<std::uint64_t, std::vector<unsigned char>>;

void verify_all(Pool& pool, const Objects& objs) {
  std::vector<unsigned char> local(kPageSize);
  for (const auto& [hv, bytes] : objs) {
    const auto h = static_cast<Handle>(hv);
    ASSERT_EQ(pool.object_size(h), bytes.size());
    const void* p = pool.read_begin(h, local.data());
    const int cmp = std::memcmp(p, bytes.data(), bytes.size());
    pool.read_end(h, p);
    ASSERT_EQ(cmp, 0) << "object " << hv << " of " << bytes.size() << " bytes differs";
  }
}

void add_objects(Pool& pool, Random& rng, Objects& objs, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t size = rng.range(1, kMaxObjectSize);
    auto h = pool.alloc(size);
    ASSERT_TRUE(h.has_value()) << h.error().message();
    std::vector<unsigned char> bytes(size);
    fill_random(rng, bytes.data(), size);
    pool.write(*h, bytes.data(), size);
    objs.emplace(static_cast<std::uint64_t>(*h), std::move(bytes));
  }
}

// Frees each object with probability 3/4.
void free_most(Pool& pool, Random& rng, Objects& objs) {
  for (auto it = objs.begin(); it != objs.end();) {
    if (rng.uniform(4) != 0) {
      pool.free(static_cast<Handle>(it->first));
      it = objs.erase(it);
    } else {
      ++it;
    }
  }
}

class CompactionTest : public ::testing::TestWithParam<testing::ChainMode> {};

TEST_P(CompactionTest, KeepsBytesAndFreesFrames) {
  const auto [chain, mode] = GetParam();
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  Random rng(seed + chain);
  auto pool = make_pool(chain, mode);
  ASSERT_NE(pool, nullptr);
  Objects objs;
  std::uint64_t compacted = 0;
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round);
    add_objects(*pool, rng, objs, 3000);
    pool->check_invariants();
    free_most(*pool, rng, objs);
    pool->check_invariants();
    verify_all(*pool, objs);

    const std::size_t before = pool->total_pages();
    const std::size_t freed = pool->compact();
    pool->check_invariants();
    verify_all(*pool, objs);
    EXPECT_GT(freed, 0u);
    EXPECT_EQ(pool->total_pages(), before - freed);
    compacted += freed;
    EXPECT_EQ(pool->stats().pages_compacted, compacted);
    for (const ClassStats& c : pool->class_stats()) {
      EXPECT_EQ(c.freeable, 0u) << "class " << c.index << " still has freeable frames";
    }
    // Nothing left to do.
    EXPECT_EQ(pool->compact(), 0u);
    EXPECT_EQ(pool->total_pages(), before - freed);
    EXPECT_EQ(pool->stats().pages_compacted, compacted);
    pool->check_invariants();
  }
  for (const auto& [hv, bytes] : objs) pool->free(static_cast<Handle>(hv));
  EXPECT_EQ(pool->total_pages(), 0u);
  pool->check_invariants();
}

INSTANTIATE_TEST_SUITE_P(Modes, CompactionTest, testing::chain_mode_grid(),
                         testing::chain_mode_name);

TEST(CompactionExactTest, HalfFullOneFrameZspages) {
  auto pool = make_pool(8);
  ASSERT_NE(pool, nullptr);
  // 2040 + 8 = 2048 bytes: 2 objects per 1-frame zspage.
  std::vector<Handle> hs;
  for (int i = 0; i < 10; ++i) {
    auto h = pool->alloc(2040);
    ASSERT_TRUE(h.has_value());
    std::vector<unsigned char> b(2040, static_cast<unsigned char>(i));
    pool->write(*h, b.data(), b.size());
    hs.push_back(*h);
  }
  EXPECT_EQ(pool->total_pages(), 5u);
  for (int i = 0; i < 10; i += 2) pool->free(hs[i]);  // one object left in each zspage
  EXPECT_EQ(pool->total_pages(), 5u);
  EXPECT_EQ(pool->compact(), 2u);  // 5 half-full zspages -> 2 full + 1 half-full
  EXPECT_EQ(pool->total_pages(), 3u);
  EXPECT_EQ(pool->stats().pages_compacted, 2u);
  EXPECT_EQ(pool->compact(), 0u);
  pool->check_invariants();
  for (int i = 1; i < 10; i += 2) {
    std::vector<unsigned char> b(2040);
    const void* p = pool->read_begin(hs[i], b.data());
    EXPECT_EQ(std::memcmp(p, std::vector<unsigned char>(2040, static_cast<unsigned char>(i)).data(),
                          2040),
              0);
    pool->read_end(hs[i], p);
    pool->free(hs[i]);
  }
  EXPECT_EQ(pool->total_pages(), 0u);
}

TEST(CompactionExactTest, CApiPagesCompactedAccumulates) {
  zs_pool* p = zs_create_pool("compaction");
  ASSERT_NE(p, nullptr);
  struct zs_pool_stats st {};
  zs_pool_stats(p, &st);
  EXPECT_EQ(st.pages_compacted, 0u);
  unsigned long total = 0;
  for (int round = 0; round < 3; ++round) {
    std::vector<unsigned long> hs;
    for (int i = 0; i < 400; ++i) {
      const unsigned long h = zs_malloc(p, 1000, GFP_KERNEL, NUMA_NO_NODE);
      ASSERT_FALSE(IS_ERR_VALUE(h));
      hs.push_back(h);
    }
    for (std::size_t i = 0; i < hs.size(); ++i) {
      if (i % 4 != 0) zs_free(p, hs[i]);
    }
    const unsigned long before = zs_get_total_pages(p);
    const unsigned long freed = zs_compact(p);
    EXPECT_GT(freed, 0u);
    EXPECT_EQ(zs_get_total_pages(p), before - freed);
    total += freed;
    zs_pool_stats(p, &st);
    EXPECT_EQ(st.pages_compacted, total);
    EXPECT_EQ(zs_compact(p), 0u);
    for (std::size_t i = 0; i < hs.size(); i += 4) zs_free(p, hs[i]);
  }
  EXPECT_EQ(zs_get_total_pages(p), 0u);
  zs_destroy_pool(p);
}

}  // namespace
}  // namespace uzram

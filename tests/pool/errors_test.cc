// Every documented error path of the C++ and the C API returns its error and leaves the
// pool intact.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

#include "testing/pool_helpers.h"
#include "testing/seed.h"
#include "uzram/pool.h"
#include "uzram/zsmalloc.h"

namespace uzram {
namespace {

using testing::fill_random;
using testing::make_pool;

TEST(ErrorsTest, AllocSizeLimits) {
  auto pool = make_pool();
  ASSERT_NE(pool, nullptr);
  auto zero = pool->alloc(0);
  ASSERT_FALSE(zero.has_value());
  EXPECT_EQ(zero.error(), Errc::invalid_argument);
  EXPECT_EQ(zero.error(), std::errc::invalid_argument);
  auto big = pool->alloc(kMaxObjectSize + 1);
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error(), Errc::too_large);
  EXPECT_EQ(big.error(), std::errc::no_space_on_device);  // the kernel's -ENOSPC
  EXPECT_FALSE(pool->alloc(std::size_t{1} << 40).has_value());
  auto max = pool->alloc(kMaxObjectSize);
  ASSERT_TRUE(max.has_value());
  pool->free(*max);
  EXPECT_EQ(pool->total_pages(), 0u);
  pool->check_invariants();
}

TEST(ErrorsTest, CApiErrorValues) {
  zs_pool* p = zs_create_pool("errors");
  ASSERT_NE(p, nullptr);
  const unsigned long zero = zs_malloc(p, 0, GFP_KERNEL, NUMA_NO_NODE);
  EXPECT_TRUE(IS_ERR_VALUE(zero));
  EXPECT_EQ(zero, static_cast<unsigned long>(-EINVAL));
  const unsigned long big = zs_malloc(p, 4097, GFP_KERNEL | __GFP_NOWARN, NUMA_NO_NODE);
  EXPECT_TRUE(IS_ERR_VALUE(big));
  EXPECT_EQ(big, static_cast<unsigned long>(-ENOSPC));
  // NULL and error handles are ignored by zs_free, as in the kernel.
  zs_free(p, 0);
  zs_free(p, zero);
  zs_free(p, big);
  zs_free(p, static_cast<unsigned long>(-ENOMEM));
  const unsigned long h = zs_malloc(p, 4096, GFP_NOIO, 0);
  ASSERT_FALSE(IS_ERR_VALUE(h));
  ASSERT_NE(h, 0u);
  zs_free(p, h);
  EXPECT_EQ(zs_get_total_pages(p), 0u);
  zs_destroy_pool(p);
}

TEST(ErrorsTest, BadPoolOptions) {
  for (unsigned chain : {0u, 3u, 17u, 64u}) {
    PoolOptions o;
    o.chain_size = chain;
    auto r = Pool::create(o);
    ASSERT_FALSE(r.has_value()) << chain;
    EXPECT_EQ(r.error(), Errc::invalid_argument) << chain;
  }
  for (std::size_t bytes : {std::size_t{0}, std::size_t{4096}, (std::size_t{64} << 10) - 1,
                            (std::size_t{1} << 40) + 4096}) {
    PoolOptions o;
    o.max_bytes = bytes;
    auto r = Pool::create(o);
    ASSERT_FALSE(r.has_value()) << bytes;
    EXPECT_EQ(r.error(), Errc::invalid_argument) << bytes;
  }
  for (unsigned chain : {4u, 16u}) {
    PoolOptions o;
    o.chain_size = chain;
    o.max_bytes = std::size_t{64} << 10;
    EXPECT_TRUE(Pool::create(o).has_value()) << chain;
  }
}

// pool.h: max_bytes <= 1 TiB. The largest sizes are valid options; creating the pool may
// still fail for want of address space (no_memory), never as an invalid argument.
TEST(ErrorsTest, MaxBytesUpToOneTiBIsValid) {
  for (std::size_t bytes : {std::size_t{1} << 40, (std::size_t{1} << 40) - 4096}) {
    PoolOptions o;
    o.max_bytes = bytes;
    auto r = Pool::create(o);
    if (!r) {
      EXPECT_NE(r.error(), Errc::invalid_argument) << bytes << " bytes rejected";
      continue;
    }
    auto h = (*r)->alloc(100);
    ASSERT_TRUE(h.has_value());
    (*r)->free(*h);
  }
}

struct Stored {
  Handle h;
  std::vector<unsigned char> bytes;
};

void expect_intact(Pool& pool, const std::vector<Stored>& objs) {
  std::vector<unsigned char> local(kPageSize);
  for (const Stored& s : objs) {
    const void* p = pool.read_begin(s.h, local.data());
    const int cmp = std::memcmp(p, s.bytes.data(), s.bytes.size());
    pool.read_end(s.h, p);
    ASSERT_EQ(cmp, 0) << "an object changed after the pool ran out of memory";
  }
}

// A 64 KiB pool (16 frames) runs out: no_memory, and what it holds is untouched.
TEST(ErrorsTest, TinyPoolRunsOut) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  Random rng(seed ^ 0x64);
  auto pool = make_pool(8, TranslationMode::validated, std::size_t{64} << 10);
  ASSERT_NE(pool, nullptr);
  std::vector<Stored> objs;
  std::size_t failures = 0;
  for (int i = 0; i < 2000 && failures < 50; ++i) {
    const std::size_t size = rng.range(1, kMaxObjectSize);
    auto h = pool->alloc(size);
    if (!h) {
      ASSERT_EQ(h.error(), Errc::no_memory) << h.error().message();
      EXPECT_EQ(h.error(), std::errc::not_enough_memory);
      failures++;
      pool->check_invariants();
      continue;
    }
    Stored s{*h, std::vector<unsigned char>(size)};
    fill_random(rng, s.bytes.data(), size);
    pool->write(s.h, s.bytes.data(), size);
    objs.push_back(std::move(s));
  }
  ASSERT_GT(failures, 0u) << "a 64 KiB pool never ran out";
  EXPECT_LE(pool->total_pages(), 16u);
  pool->check_invariants();
  ASSERT_NO_FATAL_FAILURE(expect_intact(*pool, objs));
  // Once full, even a one-frame huge object fails; after freeing everything it fits again.
  for (auto h = pool->alloc(4096); h; h = pool->alloc(4096)) objs.push_back({*h, {}});
  EXPECT_EQ(pool->alloc(4096).error(), Errc::no_memory);
  for (const Stored& s : objs) pool->free(s.h);
  objs.clear();
  EXPECT_EQ(pool->stats().objs_used, 0u);
  EXPECT_EQ(pool->total_pages(), 0u);
  auto h = pool->alloc(4096);
  ASSERT_TRUE(h.has_value());
  pool->free(*h);
  pool->check_invariants();
}

TEST(ErrorsTest, TinyPoolRunsOutThroughCApi) {
  // zs_create_pool makes a 64 GiB pool; a small one is made with Pool::create and used
  // through the C API (struct zs_pool is the Pool, see src/pool/c_api.cc).
  auto pool = make_pool(8, TranslationMode::validated, std::size_t{64} << 10);
  ASSERT_NE(pool, nullptr);
  auto* p = reinterpret_cast<zs_pool*>(pool.get());
  std::vector<unsigned long> hs;
  unsigned long err = 0;
  for (int i = 0; i < 100; ++i) {
    const unsigned long h = zs_malloc(p, 3000, GFP_KERNEL, NUMA_NO_NODE);
    if (IS_ERR_VALUE(h)) {
      err = h;
      break;
    }
    unsigned char b[3000];
    std::memset(b, i, sizeof b);
    zs_obj_write(p, h, b, sizeof b);
    hs.push_back(h);
  }
  EXPECT_EQ(err, static_cast<unsigned long>(-ENOMEM));
  EXPECT_FALSE(hs.empty());
  std::vector<unsigned char> local(4096);
  for (std::size_t i = 0; i < hs.size(); ++i) {
    const auto* q = static_cast<const unsigned char*>(zs_obj_read_begin(p, hs[i], local.data()));
    bool same = true;
    for (int k = 0; k < 3000; ++k) same = same && q[k] == static_cast<unsigned char>(i);
    zs_obj_read_end(p, hs[i], const_cast<unsigned char*>(q));
    EXPECT_TRUE(same) << i;
    zs_free(p, hs[i]);
  }
  EXPECT_EQ(zs_get_total_pages(p), 0u);
}

TEST(ErrorsTest, MigrateUnusedFrame) {
  auto pool = make_pool();
  ASSERT_NE(pool, nullptr);
  // Nothing allocated yet: no frame is in use.
  for (std::uint32_t f : {0u, 1u, 1000u, 0xffffffffu}) {
    auto r = migrate_frame(*pool, f);
    ASSERT_FALSE(r.has_value()) << f;
    EXPECT_EQ(r.error(), Errc::invalid_argument) << f;
  }
  // Two one-frame zspages (frames 0 and 1); free the first: frame 0 is unused again.
  auto a = pool->alloc(4096);
  auto b = pool->alloc(4096);
  ASSERT_TRUE(a.has_value() && b.has_value());
  pool->free(*a);
  auto r = migrate_frame(*pool, 0);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Errc::invalid_argument);
  EXPECT_EQ(migrate_frame(*pool, pool->stats().arena_frames).error(), Errc::invalid_argument);
  EXPECT_EQ(pool->stats().migrations, 0u);
  pool->check_invariants();
  pool->free(*b);
}

}  // namespace
}  // namespace uzram

// Misuse aborts with a message naming the problem (ZS_CHECK is on in every build).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "testing/pool_helpers.h"
#include "uzram/pool.h"
#include "uzram/zsmalloc.h"

namespace uzram {
namespace {

using testing::make_pool;

class PoolDeathTest : public ::testing::TestWithParam<TranslationMode> {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
  std::unique_ptr<Pool> pool() { return make_pool(8, GetParam()); }
};

TEST_P(PoolDeathTest, DoubleFree) {
  auto p = pool();
  const Handle h = *p->alloc(100);
  p->free(h);
  EXPECT_DEATH(p->free(h), "not allocated");
}

TEST_P(PoolDeathTest, DoubleFreeOfAHugeObject) {
  auto p = pool();
  const Handle h = *p->alloc(4096);
  p->free(h);
  EXPECT_DEATH(p->free(h), "not allocated");
}

TEST_P(PoolDeathTest, StaleHandleAfterItsSlotIsReused) {
  auto p = pool();
  const Handle h = *p->alloc(100);
  p->free(h);
  const Handle again = *p->alloc(100);  // the same index, a new generation
  EXPECT_NE(again, h);
  EXPECT_DEATH(p->free(h), "not allocated");
  EXPECT_DEATH((void)p->object_size(h), "not allocated");
  const void* m = p->read_begin(again, nullptr);
  EXPECT_DEATH(p->read_end(h, m), "not allocated");  // the stale handle, not `again`
  p->read_end(again, m);
  p->free(again);
}

TEST_P(PoolDeathTest, FreeOfANeverAllocatedHandle) {
  auto p = pool();
  const Handle h = *p->alloc(100);
  const auto hv = static_cast<std::uint64_t>(h);
  EXPECT_DEATH(p->free(static_cast<Handle>(hv + 1)), "not allocated");  // index never handed out
  EXPECT_DEATH(p->free(static_cast<Handle>(0)), "invalid handle");      // 0 is never a handle
  EXPECT_DEATH(p->free(static_cast<Handle>(hv | (std::uint64_t{1} << 50))), "invalid handle");
  EXPECT_DEATH(p->free(static_cast<Handle>(hv + (std::uint64_t{5} << 32))),
               "not allocated");  // wrong gen
  p->free(h);
}

TEST_P(PoolDeathTest, ReadOfAFreedHandle) {
  auto p = pool();
  const Handle h = *p->alloc(100);
  p->free(h);
  std::vector<unsigned char> local(kPageSize);
  EXPECT_DEATH((void)p->read_begin(h, local.data()), "not allocated");
  const unsigned char b[10] = {};
  EXPECT_DEATH(p->write(h, b, sizeof b), "not allocated");
}

TEST_P(PoolDeathTest, ReadEndWithoutReadBegin) {
  auto p = pool();
  const Handle h = *p->alloc(100);
  EXPECT_DEATH(p->read_end(h, nullptr), "not read-locked");
  p->free(h);
}

TEST_P(PoolDeathTest, WriteBeyondTheObject) {
  auto p = pool();
  const Handle h = *p->alloc(100);
  std::vector<unsigned char> b(kPageSize);
  EXPECT_DEATH(p->write(h, b.data(), 101), "101 bytes into an object of 100 bytes");
  const Handle big = *p->alloc(4000);
  EXPECT_DEATH(p->write(big, b.data(), 4001), "bytes into an object");
  p->write(big, b.data(), 4000);  // exactly the size is fine
  p->free(h);
  p->free(big);
}

TEST_P(PoolDeathTest, SpanningReadWithoutLocalCopy) {
  auto p = pool();
  // 200 + 8 -> the 208 class: object 19 starts at 19 * 208 + 8 = 3960, spans frames 0-1.
  std::vector<Handle> hs;
  for (int i = 0; i < 20; ++i) hs.push_back(*p->alloc(200));
  EXPECT_DEATH((void)p->read_begin(hs[19], nullptr), "local_copy is NULL");
  for (Handle h : hs) p->free(h);
}

TEST_P(PoolDeathTest, FreeBatchWithAHandleTwice) {
  auto p = pool();
  const Handle a = *p->alloc(100), b = *p->alloc(3000), c = *p->alloc(100);
  const Handle batch[] = {a, b, c, a};
  EXPECT_DEATH(p->free_batch(batch, 4), "free_batch: handle 0x[0-9a-f]+ is not allocated");
  p->free_batch(batch, 3);
  p->check_invariants();
  EXPECT_EQ(p->total_pages(), 0u);
}

TEST_P(PoolDeathTest, FreeBatchOfFreedOrInvalidHandles) {
  auto p = pool();
  const Handle a = *p->alloc(100), b = *p->alloc(200);
  const auto bv = static_cast<std::uint64_t>(b);
  p->free(a);
  const Handle freed[] = {b, a};
  EXPECT_DEATH(p->free_batch(freed, 2), "free_batch: handle .* is not allocated");
  const Handle never[] = {static_cast<Handle>(bv + 1)};  // index never handed out
  EXPECT_DEATH(p->free_batch(never, 1), "not allocated");
  const Handle beyond[] = {b, static_cast<Handle>(bv | (std::uint64_t{1} << 50))};
  EXPECT_DEATH(p->free_batch(beyond, 2), "free_batch: invalid handle");
  const Handle stale[] = {static_cast<Handle>(bv + (std::uint64_t{5} << 32))};  // wrong gen
  EXPECT_DEATH(p->free_batch(stale, 1), "not allocated");
  const Handle zeros[] = {Handle{0}, b, Handle{0}};  // zeros are skipped
  p->free_batch(zeros, 3);
  p->free_batch(zeros, 0);
  EXPECT_EQ(p->total_pages(), 0u);
}

TEST(CApiDeathTest, ZsFreeBatchMisuse) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  zs_pool* p = zs_create_pool("death");
  const unsigned long h = zs_malloc(p, 64, GFP_KERNEL, NUMA_NO_NODE);
  const unsigned long twice[] = {h, h};
  EXPECT_DEATH(zs_free_batch(p, twice, 2), "not allocated");
  const unsigned long err = zs_malloc(p, 0, GFP_KERNEL, NUMA_NO_NODE);  // -EINVAL
  ASSERT_TRUE(IS_ERR_VALUE(err));
  const unsigned long mixed[] = {0, err, h, (unsigned long)-ENOMEM};  // 0 and errors skipped
  zs_free_batch(p, mixed, 4);
  EXPECT_EQ(zs_get_total_pages(p), 0u);
  EXPECT_DEATH(zs_free_batch(p, &h, 1), "not allocated");
  zs_destroy_pool(p);
}

TEST(CApiDeathTest, DoubleZsFree) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  zs_pool* p = zs_create_pool("death");
  const unsigned long h = zs_malloc(p, 64, GFP_KERNEL, NUMA_NO_NODE);
  zs_free(p, h);
  EXPECT_DEATH(zs_free(p, h), "not allocated");
  zs_destroy_pool(p);
}

INSTANTIATE_TEST_SUITE_P(Modes, PoolDeathTest,
                         ::testing::Values(TranslationMode::validated,
                                           TranslationMode::kernel_rwlock),
                         [](const auto& i) { return std::string(testing::mode_name(i.param)); });

}  // namespace
}  // namespace uzram

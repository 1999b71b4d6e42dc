// RSS follows total pages: frames freed by the pool go back to the OS (madvise), beyond a
// small resident cache. Linux only (/proc/self/statm).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "testing/pool_helpers.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

#ifdef __linux__
std::size_t rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

TEST(RssTest, FollowsTotalPages) {
  auto pool = testing::make_pool(8);
  ASSERT_NE(pool, nullptr);
  constexpr std::size_t kObject = 1536;
  constexpr std::size_t kTarget = std::size_t{64} << 20;
  std::vector<Handle> hs;
  hs.reserve(kTarget / kObject + 1);
  std::vector<unsigned char> buf(kObject);
  const std::size_t base = rss_bytes();
  ASSERT_GT(base, 0u);
  for (std::size_t i = 0; i < kTarget / kObject; ++i) {
    auto h = pool->alloc(kObject);
    ASSERT_TRUE(h.has_value());
    std::memset(buf.data(), static_cast<int>(i), buf.size());
    pool->write(*h, buf.data(), buf.size());
    hs.push_back(*h);
  }
  const std::size_t pool_bytes = pool->total_pages() * kPageSize;
  const std::size_t peak = rss_bytes();
  EXPECT_GE(pool_bytes, kTarget);
  EXPECT_GE(peak, base + pool_bytes * 9 / 10) << "the pool's frames are not resident?";
  for (Handle h : hs) pool->free(h);
  pool->flush_deferred();
  EXPECT_EQ(pool->total_pages(), 0u);
  const std::size_t after = rss_bytes();
  ASSERT_LE(after, peak);
  EXPECT_GE(peak - after, pool_bytes * 9 / 10)
      << "RSS base " << base << " peak " << peak << " after free " << after << ", pool held "
      << pool_bytes << " bytes";
}
#endif

}  // namespace
}  // namespace uzram

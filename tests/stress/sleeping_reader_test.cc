// Through the zs_* C API only: threads hold zspage read locks while sleeping; zs_compact
// and other readers must neither block nor corrupt anything.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "stress/stress_util.h"
#include "uzram/zsmalloc.h"

namespace uzram {
namespace {

using testing::check_pattern;
using testing::fill_pattern;

TEST(SleepingReaderTest, CompactAndReadersProceedWhileReadersSleep) {
  zs_pool* pool = zs_create_pool("sleepers");
  ASSERT_NE(pool, nullptr);
  std::vector<unsigned long> hs;
  std::vector<std::size_t> sizes;
  unsigned char buf[4096];
  for (int i = 0; i < 20000; i++) {
    const std::size_t size = 100 + (i * 37) % 3000;
    const unsigned long h = zs_malloc(pool, size, GFP_KERNEL, NUMA_NO_NODE);
    ASSERT_FALSE(IS_ERR_VALUE(h));
    fill_pattern(buf, size, static_cast<std::uint64_t>(i));
    zs_obj_write(pool, h, buf, size);
    hs.push_back(h);
    sizes.push_back(size);
  }
  for (std::size_t i = 0; i < hs.size(); i += 4) {  // fragment: free 3 of 4
    for (std::size_t j = i + 1; j < i + 4 && j < hs.size(); j++) {
      zs_free(pool, hs[j]);
      hs[j] = 0;
    }
  }
  std::atomic<int> holding{0};
  std::atomic<bool> release{false};
  std::vector<std::thread> sleepers;
  for (int t = 0; t < 2; t++) {
    sleepers.emplace_back([&, t] {
      static thread_local unsigned char copy[4096];
      std::vector<std::pair<std::size_t, void*>> held;
      for (std::size_t i = t * 4; i < hs.size(); i += 64) {
        held.emplace_back(i, zs_obj_read_begin(pool, hs[i], copy));
        if (held.size() == 1) break;  // one pinned object per sleeper (copy buffer is shared)
      }
      holding.fetch_add(1);
      while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      for (auto& [i, p] : held) {
        EXPECT_TRUE(check_pattern(p, sizes[i], i));
        zs_obj_read_end(pool, hs[i], p);
      }
    });
  }
  while (holding.load() < 2) std::this_thread::yield();
  const unsigned long before = zs_get_total_pages(pool);
  const auto t0 = std::chrono::steady_clock::now();
  const unsigned long freed = zs_compact(pool);  // must not wait for the sleepers
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_GT(freed, 0u);
  EXPECT_EQ(zs_get_total_pages(pool), before - freed);
  for (std::size_t i = 0; i < hs.size(); i += 4) {  // readers keep reading meanwhile
    static unsigned char copy[4096];
    void* p = zs_obj_read_begin(pool, hs[i], copy);
    EXPECT_TRUE(check_pattern(p, sizes[i], i)) << i;
    zs_obj_read_end(pool, hs[i], p);
  }
  release.store(true);
  for (auto& t : sleepers) t.join();
  zs_compact(pool);
  struct zs_pool_stats st {};
  zs_pool_stats(pool, &st);
  EXPECT_GE(st.pages_compacted, freed);
  for (unsigned long h : hs) zs_free(pool, h);
  EXPECT_EQ(zs_get_total_pages(pool), 0u);
  zs_destroy_pool(pool);
}

}  // namespace
}  // namespace uzram

// tests/util/text_drop_test.cc - drop_startup_text() (util/text_drop.h): the file mappings'
// RSS drops, read-only data and code still read and run the same, from this thread and from
// threads that run while their code is dropped under them.
#include "util/text_drop.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "testing/seed.h"
#include "util/random.h"

namespace uzram {
namespace {

// Read-only data in .rodata: its checksum must not change when its pages are dropped.
constexpr std::uint32_t kTable[] = {
    0x9e3779b9, 0x7f4a7c15, 0xbf58476d, 0x1ce4e5b9, 0x94d049bb, 0x133111eb, 0xd6e8feb8,
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
};

std::uint64_t table_sum() {
  std::uint64_t s = 0;
  for (const std::uint32_t v : kTable) s = s * 31 + v;
  return s;
}

// Work that runs code of the binary, libstdc++ and libc, with a result to check.
std::string work(std::uint64_t seed) {
  Random rng(seed);
  std::vector<std::uint64_t> v(2000);
  for (auto& x : v) x = rng.next() % 100000;
  std::sort(v.begin(), v.end());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%llu:%llu:%zu", static_cast<unsigned long long>(v.front()),
                static_cast<unsigned long long>(v.back()), v.size());
  return std::string(buf) + std::to_string(table_sum() % 1000);
}

TEST(TextDropTest, DropsFileMappingsAndKeepsData) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  const std::uint64_t sum = table_sum();
  const std::string expect = work(seed);
  auto r = drop_startup_text();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_GT(r->objects, 1u);  // the test binary and at least libc
  EXPECT_GT(r->ranges, 0u);
  EXPECT_GT(r->bytes, 0u);
  // The test binary alone has touched far more than the call maps back.
  EXPECT_LT(r->file_rss_after, r->file_rss_before);
  EXPECT_LT(r->file_rss_after, r->file_rss_before - 256 * 1024)
      << r->file_rss_before << " -> " << r->file_rss_after;
  EXPECT_EQ(table_sum(), sum);
  EXPECT_EQ(work(seed), expect);
}

TEST(TextDropTest, ThreadsRunWhileTheirCodeIsDropped) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  const std::string expect = work(seed);
  std::atomic<bool> stop{false};
  std::atomic<unsigned> rounds{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; t++) {
    threads.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        if (work(seed) != expect) wrong.fetch_add(1);
        rounds.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 50; i++) {
    auto r = drop_startup_text();
    ASSERT_TRUE(r) << r.error().message();
    std::this_thread::yield();
  }
  while (rounds.load() < 20) std::this_thread::yield();
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0u);
}

}  // namespace
}  // namespace uzram

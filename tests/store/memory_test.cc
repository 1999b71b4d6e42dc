// store/memory_test.cc - the memory breakdown (uzram/memory.h, the `memory` attribute):
// its exact format, each store's measured parts against what the store knows, and the sum
// of the parts against VmRSS within 2 %, with several stores holding data.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "testing/seed.h"
#include "uzram/memory.h"
#include "uzram/pool.h"
#include "uzram/store.h"

namespace uzram {
namespace {

std::vector<std::pair<std::string, std::uint64_t>> parse(const std::string& text) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t nl = text.find('\n', at);
    EXPECT_NE(nl, std::string::npos) << "unterminated line";
    const std::string line = text.substr(at, nl - at);
    const std::size_t sp = line.find(' ');
    EXPECT_NE(sp, std::string::npos) << line;
    EXPECT_EQ(line.find(' ', sp + 1), std::string::npos) << line;
    char* end = nullptr;
    const std::string num = line.substr(sp + 1);
    out.emplace_back(line.substr(0, sp), std::strtoull(num.c_str(), &end, 10));
    EXPECT_EQ(*end, '\0') << line;
    at = nl + 1;
  }
  return out;
}

// Blocks with some redundancy: a random head, then a repeated tail (compresses to ~half).
void fill(Store& s, std::uint64_t blocks, Random& rng) {
  alignas(8) unsigned char blk[kBlockSize];
  for (std::uint64_t i = 0; i < blocks; i++) {
    testing::fill_random(rng, blk, kBlockSize / 2);
    std::memset(blk + kBlockSize / 2, static_cast<int>(i & 0xff), kBlockSize / 2);
    ASSERT_TRUE(s.write(i, blk));
  }
}

TEST(MemoryTest, PartsSumToRssWithSeveralStores) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  Random rng(seed);
  auto a = std::move(Store::create("zram0").value());
  auto b = std::move(Store::create("zram1").value());
  auto c = std::move(Store::create("zram2").value());  // uninitialised: lines of zeros
  ASSERT_TRUE(a->write_attr("comp_algorithm", "lz4"));
  ASSERT_TRUE(a->write_attr("disksize", "256M"));
  ASSERT_TRUE(b->write_attr("comp_algorithm", "zstd"));
  ASSERT_TRUE(b->write_attr("disksize", "1G"));  // a large, mostly untouched slot table
  fill(*a, 24576, rng);                          // 96 MiB
  fill(*b, 8192, rng);                           // 32 MiB
  ASSERT_TRUE(b->discard(0, 8 << 20));           // freed frames: some stay idle
  const std::string text = *a->read_attr("memory");
  EXPECT_NE(c->read_attr("memory")->find("zram0.pool_frames "), std::string::npos);  // any store
  const auto lines = parse(text);
  std::vector<std::string> names;
  for (const auto& [n, v] : lines) names.push_back(n);
  std::vector<std::string> want;
  for (const char* s : {"zram0", "zram1", "zram2"}) {
    for (const char* p :
         {"pool_frames", "pool_idle_frames", "pool_metadata", "slot_table", "streams"})
      want.push_back(std::string(s) + "." + p);
  }
  for (const char* p : {"heap", "libraries", "rss"}) want.push_back(p);
  ASSERT_EQ(names, want);
  std::map<std::string, std::uint64_t> m(lines.begin(), lines.end());
  // Each store's parts against what it knows.
  EXPECT_EQ(m["zram0.pool_frames"], a->mm_stat().mem_used_total);
  EXPECT_EQ(m["zram1.pool_frames"], b->mm_stat().mem_used_total);
  EXPECT_LE(m["zram0.pool_idle_frames"], (a->pool()->stats().idle_frames + 256) * kBlockSize);
  EXPECT_GE(m["zram1.pool_idle_frames"], b->pool()->stats().idle_frames * kBlockSize);
  EXPECT_GT(m["zram0.pool_metadata"], 0u);
  // 24576 slots of 16 bytes: 96 pages of slot table, plus one page of summary.
  EXPECT_EQ(m["zram0.slot_table"], (24576 * 16 / 4096 + 1) * 4096u);
  EXPECT_EQ(m["zram1.slot_table"], (8192 * 16 / 4096 + 1) * 4096u);  // not 1 GiB's 4 MiB
  EXPECT_GT(m["zram0.streams"], 0u);
  EXPECT_GT(m["zram1.streams"], m["zram0.streams"]);  // zstd contexts are larger
  for (const char* p : {"pool_frames", "pool_idle_frames", "pool_metadata", "slot_table"})
    EXPECT_EQ(m[std::string("zram2.") + p], 0u) << p;
  EXPECT_GT(m["heap"], 0u);
  EXPECT_GT(m["libraries"], 0u);
  // The parts sum to VmRSS within 2 %.
  std::uint64_t sum = 0;
  for (const auto& [n, v] : lines) sum += n == "rss" ? 0 : v;
  const double rss = static_cast<double>(m["rss"]);
  EXPECT_GT(rss, 128.0 * (1 << 20) * 0.4);
  EXPECT_NEAR(static_cast<double>(sum), rss, rss * 0.02) << text;
  // Store::memory is the same measurement.
  EXPECT_EQ(a->memory().pool_frames, m["zram0.pool_frames"]);
  EXPECT_EQ(a->memory().slot_table, m["zram0.slot_table"]);
}

TEST(MemoryTest, SourcesAddLinesBeforeTheRest) {
  auto handle = add_memory_source([](std::vector<MemoryLine>* out) {
    out->push_back({"test_buffers", 12345});
  });
  ASSERT_TRUE(handle);
  auto lines = memory_breakdown();
  ASSERT_TRUE(lines);
  ASSERT_GE(lines->size(), 4u);
  const auto& l = *lines;
  EXPECT_EQ(l[l.size() - 4].name, "test_buffers");
  EXPECT_EQ(l[l.size() - 4].bytes, 12345u);
  EXPECT_EQ(l[l.size() - 3].name, "heap");
  EXPECT_EQ(l.back().name, "rss");
  MemorySourceHandle moved = std::move(*handle);
  moved.reset();
  auto after = memory_breakdown();
  ASSERT_TRUE(after);
  for (const MemoryLine& m : *after) EXPECT_NE(m.name, "test_buffers");
  EXPECT_EQ(format_memory({{"a", 1}, {"b", 22}}), "a 1\nb 22\n");
}

TEST(MemoryTest, AttributeIsReadOnly) {
  auto s = std::move(Store::create("zram5").value());
  std::string msg;
  EXPECT_EQ(s->write_attr("memory", "1", &msg).error(), Errc::not_supported);
  EXPECT_EQ(msg, "memory: read-only attribute");
  auto text = s->read_attr("memory");
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("zram5.pool_frames 0\n"), std::string::npos) << *text;
}

}  // namespace
}  // namespace uzram

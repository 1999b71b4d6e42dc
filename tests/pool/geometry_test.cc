// Size-class geometry, pinned against Linux 6.18 zsmalloc (chain 8 unless stated) and
// checked against an independent derivation (testing/ref_geometry.h) for chains 4..16.
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "pool/geometry.h"
#include "testing/pool_helpers.h"
#include "testing/ref_geometry.h"
#include "uzram/pool.h"
#include "uzram/zsmalloc.h"

namespace uzram {
namespace {

using testing::make_pool;
using testing::RefGeometry;

const ClassGeometry* find_size(const std::vector<ClassGeometry>& t, unsigned size) {
  for (const auto& c : t) {
    if (c.size == size) return &c;
  }
  return nullptr;
}

TEST(GeometryTest, Chain8MatchesKernelExamples) {
  const auto t = class_table(8);
  EXPECT_EQ(t.size(), 119u);
  // (size, pages_per_zspage, objs_per_zspage) rows of the kernel's table.
  const std::tuple<unsigned, unsigned, unsigned> rows[] = {
      {32, 1, 128},  {48, 3, 256}, {144, 7, 199}, {208, 3, 59}, {352, 8, 93},
      {1568, 5, 13}, {2048, 1, 2}, {2720, 2, 3},  {3072, 3, 4}, {3264, 4, 5},
      {3408, 5, 6},  {3504, 6, 7}, {3584, 7, 8},  {3632, 8, 9}, {4096, 1, 1}};
  for (const auto& [size, pages, objs] : rows) {
    SCOPED_TRACE(size);
    const ClassGeometry* c = find_size(t, size);
    ASSERT_NE(c, nullptr) << "no class of size " << size;
    EXPECT_EQ(c->pages_per_zspage, pages);
    EXPECT_EQ(c->objs_per_zspage, objs);
    EXPECT_EQ(c->index, (size - 32) / 16);
    EXPECT_EQ(c->huge, size == 4096);
  }
  // The single huge class, at the last slot, listed first (largest first).
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(t.front().index, 254u);
  EXPECT_EQ(t.front().size, 4096u);
  EXPECT_TRUE(t.front().huge);
  EXPECT_EQ(std::count_if(t.begin(), t.end(), [](const ClassGeometry& c) { return c.huge; }), 1);
  // 3648 .. 4080 are merged into the huge class: no real class between 3632 and 4096.
  for (const auto& c : t) EXPECT_FALSE(c.size > 3632 && c.size < 4096) << c.size;
}

TEST(GeometryTest, ClassCountAndHugeClassSizePerChain) {
  const struct {
    unsigned chain;
    std::size_t classes, huge_size;
  } cases[] = {{4, 69, 3257}, {8, 119, 3625}, {16, 192, 3833}};
  for (const auto& k : cases) {
    SCOPED_TRACE(k.chain);
    EXPECT_EQ(class_table(k.chain).size(), k.classes);
    auto pool = make_pool(k.chain);
    ASSERT_NE(pool, nullptr);
    EXPECT_EQ(pool->huge_class_size(), k.huge_size);
    EXPECT_EQ(pool->class_stats().size(), k.classes);
  }
}

TEST(GeometryTest, TableMatchesIndependentDerivationForEveryChain) {
  for (unsigned chain = 4; chain <= 16; ++chain) {
    SCOPED_TRACE(chain);
    const RefGeometry ref(chain);
    const auto t = class_table(chain);
    ASSERT_EQ(t.size(), ref.num_classes);
    std::size_t n = 0;
    for (int i = 254; i >= 0; --i) {
      const auto u = static_cast<unsigned>(i);
      if (ref.slot_class[u] != u) continue;
      const ClassGeometry& c = t[n++];
      EXPECT_EQ(c.index, u);
      EXPECT_EQ(c.size, ref.cls[u].size);
      EXPECT_EQ(c.pages_per_zspage, ref.cls[u].pages);
      EXPECT_EQ(c.objs_per_zspage, ref.cls[u].objs);
      EXPECT_EQ(c.huge, ref.cls[u].huge);
    }
    auto pool = make_pool(chain);
    ASSERT_NE(pool, nullptr);
    EXPECT_EQ(pool->huge_class_size(), ref.huge_class_size);
  }
}

TEST(GeometryTest, InvalidChainGivesEmptyTable) {
  EXPECT_TRUE(class_table(3).empty());
  EXPECT_TRUE(class_table(17).empty());
  EXPECT_TRUE(class_table(0).empty());
}

TEST(GeometryTest, PowerOfTwoSizesUseOneFrame) {
  for (unsigned chain : {4u, 8u, 16u}) {
    const RefGeometry ref(chain);
    const auto t = class_table(chain);
    for (unsigned s = 32; s <= 4096; s *= 2) {
      SCOPED_TRACE(::testing::Message() << "chain " << chain << " size " << s);
      const ClassGeometry* c = find_size(t, s);
      ASSERT_NE(c, nullptr);  // never merged away: no larger class has (1, 4096 / s)
      EXPECT_EQ(c->pages_per_zspage, 1u);
      EXPECT_EQ(c->objs_per_zspage, 4096u / s);
    }
  }
}

TEST(GeometryTest, EverySlotMapsToAClassAtLeastAsLarge) {
  for (unsigned chain = 4; chain <= 16; ++chain) {
    SCOPED_TRACE(chain);
    auto pool = make_pool(chain);
    ASSERT_NE(pool, nullptr);
    const auto t = class_table(chain);
    for (unsigned slot = 0; slot < kNumClassSlots; ++slot) {
      const unsigned size = std::min(32 + 16 * slot, 4096u);
      const unsigned idx = pool->lookup_class_index(size);
      EXPECT_GE(idx, slot);
      auto it =
          std::find_if(t.begin(), t.end(), [&](const ClassGeometry& c) { return c.index == idx; });
      ASSERT_NE(it, t.end()) << "slot " << slot << " maps to " << idx << ", not a real class";
      EXPECT_GE(it->size, size) << "slot " << slot;
    }
  }
}

TEST(GeometryTest, LookupClassIndexUsesTheRawSize) {
  auto pool = make_pool(8);
  ASSERT_NE(pool, nullptr);
  const RefGeometry ref(8);
  for (unsigned s = 0; s <= 4096; ++s) {
    ASSERT_EQ(pool->lookup_class_index(s), ref.slot_class[RefGeometry::slot_of(s)]) << "size " << s;
  }
  // No header is added: 3632 is served by class 3632 (index 225), 3633..4096 by the huge
  // class; 33..48 by the 48-byte class (index 1) and 1..32 by index 0.
  EXPECT_EQ(pool->lookup_class_index(3632), 225u);
  for (unsigned s = 3633; s <= 4096; ++s) ASSERT_EQ(pool->lookup_class_index(s), 254u) << s;
  EXPECT_EQ(pool->lookup_class_index(3648), 254u);  // merged slot: the larger class's index
  EXPECT_EQ(pool->lookup_class_index(1), 0u);
  EXPECT_EQ(pool->lookup_class_index(32), 0u);
  EXPECT_EQ(pool->lookup_class_index(33), 1u);
  // A merged slot below the huge range returns the larger class's index.
  unsigned merged = 0;
  for (unsigned slot = 0; slot < 254; ++slot) {
    if (ref.slot_class[slot] != slot) {
      merged++;
      EXPECT_EQ(pool->lookup_class_index(32 + 16 * slot), ref.slot_class[slot]);
      EXPECT_GT(ref.slot_class[slot], slot);
    }
  }
  EXPECT_EQ(merged, 255u - 119u);
}

TEST(GeometryTest, CApiReportsTheSameGeometry) {
  zs_pool* p = zs_create_pool("geometry");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(zs_huge_class_size(p), 3625u);
  EXPECT_EQ(zs_lookup_class_index(p, 3632), 225u);
  EXPECT_EQ(zs_lookup_class_index(p, 3633), 254u);
  EXPECT_EQ(zs_lookup_class_index(p, 4096), 254u);
  zs_destroy_pool(p);
}

TEST(GeometryTest, ClassStatsAgreeWithTable) {
  auto pool = make_pool(8);
  ASSERT_NE(pool, nullptr);
  const auto t = class_table(8);
  auto s = pool->class_stats();
  ASSERT_EQ(s.size(), t.size());
  std::sort(s.begin(), s.end(),
            [](const ClassStats& a, const ClassStats& b) { return a.index > b.index; });
  for (std::size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(s[i].index, t[i].index);
    EXPECT_EQ(s[i].size, t[i].size);
    EXPECT_EQ(s[i].pages_per_zspage, t[i].pages_per_zspage);
    EXPECT_EQ(s[i].objs_per_zspage, t[i].objs_per_zspage);
    EXPECT_EQ(s[i].huge, t[i].huge);
    EXPECT_EQ(s[i].obj_allocated, 0u);
  }
}

// Large objects (docs/units.md#pool-objects-larger-than-a-frame): a run of whole frames
// plus a small-class tail.
TEST(GeometryTest, MaxTailIsTheLargestNormalClassPerChain) {
  const struct {
    unsigned chain;
    std::size_t max_tail;
  } cases[] = {{4, 3264}, {8, 3632}, {16, 3840}};
  for (const auto& k : cases) {
    SCOPED_TRACE(k.chain);
    const Geometry g(k.chain);
    EXPECT_EQ(g.max_tail(), k.max_tail);
    const auto t = class_table(k.chain);
    const ClassGeometry* c = find_size(t, static_cast<unsigned>(k.max_tail));
    ASSERT_NE(c, nullptr);
    EXPECT_FALSE(c->huge);
    EXPECT_GT(c->objs_per_zspage, 1u);
    // Nothing between it and the huge class: a longer tail would take a frame anyway.
    for (const auto& other : t)
      EXPECT_FALSE(other.size > k.max_tail && other.size < 4096) << other.size;
  }
}

TEST(GeometryTest, SplitLargeExamples) {
  // (size, frames, tail) at chain 8 (tails up to 3632 bytes).
  const std::tuple<std::size_t, unsigned, unsigned> rows[] = {
      {4097, 1, 1},     {8191, 2, 0},   {8192, 2, 0},     {7728, 1, 3632}, {7729, 2, 0},
      {10000, 2, 1808}, {16384, 4, 0},  {29000, 7, 328},  {32768, 8, 0},   {65535, 16, 0},
      {65536, 16, 0},   {61439, 15, 0}, {60000, 14, 2656}};
  for (const auto& [size, frames, tail] : rows) {
    SCOPED_TRACE(size);
    const LargeSplit s = split_large(size, 3632);
    EXPECT_EQ(s.frames, frames);
    EXPECT_EQ(s.tail, tail);
  }
}

TEST(GeometryTest, SplitLargeCoversEverySizeAndNeverCostsMoreThanWholeFrames) {
  for (unsigned chain : {4u, 8u, 16u}) {
    const Geometry g(chain);
    const std::size_t tail_max = g.max_tail();
    for (std::size_t size = kFrameSize + 1; size <= kMaxLargeObjectSize; size++) {
      const LargeSplit s = split_large(size, tail_max);
      ASSERT_LE(s.frames, kMaxRunFrames) << size;
      ASSERT_GE(s.frames, 1u) << size;
      ASSERT_LE(s.tail, tail_max) << size;
      if (s.tail != 0) {
        // Exact: the run and the tail hold the object and nothing else.
        ASSERT_EQ(std::size_t{s.frames} * kFrameSize + s.tail, size) << size;
      } else {
        // No tail: whole frames, at most one more than the bytes need, and only when the
        // remainder was too long for a normal class.
        ASSERT_GE(std::size_t{s.frames} * kFrameSize, size) << size;
        ASSERT_EQ(s.frames, (size + kFrameSize - 1) / kFrameSize) << size;
        ASSERT_TRUE(size % kFrameSize == 0 || size % kFrameSize > tail_max) << size;
      }
    }
  }
}

TEST(GeometryTest, HugeObjectSizeScalesTheHugeClassSize) {
  EXPECT_EQ(huge_object_size(4096, 3625), 3625u);  // the kernel's threshold for a page
  EXPECT_EQ(huge_object_size(16384, 3625), 14500u);
  EXPECT_EQ(huge_object_size(32768, 3625), 29000u);
  EXPECT_EQ(huge_object_size(65536, 3625), 58000u);
  EXPECT_EQ(huge_object_size(32768, 3257), 26056u);  // chain 4
}

TEST(GeometryTest, RunClassesFollowTheSmallClasses) {
  EXPECT_EQ(num_run_classes(4096), 0u);
  EXPECT_EQ(num_run_classes(16384), 3u);  // runs of 2, 3, 4 frames
  EXPECT_EQ(num_run_classes(32768), 7u);
  EXPECT_EQ(num_run_classes(65536), 15u);
  EXPECT_EQ(num_run_classes(20000), 4u);  // up to 5 frames
  EXPECT_EQ(run_class_index(2), kSlots);
  EXPECT_EQ(run_class_index(16), kSlots + 14);
}

}  // namespace
}  // namespace uzram

// Round trip of every object size 1..4096 at chains 4, 8 and 16: bytes come back intact,
// objects that lie in one frame are returned in place, frame-spanning ones in place when
// their frames are adjacent in the arena (always, in a pool no migration touched) and in
// local_copy when they are not (after a migration).
//
// In a fresh zspage the free list hands out slots 0, 1, 2, ... in order, so object i of a
// size whose class has slot size S starts at byte i * S of the chain (objects have no
// header); that predicts exactly which objects span a frame boundary.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "testing/pool_helpers.h"
#include "testing/ref_geometry.h"
#include "testing/seed.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

using testing::fill_random;
using testing::make_pool;
using testing::RefClass;
using testing::RefGeometry;

class RoundTripTest : public ::testing::TestWithParam<unsigned> {};

TEST_P(RoundTripTest, EverySize) {
  const unsigned chain = GetParam();
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  Random rng(seed ^ chain);
  auto pool = make_pool(chain);
  ASSERT_NE(pool, nullptr);
  const RefGeometry ref(chain);

  std::vector<unsigned char> data(kPageSize * 256);  // written bytes of every object
  std::vector<unsigned char> local(kPageSize);
  std::vector<Handle> handles;
  std::size_t spanning = 0, direct = 0;
  for (std::size_t size = 1; size <= kMaxObjectSize; ++size) {
    const RefClass& c = ref.class_for_alloc(size);
    handles.clear();
    for (unsigned i = 0; i < c.objs; ++i) {
      auto h = pool->alloc(size);
      ASSERT_TRUE(h.has_value()) << "size " << size << ": " << h.error().message();
      handles.push_back(*h);
      ASSERT_EQ(pool->object_size(*h), size);
      fill_random(rng, &data[i * size], size);
      pool->write(*h, &data[i * size], size);
    }
    // One zspage of the class holds them all.
    ASSERT_EQ(pool->total_pages(), c.pages) << "size " << size;
    for (unsigned i = 0; i < c.objs; ++i) {
      const std::size_t off = (std::size_t{i} * c.size) % kPageSize;
      const bool spans = off + size > kPageSize;
      std::memset(local.data(), 0xa5, local.size());
      const void* p = pool->read_begin(handles[i], local.data());
      if (spans) {
        // No migration ran: the zspage's frames are adjacent, so no copy either.
        ASSERT_NE(p, local.data())
            << "size " << size << " object " << i << " spans adjacent frames: expected no copy";
        ASSERT_EQ(reinterpret_cast<std::uintptr_t>(p) % kPageSize, off)
            << "size " << size << " object " << i;
        spanning++;
      } else {
        ASSERT_NE(p, local.data())
            << "size " << size << " object " << i << " fits a frame: expected no copy";
        ASSERT_EQ(reinterpret_cast<std::uintptr_t>(p) % kPageSize, off)
            << "size " << size << " object " << i;
        direct++;
      }
      const int cmp = std::memcmp(p, &data[i * size], size);
      pool->read_end(handles[i], p);
      ASSERT_EQ(cmp, 0) << "size " << size << " object " << i << " bytes differ";
    }
    // A partial write changes only the prefix.
    const std::size_t part = size / 2;
    if (part > 0) {
      fill_random(rng, &data[0], part);
      pool->write(handles[0], &data[0], part);
    }
    const void* p = pool->read_begin(handles[0], local.data());
    const int cmp = std::memcmp(p, &data[0], size);
    pool->read_end(handles[0], p);
    ASSERT_EQ(cmp, 0) << "size " << size << " after a partial write";
    for (Handle h : handles) pool->free(h);
    ASSERT_EQ(pool->total_pages(), 0u) << "size " << size;
  }
  pool->check_invariants();
  EXPECT_GT(spanning, 0u);
  EXPECT_GT(direct, 0u);
}

INSTANTIATE_TEST_SUITE_P(Chains, RoundTripTest, ::testing::Values(4u, 8u, 16u),
                         [](const ::testing::TestParamInfo<unsigned>& i) {
                           return "chain" + std::to_string(i.param);
                         });

TEST(ObjectAccessTest, NonSpanningObjectsNeedNoLocalCopy) {
  auto pool = make_pool(8);
  ASSERT_NE(pool, nullptr);
  // The first object of a zspage starts at offset 8 (0 when huge): it never spans.
  for (std::size_t size : {1u, 100u, 2040u, 3624u, 3625u, 4096u}) {
    auto h = pool->alloc(size);
    ASSERT_TRUE(h.has_value());
    std::vector<unsigned char> buf(size, static_cast<unsigned char>(size));
    pool->write(*h, buf.data(), size);
    const void* p = pool->read_begin(*h, nullptr);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(std::memcmp(p, buf.data(), size), 0) << size;
    pool->read_end(*h, p);
    pool->free(*h);
  }
  EXPECT_EQ(pool->total_pages(), 0u);
}

// An object over two frames that are not adjacent in the arena (a migration moved the
// second one) is gathered into local_copy, and a write reaches both parts.
TEST(ObjectAccessTest, SpanningObjectOverMovedFrameIsCopied) {
  auto pool = make_pool(8);
  ASSERT_NE(pool, nullptr);
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  Random rng(seed);
  // Slot size 208: object 19 lies at [3952, 4152) of the chain, over frames 0 and 1 of
  // the pool's first zspage (frames 0 and 1 of a fresh arena).
  constexpr std::size_t kSize = 200;
  std::vector<Handle> hs;
  std::vector<unsigned char> data(20 * kSize);
  for (int i = 0; i < 20; ++i) {
    hs.push_back(*pool->alloc(kSize));
    fill_random(rng, &data[i * kSize], kSize);
    pool->write(hs.back(), &data[i * kSize], kSize);
  }
  std::vector<unsigned char> local(kPageSize, 0xa5);
  const void* p = pool->read_begin(hs[19], local.data());
  EXPECT_NE(p, local.data()) << "frames 0 and 1 are adjacent: expected no copy";
  EXPECT_EQ(std::memcmp(p, &data[19 * kSize], kSize), 0);
  pool->read_end(hs[19], p);

  // Frame 1 moves to a new frame, which cannot be frame 1 + 0 = 1 (still in use while it
  // is copied), so frame 0's neighbour is no longer the object's second frame.
  auto moved = migrate_frame(*pool, 1);
  ASSERT_TRUE(moved.has_value()) << moved.error().message();
  ASSERT_NE(*moved, 1u);
  p = pool->read_begin(hs[19], local.data());
  EXPECT_EQ(p, local.data()) << "frames no longer adjacent: expected a copy";
  EXPECT_EQ(std::memcmp(p, &data[19 * kSize], kSize), 0);
  pool->read_end(hs[19], p);

  fill_random(rng, &data[19 * kSize], kSize);
  pool->write(hs[19], &data[19 * kSize], kSize);
  for (int i = 0; i < 20; ++i) {
    p = pool->read_begin(hs[i], local.data());
    EXPECT_EQ(std::memcmp(p, &data[i * kSize], kSize), 0) << "object " << i;
    pool->read_end(hs[i], p);
  }
  pool->check_invariants();
  for (Handle h : hs) pool->free(h);
}

TEST(ObjectAccessTest, HugeObjectsTakeAWholeFrame) {
  auto pool = make_pool(8);
  ASSERT_NE(pool, nullptr);
  // Objects have no header: 3633 bytes and more exceed the largest normal class (3632) and
  // are stored raw in one frame each.
  auto a = pool->alloc(3633);
  auto b = pool->alloc(4096);
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(pool->total_pages(), 2u);
  // 3632 and 3625 (the kernel's huge_class_size, which includes its 8-byte header) fit the
  // 3632 class: 9 objects in 8 frames.
  auto c = pool->alloc(3632);
  auto d = pool->alloc(3625);
  ASSERT_TRUE(c.has_value() && d.has_value());
  EXPECT_EQ(pool->total_pages(), 10u);
  EXPECT_EQ(pool->huge_class_size(), 3625u);  // the kernel's value, for zram's threshold
  for (Handle h : {*a, *b, *c, *d}) pool->free(h);
  EXPECT_EQ(pool->total_pages(), 0u);
}

}  // namespace
}  // namespace uzram

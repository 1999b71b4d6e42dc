// Frame migration and the reader pin: a zspage read-locked by read_begin() is neither
// migrated (busy) nor compacted (skipped, compact_busy) until read_end(); data survives.
// The reader runs on its own thread (testing::HeldReads), like a sleeping decompressor.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "testing/pool_helpers.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

using testing::HeldReads;
using testing::make_pool;

std::vector<unsigned char> pattern(std::size_t size, unsigned seed) {
  std::vector<unsigned char> b(size);
  for (std::size_t i = 0; i < size; ++i) b[i] = static_cast<unsigned char>(seed * 131 + i * 7);
  return b;
}

Handle store(Pool& pool, std::size_t size, unsigned seed) {
  auto h = pool.alloc(size);
  EXPECT_TRUE(h.has_value());
  const auto b = pattern(size, seed);
  pool.write(*h, b.data(), size);
  return *h;
}

bool intact(Pool& pool, Handle h, unsigned seed) {
  const std::size_t size = pool.object_size(h);
  std::vector<unsigned char> local(kPageSize);
  const void* p = pool.read_begin(h, local.data());
  const bool ok = std::memcmp(p, pattern(size, seed).data(), size) == 0;
  pool.read_end(h, p);
  return ok;
}

class MigrationTest : public ::testing::TestWithParam<TranslationMode> {};

TEST_P(MigrationTest, MovesAFrameAndKeepsHandles) {
  auto pool = make_pool(8, GetParam());
  ASSERT_NE(pool, nullptr);
  // 1000 + 8 -> the 1024 class: 4 objects in one frame (frame 0 of a fresh pool).
  std::vector<Handle> hs;
  for (unsigned i = 0; i < 4; ++i) hs.push_back(store(*pool, 1000, i));
  ASSERT_EQ(pool->total_pages(), 1u);
  std::vector<unsigned char> local(kPageSize);
  const void* before = pool->read_begin(hs[0], local.data());
  pool->read_end(hs[0], before);

  auto r = migrate_frame(*pool, 0);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_NE(*r, 0u);
  EXPECT_EQ(pool->stats().migrations, 1u);
  EXPECT_EQ(pool->total_pages(), 1u);
  pool->check_invariants();
  const void* after = pool->read_begin(hs[0], local.data());
  pool->read_end(hs[0], after);
  EXPECT_NE(after, before);  // same handle, new frame
  for (unsigned i = 0; i < 4; ++i) EXPECT_TRUE(intact(*pool, hs[i], i)) << i;
  // The old frame is no longer in use.
  EXPECT_EQ(migrate_frame(*pool, 0).error(), Errc::invalid_argument);
  // pack() moves it back down to the lowest free frame.
  EXPECT_EQ(pack(*pool, 16), 1u);
  EXPECT_EQ(pool->stats().arena_frames, 1u);
  pool->check_invariants();
  for (unsigned i = 0; i < 4; ++i) EXPECT_TRUE(intact(*pool, hs[i], i)) << i;
  for (Handle h : hs) pool->free(h);
}

TEST_P(MigrationTest, BusyWhileAReaderHoldsTheZspage) {
  auto pool = make_pool(8, GetParam());
  ASSERT_NE(pool, nullptr);
  // 200 + 8 -> the 208 class: 59 objects in 3 frames (0, 1, 2); object 0 is in frame 0.
  std::vector<Handle> hs;
  for (unsigned i = 0; i < 30; ++i) hs.push_back(store(*pool, 200, i));
  ASSERT_EQ(pool->total_pages(), 3u);
  {
    HeldReads reader(*pool, {hs[0]});
    for (std::uint32_t f : {0u, 1u}) {  // any frame of the read-locked zspage
      auto r = migrate_frame(*pool, f);
      ASSERT_FALSE(r.has_value()) << f;
      EXPECT_EQ(r.error(), Errc::busy) << f;
    }
    EXPECT_EQ(pool->stats().migrate_busy, 2u);
    EXPECT_EQ(pool->stats().migrations, 0u);
    EXPECT_EQ(pool->total_pages(), 3u);
  }
  pool->check_invariants();
  for (unsigned i = 0; i < hs.size(); ++i) EXPECT_TRUE(intact(*pool, hs[i], i)) << i;
  auto r = migrate_frame(*pool, 0);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(pool->stats().migrations, 1u);
  pool->check_invariants();
  for (unsigned i = 0; i < hs.size(); ++i) EXPECT_TRUE(intact(*pool, hs[i], i)) << i;
  for (Handle h : hs) pool->free(h);
  EXPECT_EQ(pool->total_pages(), 0u);
}

TEST_P(MigrationTest, CompactionSkipsAReadLockedZspage) {
  auto pool = make_pool(8, GetParam());
  ASSERT_NE(pool, nullptr);
  // 2040 + 8 = 2048: two objects per one-frame zspage. Six objects, one freed from each
  // zspage: three half-full zspages, compaction could free one frame.
  std::vector<Handle> hs;
  for (unsigned i = 0; i < 6; ++i) hs.push_back(store(*pool, 2040, i));
  for (unsigned i = 0; i < 6; i += 2) pool->free(hs[i]);
  const std::vector<Handle> live = {hs[1], hs[3], hs[5]};
  ASSERT_EQ(pool->total_pages(), 3u);
  {
    // Whichever zspage the compactor picks as the source is read-locked.
    HeldReads reader(*pool, live);
    EXPECT_EQ(pool->compact(), 0u);
    EXPECT_GE(pool->stats().compact_busy, 1u);
    EXPECT_EQ(pool->total_pages(), 3u);
    EXPECT_EQ(pool->stats().pages_compacted, 0u);
  }
  pool->check_invariants();
  for (unsigned i = 1; i < 6; i += 2) EXPECT_TRUE(intact(*pool, hs[i], i)) << i;
  EXPECT_EQ(pool->compact(), 1u);
  EXPECT_EQ(pool->total_pages(), 2u);
  pool->check_invariants();
  for (unsigned i = 1; i < 6; i += 2) EXPECT_TRUE(intact(*pool, hs[i], i)) << i;
  for (Handle h : live) pool->free(h);
}

TEST_P(MigrationTest, CompactionMovesOthersAroundOneReadLockedZspage) {
  auto pool = make_pool(8, GetParam());
  ASSERT_NE(pool, nullptr);
  // Same class; a reader pins only the fullest zspage, which is the destination (not
  // write-locked): compaction goes ahead and moves the emptier zspages' objects into it.
  std::vector<Handle> hs;
  for (unsigned i = 0; i < 8; ++i) hs.push_back(store(*pool, 2040, i));
  pool->free(hs[2]);
  pool->free(hs[4]);
  pool->free(hs[6]);  // zspages {0,1} full, {3}, {5}, {7} half
  {
    HeldReads reader(*pool, {hs[0], hs[1]});
    EXPECT_EQ(pool->compact(), 1u);
  }
  pool->check_invariants();
  for (unsigned i : {0u, 1u, 3u, 5u, 7u}) EXPECT_TRUE(intact(*pool, hs[i], i)) << i;
  for (unsigned i : {0u, 1u, 3u, 5u, 7u}) pool->free(hs[i]);
  EXPECT_EQ(pool->total_pages(), 0u);
}

// pack() may move a frame down to frame 0; that frame must then be used, and frames must
// not leak: with no idle frames kept (decay 0), an empty pool's arena shrinks back to
// nothing.
TEST_P(MigrationTest, PackIntoFrameZeroLeaksNothing) {
  PoolOptions o;
  o.max_bytes = std::size_t{64} << 20;
  o.frame_cache = 0;
  o.decay_ms = 0;
  auto r = create_pool(o, GetParam());
  ASSERT_TRUE(r.has_value());
  auto pool = std::move(r).value();
  const Handle a = store(*pool, 4096, 1);  // frame 0
  const Handle b = store(*pool, 4096, 2);  // frame 1
  pool->free(a);
  EXPECT_EQ(pool->stats().arena_frames, 2u);
  EXPECT_EQ(pack(*pool, 16), 1u);  // frame 1 -> frame 0
  EXPECT_EQ(pool->stats().arena_frames, 1u);
  EXPECT_EQ(pool->stats().migrations, 1u);
  pool->check_invariants();
  EXPECT_TRUE(intact(*pool, b, 2));
  pool->free(b);
  EXPECT_EQ(pool->total_pages(), 0u);
  EXPECT_EQ(pool->stats().arena_frames, 0u) << "a frame was leaked";
}

INSTANTIATE_TEST_SUITE_P(Modes, MigrationTest,
                         ::testing::Values(TranslationMode::validated,
                                           TranslationMode::kernel_rwlock),
                         [](const auto& i) { return std::string(testing::mode_name(i.param)); });

}  // namespace
}  // namespace uzram

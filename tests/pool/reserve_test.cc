// The options of a pool that serves swap (PoolOptions::reserve_handles, eager_workers, and
// every freed frame kept): handle entries mapped at create and counted as metadata from the
// start, background threads running before the first job, and no frame returned to the OS
// by free(), compaction or pack().
#include <dirent.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "pool/handle_table.h"
#include "pool/pool_internal.h"
#include "testing/pool_helpers.h"
#include "testing/rss.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

using testing::kShadowMemory;
using testing::rss_bytes;

unsigned thread_count() {
  unsigned n = 0;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

PoolOptions swap_options() {
  PoolOptions o;
  o.name = "swap";
  o.max_bytes = std::size_t{64} << 20;
  o.decay_ms = 0;
  o.frame_cache = o.max_bytes / 4096;
  o.reserve_handles = 100000;
  o.eager_workers = true;
  return o;
}

TEST(SwapPool, HandleReserveIsMappedAtCreate) {
  auto pool = Pool::create(swap_options());
  ASSERT_TRUE(pool.has_value());
  const std::uint64_t meta0 = (*pool)->stats().metadata_bytes;
  // The reserve: 100000 entries in whole chunks, and a chunk per size class.
  EXPECT_GE(meta0, (100000 + HandleTable::kChunkEntries - 1) / HandleTable::kChunkEntries *
                       HandleTable::kChunkEntries * 8);
  std::vector<Handle> hs;
  for (int i = 0; i < 50000; i++) {
    auto h = (*pool)->alloc(64 + i % 512);
    ASSERT_TRUE(h.has_value());
    hs.push_back(*h);
  }
  // Entries came from the reserve: the handle table's share did not grow (the zspage
  // descriptors and frame table may).
  PoolOptions plain = swap_options();
  plain.reserve_handles = 0;
  auto other = Pool::create(plain);
  ASSERT_TRUE(other.has_value());
  std::vector<Handle> hs2;
  for (int i = 0; i < 50000; i++) hs2.push_back(*(*other)->alloc(64 + i % 512));
  const std::uint64_t grown_with = (*pool)->stats().metadata_bytes - meta0;
  const std::uint64_t grown_without =
      (*other)->stats().metadata_bytes - Pool::create(plain).value()->stats().metadata_bytes;
  EXPECT_LT(grown_with, grown_without);
  (*pool)->check_invariants();
  (*pool)->free_batch(hs.data(), hs.size());
  (*other)->free_batch(hs2.data(), hs2.size());
}

// Large objects (units of 32 KiB) carry an aux word (their tail's handle) in chunks of
// their own: those are reserved too, so a swap pool storing units never maps memory after
// create (under mlockall, a mapping would wait for the kernel to find pages, which under
// memory pressure means waiting for swap: for this pool). Issue 14.
TEST(SwapPool, LargeObjectsTakeNoMappingAfterCreate) {
  for (bool reserve : {true, false}) {
    PoolOptions o = swap_options();
    o.max_object_size = std::size_t{32} << 10;
    o.max_bytes = std::size_t{16} << 20;
    o.frame_cache = o.max_bytes / 4096;
    o.reserve_handles = reserve ? (std::size_t{64} << 20) / 4096 : 0;
    auto pool = Pool::create(o);
    ASSERT_TRUE(pool.has_value());
    Pool& p = **pool;
    // Every run length and many small classes, until the pool is full.
    std::vector<Handle> hs;
    for (std::size_t i = 0;; i++) {
      const std::size_t size = i % 3 == 0 ? 64 + i % 3000 : 3000 + (i * 977) % (29 << 10);
      auto h = p.alloc(size);
      if (!h) break;
      hs.push_back(*h);
    }
    EXPECT_GT(p.stats().large_objects, 500u);
    if (reserve) {
      EXPECT_EQ(handle_chunks_mapped_on_demand(p), 0u);
    } else {
      EXPECT_GT(handle_chunks_mapped_on_demand(p), 0u);  // what the reserve saves
    }
    p.check_invariants();
    p.free_batch(hs.data(), hs.size());
  }
}

TEST(SwapPool, PrefaultMakesEveryFrameResidentAtCreate) {
  PoolOptions o = swap_options();
  o.prefault = true;
  const std::size_t before = rss_bytes();
  auto pool = Pool::create(o);
  ASSERT_TRUE(pool.has_value());
  EXPECT_GE(rss_bytes() - before, o.max_bytes - (std::size_t{1} << 20));
  // Allocations take those frames: objects round-trip, and nothing more faults in.
  const std::size_t full = rss_bytes();
  std::vector<Handle> hs;
  std::vector<unsigned char> buf(3000, 1), got(3000);
  for (int i = 0; i < 10000; i++) {
    auto h = (*pool)->alloc(3000);
    ASSERT_TRUE(h.has_value());
    buf[0] = static_cast<unsigned char>(i);
    (*pool)->write(*h, buf.data(), buf.size());
    hs.push_back(*h);
  }
  // Metadata only (not checked under a sanitizer: its shadow of the frames, touched by
  // these writes, counts in RSS too).
  if (!kShadowMemory) {
    EXPECT_LE(rss_bytes(), full + (std::size_t{4} << 20));
  }
  for (int i = 0; i < 10000; i++) {
    const void* p = (*pool)->read_begin(hs[i], got.data());
    EXPECT_EQ(static_cast<const unsigned char*>(p)[0], static_cast<unsigned char>(i));
    (*pool)->read_end(hs[i], p);
  }
  (*pool)->free_batch(hs.data(), hs.size());
}

TEST(SwapPool, EagerWorkersStartAtCreate) {
  const unsigned before = thread_count();
  auto pool = Pool::create(swap_options());
  ASSERT_TRUE(pool.has_value());
  EXPECT_EQ(thread_count(), before + 1);  // the deferred-free worker
  PoolOptions lazy = swap_options();
  lazy.eager_workers = false;
  auto other = Pool::create(lazy);
  EXPECT_EQ(thread_count(), before + 1);
}

TEST(SwapPool, EveryFreedFrameIsKept) {
  auto pool = Pool::create(swap_options());
  ASSERT_TRUE(pool.has_value());
  Pool& p = **pool;
  std::vector<Handle> hs;
  std::vector<unsigned char> buf(1000, 7);
  for (int i = 0; i < 20000; i++) {
    auto h = p.alloc(1000);
    ASSERT_TRUE(h.has_value());
    p.write(*h, buf.data(), buf.size());
    hs.push_back(*h);
  }
  const std::uint64_t frames = p.stats().arena_frames;
  // Free every other object, compact and pack: frames are vacated...
  std::vector<Handle> odd;
  for (std::size_t i = 1; i < hs.size(); i += 2) odd.push_back(hs[i]);
  p.free_batch(odd.data(), odd.size());
  EXPECT_GT(p.compact(), 0u);
  pack(p, 1 << 20);
  p.flush_deferred();
  // ... and all stay with the pool as idle frames: none went back.
  PoolStats s = p.stats();
  EXPECT_EQ(s.frames_returned, 0u);
  EXPECT_EQ(s.arena_frames, frames);
  EXPECT_EQ(s.total_pages + s.idle_frames, frames);
  p.check_invariants();
  std::vector<Handle> even;
  for (std::size_t i = 0; i < hs.size(); i += 2) even.push_back(hs[i]);
  p.free_batch(even.data(), even.size());
  p.flush_deferred();
  s = p.stats();
  EXPECT_EQ(s.frames_returned, 0u);
  EXPECT_EQ(s.idle_frames, frames);
}

}  // namespace
}  // namespace uzram

// Huge-page regions of the frame arena (docs/design.md#huge-pages): FrameRegions' order of
// allocation and return, and FrameArena's regions in the kernel's view (/proc/self/smaps):
// refilled without splitting, never open to khugepaged, wholly idle regions returned whole,
// partly idle ones 4 KiB at a time within the decay period.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "pool/frame_arena.h"
#include "pool/frame_regions.h"
#include "testing/rss.h"
#include "testing/seed.h"
#include "testing/smaps.h"

namespace uzram {
namespace {

constexpr unsigned kR = FrameRegions::kFrames;

// Region r's frames [from, to) in use (taken from an otherwise idle table).
void use(FrameRegions& g, std::uint32_t r, unsigned from, unsigned to) {
  for (unsigned k = from; k < to; k++) g.add_used(r * kR + k, +1);
}

TEST(FrameRegionsTest, TakeIdlePrefersTheFullestRegionLowestFirst) {
  FrameRegions g;
  ASSERT_TRUE(g.init(8 * kR).has_value());
  // Region 1: 500 in use, 12 idle; region 3: 100 in use, 412 idle; region 5 wholly idle.
  use(g, 1, 0, kR);
  use(g, 3, 0, kR);
  for (unsigned k = 500; k < kR; k++) g.add_idle(1 * kR + k);
  for (unsigned k = 100; k < kR; k++) g.add_idle(3 * kR + k);
  g.add_whole_idle(5);
  EXPECT_EQ(g.idle_total(), 12u + 412u + kR);
  std::uint32_t out[16];
  ASSERT_EQ(g.take_idle(out, 4), 4u);
  for (unsigned i = 0; i < 4; i++) EXPECT_EQ(out[i], 1 * kR + 500 + i);
  ASSERT_EQ(g.take_idle(out, 16), 8u);  // the rest of region 1, then none of it left
  EXPECT_EQ(g.idle(1), 0u);
  ASSERT_EQ(g.take_idle(out, 1), 1u);
  EXPECT_EQ(out[0], 3 * kR + 100);  // the next fullest
  EXPECT_EQ(g.used(3), 101u);
}

TEST(FrameRegionsTest, ReturnTakesWholeIdleRegionsFirstThenTheEmptiest) {
  FrameRegions g;
  ASSERT_TRUE(g.init(8 * kR).has_value());
  use(g, 0, 0, kR);
  use(g, 2, 0, kR);
  for (unsigned k = 256; k < kR; k++) g.add_idle(0 * kR + k);  // 256 in use
  for (unsigned k = 500; k < kR; k++) g.add_idle(2 * kR + k);  // 500 in use
  g.add_whole_idle(4);
  g.add_whole_idle(6);
  std::vector<std::uint32_t> out(4096);
  // 10 frames too many: a wholly idle region goes, whole (the oldest listed: region 4).
  std::size_t allowed = g.idle_total() - 10;
  unsigned n = g.take_for_return(out.data(), 4096, allowed, 0);
  ASSERT_EQ(n, kR);
  std::sort(out.begin(), out.begin() + n);
  EXPECT_EQ(out[0], 4 * kR);
  EXPECT_EQ(out[n - 1], 4 * kR + kR - 1);
  // Down to 100 idle frames: region 6 whole, then the emptiest partly used region (0).
  n = g.take_for_return(out.data(), 4096, 100, 0);
  EXPECT_EQ(g.idle_total(), 100u);
  EXPECT_EQ(g.idle(6), 0u);
  EXPECT_EQ(g.idle(2), 12u);  // the fullest is left alone
  EXPECT_EQ(g.idle(0), 88u);
  // The highest frames went: alloc takes the lowest, so the two ends do not meet.
  for (unsigned i = 0; i < n; i++) {
    if (out[i] < kR) {
      EXPECT_GE(out[i], 256u + 88u) << i;
    }
  }
  // A floor keeps a wholly idle region from going whole when that would cross it.
  g.add_whole_idle(7);
  n = g.take_for_return(out.data(), 4096, g.idle_total() - 1, g.idle_total() - 5);
  EXPECT_EQ(n, 1u);
}

TEST(FrameRegionsDeathTest, AFrameFreedTwiceAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  FrameRegions g;
  ASSERT_TRUE(g.init(2 * kR).has_value());
  use(g, 0, 0, 4);
  g.add_idle(2);
  EXPECT_DEATH(g.add_idle(2), "frame 2 freed twice");
}

#ifdef __linux__
using testing::smaps_range;

// An arena of 64 MiB with huge regions (skipped where THP is "never" or absent).
struct HugeArena {
  FrameArena arena;
  bool ok = false;
  explicit HugeArena(std::uint32_t decay_ms) {
    ok = arena.init(std::size_t{64} << 20, 0, decay_ms, false, true).has_value() &&
         arena.huge_regions();
  }
  std::vector<FrameId> alloc(unsigned frames) {
    std::vector<FrameId> ids(frames);
    for (unsigned i = 0; i < frames; i += 4) {
      EXPECT_TRUE(arena.alloc(ids.data() + i, 4).has_value());
    }
    for (FrameId id : ids) std::memset(arena.address(id), static_cast<int>(id), kFrameSize);
    return ids;
  }
  testing::SmapsRange smaps() const {
    return smaps_range(arena.address(0), arena.address(static_cast<FrameId>(arena.max_frames())));
  }
};

TEST(HugeRegionTest, RefillReusesTheSameHugePagesAndNeverOpensTheArenaToKhugepaged) {
  HugeArena h(60000);
  if (!h.ok) GTEST_SKIP() << "no transparent huge pages here";
  std::vector<FrameId> ids = h.alloc(8 * kR);
  EXPECT_EQ(h.arena.regions_populated(), 8u);
  const auto before = h.smaps();
  ASSERT_TRUE(before.found);
  EXPECT_TRUE(before.all_nohugepage) << "khugepaged could collapse the arena";
  EXPECT_LE(before.vmas, 2u) << "the region madvises left the arena split in VMAs";
  if (before.anon_huge_kb == 0) GTEST_SKIP() << "the kernel gave no huge page (fragmented?)";
  std::sort(ids.begin(), ids.end());
  h.arena.free(ids.data(), static_cast<unsigned>(ids.size()));
  EXPECT_EQ(h.arena.idle_frames(), 8u * kR);
  std::vector<FrameId> again = h.alloc(8 * kR);
  std::sort(again.begin(), again.end());
  EXPECT_EQ(again, ids);
  EXPECT_EQ(h.arena.regions_populated(), 8u);
  EXPECT_EQ(h.arena.frames_returned(), 0u);
  const auto after = h.smaps();
  EXPECT_EQ(after.anon_huge_kb, before.anon_huge_kb) << "a huge page was split";
  EXPECT_TRUE(after.all_nohugepage);
  EXPECT_LE(after.vmas, 2u);
  h.arena.free(again.data(), static_cast<unsigned>(again.size()));
}

// The decay returns a wholly idle region whole and a partly idle one's idle frames
// (splitting its huge page); the frames in use keep their bytes; RSS falls by what was
// returned, within the decay period.
TEST(HugeRegionTest, DecayReturnsIdleRegionsWholeAndPartlyIdleOnesByFrame) {
  constexpr std::uint32_t kDecayMs = 300;
  HugeArena h(kDecayMs);
  if (!h.ok) GTEST_SKIP() << "no transparent huge pages here";
  std::vector<FrameId> ids = h.alloc(2 * kR);
  std::sort(ids.begin(), ids.end());
  ASSERT_EQ(ids.front(), 0u);
  ASSERT_EQ(ids.back(), 2 * kR - 1);
  const std::size_t rss0 = testing::rss_bytes();
  // Region 1 whole and the upper half of region 0.
  h.arena.free(ids.data() + kR / 2, kR / 2 + kR);
  const auto t0 = std::chrono::steady_clock::now();
  while (h.arena.idle_frames() != 0 &&
         std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(25 * kDecayMs)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(h.arena.idle_frames(), 0u);
  EXPECT_EQ(h.arena.frames_returned(), kR / 2 + kR);
  unsigned used = 0, idle = 0;
  h.arena.region_counts(0, &used, &idle);
  EXPECT_EQ(used, kR / 2);
  EXPECT_EQ(idle, 0u);
  h.arena.region_counts(kR, &used, &idle);
  EXPECT_EQ(used + idle, 0u);
  if (!testing::kShadowMemory) {
    const std::size_t rss1 = testing::rss_bytes();
    EXPECT_GE(rss0 - std::min(rss0, rss1), (kR / 2 + kR) * std::size_t{kFrameSize} * 9 / 10)
        << "RSS " << rss0 << " -> " << rss1;
  }
  for (unsigned i = 0; i < kR / 2; i++) {
    const auto* p = reinterpret_cast<const unsigned char*>(h.arena.address(ids[i]));
    ASSERT_EQ(p[0], static_cast<unsigned char>(ids[i])) << ids[i];
    ASSERT_EQ(p[kFrameSize - 1], static_cast<unsigned char>(ids[i])) << ids[i];
  }
  // A region returned whole is populated whole again when it is needed.
  const std::uint64_t populated = h.arena.regions_populated();
  std::vector<FrameId> more = h.alloc(kR);
  EXPECT_EQ(h.arena.regions_populated(), populated + 1);
  h.arena.free(more.data(), kR);
  h.arena.free(ids.data(), kR / 2);
}

// A prefaulted arena (a swap store's: every frame kept) is populated at create as before
// regions (the THP mode decides the pages; printed), keeps every frame, and populates no
// region later (decay_ms 0).
TEST(HugeRegionTest, PrefaultedArenaIsPopulatedAtCreateAndKeepsEveryFrame) {
  constexpr std::size_t kBytes = std::size_t{8} << 20;
  FrameArena arena;
  ASSERT_TRUE(arena.init(kBytes, kBytes / kFrameSize, 0, /*prefault=*/true, true).has_value());
  EXPECT_FALSE(arena.huge_regions());
  const auto s = smaps_range(arena.address(0), arena.address(kBytes / kFrameSize));
  ASSERT_TRUE(s.found);
  EXPECT_GE(s.rss_kb * 1024, kBytes * 9 / 10) << "not prefaulted";
  std::printf("prefaulted arena: %zu of %zu kB on huge pages\n", s.anon_huge_kb, s.rss_kb);
  std::vector<FrameId> ids(kBytes / kFrameSize);
  for (std::size_t i = 0; i < ids.size(); i += 4) {
    ASSERT_TRUE(arena.alloc(ids.data() + i, 4).has_value());
  }
  FrameId extra;
  EXPECT_FALSE(arena.alloc(&extra, 1).has_value());  // full
  arena.free(ids.data(), static_cast<unsigned>(ids.size()));
  EXPECT_EQ(arena.idle_frames(), ids.size());  // kept, every one
  EXPECT_EQ(arena.frames_returned(), 0u);
  EXPECT_EQ(arena.regions_populated(), 0u);
}

// Threads allocate and free while the decay returns frames and regions are populated:
// no frame is handed out twice, and the counts add up at the end.
TEST(HugeRegionTest, ConcurrentAllocFreeAndDecay) {
  HugeArena h(40);  // a short decay: the worker runs throughout
  if (!h.ok) GTEST_SKIP() << "no transparent huge pages here";
  const std::uint64_t seed = testing::test_seed();
  std::vector<std::atomic<unsigned char>> owned(h.arena.max_frames());
  std::atomic<bool> twice{false};
  auto worker = [&](unsigned t) {
    std::uint64_t x = seed + t * 0x9e3779b97f4a7c15ull;
    std::vector<FrameId> mine;
    for (int step = 0; step < 20000; step++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      if ((x >> 33) % 3 != 0 || mine.size() < 4) {
        FrameId f[4];
        const unsigned n = 1 + (x >> 40) % 4;
        if (!h.arena.alloc(f, n)) continue;
        for (unsigned i = 0; i < n; i++) {
          if (owned[f[i]].exchange(1)) twice = true;
          *reinterpret_cast<volatile unsigned char*>(h.arena.address(f[i])) = 1;
          mine.push_back(f[i]);
        }
      } else {
        const std::size_t k = (x >> 20) % mine.size();
        std::swap(mine[k], mine.back());
        owned[mine.back()].store(0);
        h.arena.free(&mine.back(), 1);
        mine.pop_back();
      }
    }
    for (FrameId f : mine) owned[f].store(0);
    if (!mine.empty()) h.arena.free(mine.data(), static_cast<unsigned>(mine.size()));
  };
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < 3; t++) ts.emplace_back(worker, t);
  for (auto& t : ts) t.join();
  EXPECT_FALSE(twice) << "a frame was handed out twice; seed " << seed;
  h.arena.release_idle();
  EXPECT_EQ(h.arena.idle_frames(), 0u);
}
#endif

}  // namespace
}  // namespace uzram

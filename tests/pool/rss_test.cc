// RSS and the idle-frame decay (docs/design.md#frames): freed frames stay resident and are
// reused without a page fault while the pool is active; within decay_ms of the last free
// they go back to the OS, so RSS returns to total_pages + metadata. Linux only
// (/proc/self/statm). Each test runs with huge pages off and on (PoolOptions::huge_pages;
// on: a region's populated, not yet used frames count as idle too, < 512 per region).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "pool/frame_arena.h"
#include "testing/pool_helpers.h"
#include "testing/rss.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

#ifdef __linux__
using testing::rss_bytes;

std::unique_ptr<Pool> make(std::uint32_t decay_ms, bool huge) {
  PoolOptions o;
  o.name = "rss";
  o.max_bytes = std::size_t{1} << 30;
  o.decay_ms = decay_ms;
  o.huge_pages = huge;
  auto r = Pool::create(o);
  EXPECT_TRUE(r.has_value());
  return r ? std::move(r).value() : nullptr;
}

constexpr std::size_t kObject = 1536;
constexpr std::size_t kTarget = std::size_t{64} << 20;

std::vector<Handle> fill(Pool& pool) {
  std::vector<Handle> hs;
  hs.reserve(kTarget / kObject + 1);
  std::vector<unsigned char> buf(kObject);
  for (std::size_t i = 0; i < kTarget / kObject; ++i) {
    auto h = pool.alloc(kObject);
    EXPECT_TRUE(h.has_value());
    if (!h) break;
    std::memset(buf.data(), static_cast<int>(i), buf.size());
    pool.write(*h, buf.data(), buf.size());
    hs.push_back(*h);
  }
  return hs;
}

using testing::kShadowMemory;

// The bound docs/design.md#frames states: resident frames are at most the pool's frames,
// its idle frames and the 256 KiB prefault window, plus metadata. (Not checked under a
// sanitizer: its shadow of the frames counts in RSS too.)
void expect_within_bound(Pool& pool, std::size_t base) {
  if (kShadowMemory) return;
  const PoolStats s = pool.stats();
  const std::size_t bound = base + (s.total_pages + s.idle_frames + 64) * kPageSize +
                            s.metadata_bytes +
                            (std::size_t{4} << 20);  // slack: test-process allocations
  EXPECT_LE(rss_bytes(), bound) << "total_pages " << s.total_pages << " idle " << s.idle_frames;
}

// Idle frames besides the `freed` ones: with huge regions, the populated but never used
// frames of the regions the pool fills (one partly used region for a one-thread fill).
constexpr std::size_t kRegionSlack = 511;

class RssTest : public ::testing::TestWithParam<bool> {
 protected:
  bool huge() const { return GetParam(); }
  std::size_t slack() const { return huge() ? kRegionSlack : 0; }
};

INSTANTIATE_TEST_SUITE_P(HugePages, RssTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? std::string("huge") : std::string("small");
                         });

TEST(RssDecayTest, DecayWeightsFallFromAllToNone) {
  EXPECT_EQ(FrameArena::decay_weight(0), 1024u);
  for (unsigned a = 1; a <= FrameArena::kDecayEpochs; a++) {
    EXPECT_LE(FrameArena::decay_weight(a), FrameArena::decay_weight(a - 1)) << a;
  }
  EXPECT_EQ(FrameArena::decay_weight(FrameArena::kDecayEpochs), 0u);
  EXPECT_EQ(FrameArena::decay_weight(FrameArena::kDecayEpochs / 2), 512u);
}

// Free everything, refill at once: the frames are reused, none is faulted in again, and
// nothing goes back to the OS meanwhile.
TEST_P(RssTest, FreedFramesStayWarmForAnActivePool) {
  auto pool = make(60000, huge());  // far longer than the test: no decay may happen
  ASSERT_NE(pool, nullptr);
  const std::size_t base = rss_bytes();
  ASSERT_GT(base, 0u);
  std::vector<Handle> hs = fill(*pool);
  const std::size_t frames = pool->total_pages();
  const std::size_t peak = rss_bytes();
  EXPECT_GE(peak, base + frames * kPageSize * 9 / 10) << "the pool's frames are not resident?";
  pool->free_batch(hs.data(), hs.size());
  EXPECT_EQ(pool->total_pages(), 0u);
  PoolStats s = pool->stats();
  EXPECT_GE(s.idle_frames, frames);
  EXPECT_LE(s.idle_frames, frames + slack());
  EXPECT_EQ(s.frames_returned, 0u);
  expect_within_bound(*pool, base);
  hs = fill(*pool);
  s = pool->stats();
  EXPECT_GE(s.idle_reused, frames);
  EXPECT_LE(s.idle_frames, slack());
  EXPECT_EQ(s.frames_returned, 0u);
  if (!kShadowMemory) {
    EXPECT_LE(rss_bytes(), peak + (std::size_t{4} << 20)) << "refilling faulted fresh memory in";
  }
  for (Handle h : hs) pool->free(h);
}

// After the last free, the decay returns every idle frame within decay_ms (plus one epoch
// and scheduling slack), and RSS is back at the base. Twice: the second burst comes when
// the decay worker has gone to sleep with nothing left to do, and must wake it again.
TEST_P(RssTest, IdleFramesGoBackWithinTheDecayPeriod) {
  constexpr std::uint32_t kDecayMs = 400;
  auto pool = make(kDecayMs, huge());
  ASSERT_NE(pool, nullptr);
  const std::size_t base = rss_bytes();
  for (int burst = 0; burst < 2; burst++) {
    SCOPED_TRACE(::testing::Message() << "burst " << burst);
    const std::uint64_t returned0 = pool->stats().frames_returned;
    std::vector<Handle> hs = fill(*pool);
    const std::size_t frames = pool->total_pages();
    const std::size_t peak = rss_bytes();
    const auto t0 = std::chrono::steady_clock::now();
    pool->free_batch(hs.data(), hs.size());
    const std::size_t idle_now = pool->stats().idle_frames;
    // On a loaded machine (sanitizers, parallel suites) the free itself may outlast part
    // of the decay period, and the decay rightly starts returning frames: only a fast
    // free can tell "kept warm" from "returned at once".
    if (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(kDecayMs / 4)) {
      EXPECT_GE(idle_now, frames * 8 / 10) << "frames went back at once";
    }
    expect_within_bound(*pool, base);
    // Poll: a busy machine may run the timer late, so allow 25 decay periods before
    // failing, and report how long it took.
    PoolStats s;
    while ((s = pool->stats()).idle_frames != 0 &&
           std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(25 * kDecayMs)) {
      expect_within_bound(*pool, base);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    EXPECT_EQ(s.idle_frames, 0u) << "idle frames left after " << took.count() << " ms";
    EXPECT_GE(s.frames_returned - returned0, frames);
    const std::size_t after = rss_bytes();
    ASSERT_LE(after, peak);
    EXPECT_GE(peak - after, frames * kPageSize * 9 / 10)
        << "RSS base " << base << " peak " << peak << " after decay " << after;
    std::printf("decay of %zu idle frames (decay_ms %u) took %lld ms\n", frames, kDecayMs,
                static_cast<long long>(took.count()));
    std::this_thread::sleep_for(std::chrono::milliseconds(2 * kDecayMs));  // worker idle
  }
}

// decay_ms == 0: frames go back in free() itself, as before the decay existed.
TEST_P(RssTest, ZeroDecayReturnsFramesAtOnce) {
  auto pool = make(0, huge());  // huge pages need a decay: off whatever the option says
  ASSERT_NE(pool, nullptr);
  std::vector<Handle> hs = fill(*pool);
  const std::size_t frames = pool->total_pages();
  const std::size_t peak = rss_bytes();
  for (Handle h : hs) pool->free(h);
  pool->flush_deferred();
  EXPECT_EQ(pool->total_pages(), 0u);
  EXPECT_EQ(pool->stats().idle_frames, 0u);
  EXPECT_GE(pool->stats().frames_returned, frames);
  EXPECT_GE(peak - rss_bytes(), frames * kPageSize * 9 / 10);
}

// release_idle_frames() returns them all now, whatever the decay period.
TEST_P(RssTest, ReleaseIdleFramesReturnsThemNow) {
  auto pool = make(60000, huge());
  ASSERT_NE(pool, nullptr);
  std::vector<Handle> hs = fill(*pool);
  const std::size_t frames = pool->total_pages();
  const std::size_t peak = rss_bytes();
  pool->free_batch(hs.data(), hs.size());
  const std::size_t released = pool->release_idle_frames();
  EXPECT_GE(released, frames);
  EXPECT_LE(released, frames + slack());
  const PoolStats s = pool->stats();
  EXPECT_EQ(s.idle_frames, 0u);
  EXPECT_EQ(s.frames_returned, released);
  EXPECT_GE(peak - rss_bytes(), frames * kPageSize * 9 / 10);
}
#endif

}  // namespace
}  // namespace uzram

// The deferred free of an empty zspage whose frame is being migrated (the kernel's
// async_free_zspage), driven step by step through the internal isolate/migrate/putback.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "pool/pool_impl.h"

namespace uzram {
namespace {

struct Fixture {
  std::unique_ptr<Pool> pool = std::move(Pool::create().value());
  PoolImpl* p = static_cast<PoolImpl*>(pool.get());
  std::vector<Handle> hs;
  // Fills exactly one zspage of the 2048-byte class (1 frame, 2 objects).
  FrameId fill_one_frame() {
    for (int i = 0; i < 2; i++) {
      hs.push_back(pool->alloc(2040).value());
      pool->write(hs.back(), "x", 1);
    }
    EXPECT_EQ(pool->total_pages(), 1u);
    for (FrameId f = 0; f < pool->stats().arena_frames; f++) {
      if (p->isolate_frame(f)) return f;
    }
    ADD_FAILURE() << "no frame to isolate";
    return 0;
  }
};

TEST(DeferredFreeTest, EmptyZspageWithIsolatedFrameIsFreedAfterPutback) {
  Fixture fx;
  const FrameId f = fx.fill_one_frame();
  for (Handle h : fx.hs) fx.pool->free(h);
  // The zspage is empty but its frame is isolated: it must not be freed yet.
  EXPECT_EQ(fx.pool->total_pages(), 1u);
  EXPECT_EQ(fx.pool->stats().deferred_frees, 0u);
  fx.p->putback_frame(f);  // wakes the worker, which frees it
  fx.pool->flush_deferred();
  EXPECT_EQ(fx.pool->total_pages(), 0u);
  EXPECT_EQ(fx.pool->stats().deferred_frees, 1u);
  fx.pool->check_invariants();
}

// The worker waits for the frame while the migration completes: it must then free the
// zspage's *new* frame, and nothing leaks.
TEST(DeferredFreeTest, WorkerRacesMigrationOfTheIsolatedFrame) {
  Fixture fx;
  const FrameId f = fx.fill_one_frame();
  for (Handle h : fx.hs) fx.pool->free(h);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));  // let the worker block on f
  auto moved = fx.p->migrate_isolated<ValidatedTranslation>(f, 0);
  ASSERT_TRUE(moved) << moved.error().message();
  EXPECT_NE(*moved, f);
  fx.p->release_migrated(f);  // ends the isolation: the worker frees the new frame
  fx.pool->flush_deferred();
  EXPECT_EQ(fx.pool->total_pages(), 0u);
  EXPECT_EQ(fx.pool->stats().deferred_frees, 1u);
  EXPECT_EQ(fx.pool->stats().migrations, 1u);
  fx.pool->check_invariants();
}

// Allocation may reuse an empty zspage still waiting on list 0 (as the kernel does).
TEST(DeferredFreeTest, WaitingZspageCanBeReused) {
  Fixture fx;
  const FrameId f = fx.fill_one_frame();
  fx.pool->free(fx.hs[0]);
  fx.pool->free(fx.hs[1]);
  auto h = fx.pool->alloc(2040).value();
  fx.p->putback_frame(f);
  fx.pool->flush_deferred();
  fx.pool->check_invariants();
  EXPECT_EQ(fx.pool->total_pages(), 1u);
  fx.pool->free(h);
  fx.pool->flush_deferred();
  EXPECT_EQ(fx.pool->total_pages(), 0u);
}

}  // namespace
}  // namespace uzram

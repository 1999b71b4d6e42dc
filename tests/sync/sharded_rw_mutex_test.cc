// ShardedRwMutex: readers share, the writer excludes everyone, and a stream of readers
// does not starve a writer.
#include "sync/sharded_rw_mutex.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <shared_mutex>
#include <thread>
#include <vector>

namespace uzram {
namespace {

TEST(ShardedRwMutexTest, ReadersShare) {
  ShardedRwMutex m{LockLevel::store_init, "test"};
  std::shared_lock a(m);
  std::atomic<bool> entered{false};
  std::thread t([&] {
    std::shared_lock b(m);  // would block forever if readers excluded each other
    entered = true;
  });
  t.join();
  EXPECT_TRUE(entered);
}

TEST(ShardedRwMutexTest, WriterWaitsForReadersAndBlocksNewOnes) {
  ShardedRwMutex m{LockLevel::store_init, "test"};
  std::atomic<int> phase{0};
  auto r = std::make_unique<std::shared_lock<ShardedRwMutex>>(m);
  std::thread w([&] {
    std::unique_lock l(m);
    phase = 1;  // only after the reader left
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    phase = 2;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(phase.load(), 0);  // the writer waits for the reader
  r.reset();
  while (phase.load() == 0) std::this_thread::yield();
  {
    std::shared_lock l(m);  // a new reader waits for the writer to finish
    EXPECT_EQ(phase.load(), 2);
  }
  w.join();
}

TEST(ShardedRwMutexTest, ExclusionUnderContention) {
  ShardedRwMutex m{LockLevel::store_init, "test"};
  long value = 0;              // written only under the exclusive lock
  std::atomic<int> inside{0};  // readers inside
  std::atomic<bool> stop{false};
  std::atomic<long> bad{0}, reads{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        std::shared_lock l(m);
        inside.fetch_add(1);
        const long v = value;
        if (v % 2 != 0) bad.fetch_add(1);  // a writer is halfway through
        inside.fetch_sub(1);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  // The writer is never starved by 4 readers; it yields between its turns so that the
  // readers (which may start late on a busy machine) get theirs.
  long writes = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (writes < 2000 || (reads.load() < 1000 && std::chrono::steady_clock::now() < deadline)) {
    {
      std::unique_lock l(m);
      if (inside.load() != 0) bad.fetch_add(1);
      value++;
      value++;
    }
    writes++;
    std::this_thread::yield();
  }
  stop = true;
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(value, 2 * writes);
  EXPECT_GT(reads.load(), 0);
}

}  // namespace
}  // namespace uzram

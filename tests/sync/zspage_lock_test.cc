// ZsPageLock: readers share, writers only try, readers spin for a writer, misuse aborts.
#include "sync/zspage_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace uzram {
namespace {

TEST(ZsPageLockTest, FitsInEightBytes) { EXPECT_LE(sizeof(ZsPageLock), 8u); }

TEST(ZsPageLockTest, ReadersShareAndBlockWriters) {
  ZsPageLock l;
  l.lock_read();
  l.lock_read();  // nested reads of one zspage are fine (writers never wait)
  EXPECT_EQ(l.readers(), 2u);
  EXPECT_FALSE(l.try_lock_write());
  l.unlock_read();
  EXPECT_FALSE(l.try_lock_write());
  l.unlock_read();
  ASSERT_TRUE(l.try_lock_write());
  EXPECT_TRUE(l.write_locked());
  EXPECT_FALSE(l.try_lock_write());
  l.unlock_write();
  EXPECT_EQ(l.readers(), 0u);
}

TEST(ZsPageLockTest, ReaderSpinsUntilWriterUnlocks) {
  ZsPageLock l;
  ASSERT_TRUE(l.try_lock_write());
  std::atomic<bool> got{false};
  std::thread reader([&] {
    l.lock_read();
    got.store(true);
    l.unlock_read();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(got.load());
  l.unlock_write();
  reader.join();
  EXPECT_TRUE(got.load());
}

// A reader that sleeps while holding the lock never blocks new readers, and the writer
// fails fast instead of waiting.
TEST(ZsPageLockTest, SleepingReaderDoesNotBlockReadersAndWriterNeverWaits) {
  ZsPageLock l;
  std::atomic<bool> holding{false}, release{false};
  std::thread sleeper([&] {
    l.lock_read();
    holding.store(true);
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    l.unlock_read();
  });
  while (!holding.load()) std::this_thread::yield();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; i++) EXPECT_FALSE(l.try_lock_write());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  std::thread other([&] {
    l.lock_read();
    l.unlock_read();
  });
  other.join();  // would hang if a sleeping reader blocked new readers
  release.store(true);
  sleeper.join();
  EXPECT_TRUE(l.try_lock_write());
  l.unlock_write();
}

// Writers mutate a pair of plain ints; readers must always see them equal. TSan checks
// the lock's happens-before edges here.
TEST(ZsPageLockTest, ExclusionUnderContention) {
  ZsPageLock l;
  int a = 0, b = 0;
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0}, writes{0};
  std::vector<std::thread> ts;
  for (int r = 0; r < 2; r++) {
    ts.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        l.lock_read();
        EXPECT_EQ(a, b);
        l.unlock_read();
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  ts.emplace_back([&] {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    while (std::chrono::steady_clock::now() < end) {
      if (l.try_lock_write()) {
        a++;
        b++;
        l.unlock_write();
        writes.fetch_add(1, std::memory_order_relaxed);
      }
    }
    stop.store(true);
  });
  for (auto& t : ts) t.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_GT(writes.load(), 0);
  EXPECT_EQ(a, b);
}

TEST(ZsPageLockDeathTest, UnbalancedReadUnlockAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ZsPageLock l;
        l.unlock_read();
      },
      "not read-locked");
}

TEST(ZsPageLockDeathTest, WriteUnlockWithoutLockAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ZsPageLock l;
        l.unlock_write();
      },
      "not write-locked");
}

}  // namespace
}  // namespace uzram

// The annotated lock family: Mutex, MutexLock, CondVar, ReaderLock/WriterLock over both
// rwlocks, BitLock. Each excludes as it should, and the lock-order checker sees each one
// (held count, inversions reported before blocking, per-level acquisition counts).
#include "sync/mutex.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "sync/bit_lock.h"
#include "sync/rw_spin_lock.h"
#include "sync/scoped_lock.h"
#include "sync/sharded_rw_mutex.h"
#include "sync/spin_lock.h"

namespace uzram {
namespace {

using std::chrono::milliseconds;

struct TestBitTraits {
  using Word = std::uint32_t;
  static constexpr Word kBit = 1u << 30;
  static constexpr LockLevel kLevel = LockLevel::frame;
  static constexpr const char* kName = "test_bit";
};
using TestBitLock = BitLock<TestBitTraits>;

void skip_without_lockdep() {
  if (!kLockDebug) GTEST_SKIP() << "lock-order checker compiled out (UZRAM_DEBUG_LEVEL < 2)";
}

TEST(MutexTest, MutualExclusion) {
  Mutex m(LockLevel::worker, "test");
  long counter = 0;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&] {
      for (int i = 0; i < 20000; i++) {
        MutexLock l(m);
        counter++;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, 80000);
}

TEST(MutexTest, TryLockFailsWhileHeldElsewhere) {
  Mutex m(LockLevel::worker, "test");
  MutexLock l(m);
  bool got = true;
  std::thread([&] { got = m.try_lock(); }).join();
  EXPECT_FALSE(got);
  l.unlock();
  std::thread([&] {
    got = m.try_lock();
    if (got) m.unlock();
  }).join();
  EXPECT_TRUE(got);
  l.lock();  // the guard releases it again
}

TEST(MutexTest, GuardUnlockAndRelockWithinItsScope) {
  Mutex m(LockLevel::worker, "test");
  {
    MutexLock l(m);
    EXPECT_EQ(lockdep::held_count(), kLockDebug ? 1 : 0);
    l.unlock();
    EXPECT_EQ(lockdep::held_count(), 0);
    l.lock();
    EXPECT_EQ(lockdep::held_count(), kLockDebug ? 1 : 0);
  }
  EXPECT_EQ(lockdep::held_count(), 0);
  {
    MutexLock l(m);
    l.unlock();  // the destructor must not unlock again
  }
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

TEST(CondVarTest, WaitReleasesTheMutexAndNotifyWakes) {
  Mutex m(LockLevel::worker, "test");
  CondVar cv;
  bool ready = false;
  std::thread t([&] {
    MutexLock l(m);  // only possible while the waiter sleeps
    ready = true;
    cv.notify_all();
  });
  {
    MutexLock l(m);
    while (!ready) cv.wait(m);
    EXPECT_EQ(lockdep::held_count(), kLockDebug ? 1 : 0);  // held again, once
  }
  t.join();
}

TEST(CondVarTest, WaitUntilTimesOut) {
  Mutex m(LockLevel::worker, "test");
  CondVar cv;
  MutexLock l(m);
  const auto t0 = std::chrono::steady_clock::now();
  bool woken = true;
  while (woken) woken = cv.wait_for(m, milliseconds(20));  // spurious wake-ups may come
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(20));
  EXPECT_FALSE(woken);
}

TEST(ReaderWriterLockTest, ShardedRwMutexReadersShareWriterExcludes) {
  ShardedRwMutex m(LockLevel::store_init, "test");
  long a = 0, b = 0;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) {
      ReaderLock r(m);
      EXPECT_EQ(a, b);
    }
  });
  for (int i = 0; i < 2000; i++) {
    WriterLock w(m);
    a++;
    b++;
  }
  stop = true;
  reader.join();
  ReaderLock r1(m);
  std::thread([&] { ReaderLock r2(m); }).join();  // readers never exclude readers
}

TEST(ReaderWriterLockTest, GuardsWorkOverRwSpinLock) {
  RwSpinLock l(LockLevel::pool, "test");
  {
    ReaderLock r(l);
    EXPECT_EQ(lockdep::held_count(), kLockDebug ? 1 : 0);
  }
  {
    WriterLock w(l);
    EXPECT_EQ(lockdep::held_count(), kLockDebug ? 1 : 0);
  }
  EXPECT_EQ(lockdep::held_count(), 0);
}

TEST(BitLockTest, LocksOneBitAndKeepsTheData) {
  TestBitLock l;
  l.word().store(0x1234);
  l.lock();
  EXPECT_TRUE(l.is_locked());
  EXPECT_EQ(l.word().load() & ~TestBitTraits::kBit, 0x1234u);
  EXPECT_FALSE(l.try_lock());
  l.word().fetch_add(1);  // data bits change under the lock
  l.unlock();
  EXPECT_EQ(l.word().load(), 0x1235u);
  ASSERT_TRUE(l.try_lock());
  l.unlock();
}

TEST(BitLockTest, MutualExclusionAndWaitUnlocked) {
  TestBitLock l;
  long counter = 0;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&] {
      for (int i = 0; i < 5000; i++) {
        l.lock();
        counter++;
        l.unlock();
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, 20000);
  l.lock();
  std::atomic<bool> passed{false};
  std::thread waiter([&] {
    l.wait_unlocked();
    passed = true;
  });
  std::this_thread::sleep_for(milliseconds(10));
  EXPECT_FALSE(passed.load());
  l.unlock();
  waiter.join();
  EXPECT_TRUE(passed.load());
  EXPECT_FALSE(l.is_locked());  // waiting does not take it
}

// ---- What the lock-order checker sees --------------------------------------------------

class LockFamilyDebugTest : public ::testing::Test {
 protected:
  void SetUp() override {
    skip_without_lockdep();
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

TEST_F(LockFamilyDebugTest, EveryTypeIsRecordedWhileHeld) {
  Mutex m(LockLevel::worker, "m");
  ShardedRwMutex rw(LockLevel::store_init, "rw");
  TestBitLock bit;
  {
    ReaderLock r(rw);
    bit.lock();
    MutexLock l(m);
    EXPECT_EQ(lockdep::held_count(), 3);
    EXPECT_TRUE(lockdep::holds(&rw));
    EXPECT_TRUE(lockdep::holds(&bit));
    EXPECT_TRUE(lockdep::holds(&m));
    m.assert_held();
    bit.unlock();
  }
  EXPECT_EQ(lockdep::held_count(), 0);
  ShardedRwMutex unnamed;  // the default constructor is not checked
  WriterLock w(unnamed);
  EXPECT_EQ(lockdep::held_count(), 0);
}

TEST_F(LockFamilyDebugTest, MutexInversionIsReportedBeforeItBlocks) {
  // The outer mutex is free: without the check this would not even deadlock. With it, the
  // attempt itself aborts, naming both locks.
  EXPECT_DEATH(
      {
        Mutex outer(LockLevel::store_init, "outer");
        Mutex inner(LockLevel::worker, "inner");
        MutexLock a(inner);
        MutexLock b(outer);
      },
      "lock order violation: acquiring outer \\(level store_init=.*while holding inner "
      "\\(level worker=");
}

TEST_F(LockFamilyDebugTest, ShardedRwMutexInversionAborts) {
  EXPECT_DEATH(
      {
        ShardedRwMutex rw(LockLevel::store_init, "init");
        Mutex m(LockLevel::worker, "leaf");
        MutexLock a(m);
        ReaderLock r(rw);
      },
      "lock order violation: acquiring init .* while holding leaf");
}

TEST_F(LockFamilyDebugTest, BitLockInversionAborts) {
  EXPECT_DEATH(
      {
        TestBitLock bit;
        Mutex m(LockLevel::frame_arena, "arena");
        MutexLock a(m);
        bit.lock();
      },
      "lock order violation: acquiring test_bit .* while holding arena");
}

TEST_F(LockFamilyDebugTest, MutexUnderSpinLockAborts) {
  EXPECT_DEATH(
      {
        SpinLock cls(LockLevel::size_class, "size_class");
        Mutex m(LockLevel::frame_arena, "arena");
        cls.lock();
        m.lock();
      },
      "might_sleep: .* while holding size_class");
}

TEST_F(LockFamilyDebugTest, WaitingWhileHoldingALaterLockAborts) {
  // Waiting drops m and takes it back: with a lock ranked after m held meanwhile, that
  // re-acquisition is an inversion, reported before the thread sleeps.
  EXPECT_DEATH(
      {
        Mutex m(LockLevel::store_init, "m");
        Mutex later(LockLevel::worker, "later");
        CondVar cv;
        MutexLock a(m);
        MutexLock b(later);
        cv.wait_for(m, milliseconds(1));
      },
      "lock order violation: acquiring m .* while holding later");
}

TEST_F(LockFamilyDebugTest, AssertHeldAbortsWhenNotHeld) {
  EXPECT_DEATH(
      {
        Mutex m(LockLevel::worker, "lonely");
        m.assert_held();
      },
      "lonely: not held by this thread");
}

TEST_F(LockFamilyDebugTest, AcquisitionsAreCountedPerLevel) {
  const std::uint64_t before = lockdep::acquisitions(LockLevel::cli_load);
  Mutex m(LockLevel::cli_load, "counted");
  for (int i = 0; i < 100; i++) MutexLock l(m);
  EXPECT_EQ(lockdep::acquisitions(LockLevel::cli_load), before + 100);
  // Another thread's count is published at its first acquisition, and whole at its exit.
  std::atomic<bool> took{false}, go{false};
  std::thread t([&] {
    for (int i = 0; i < 5; i++) MutexLock l(m);
    took = true;
    while (!go.load()) std::this_thread::sleep_for(milliseconds(1));
  });
  while (!took.load()) std::this_thread::sleep_for(milliseconds(1));
  EXPECT_GE(lockdep::acquisitions(LockLevel::cli_load), before + 101);
  go = true;
  t.join();
  EXPECT_EQ(lockdep::acquisitions(LockLevel::cli_load), before + 105);
}

}  // namespace
}  // namespace uzram

// The debug-build checks: lock order, might_sleep(). Skipped below UZRAM_DEBUG_LEVEL 2,
// where they compile to nothing.
#include "sync/lock_order.h"

#include <gtest/gtest.h>

#include <atomic>
#include <iterator>

#include "sync/bit_lock.h"
#include "sync/rw_spin_lock.h"
#include "sync/spin_lock.h"
#include "sync/zspage_lock.h"

namespace uzram {
namespace {

class LockOrderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kLockDebug) GTEST_SKIP() << "lock-order checker compiled out (UZRAM_DEBUG_LEVEL < 2)";
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

TEST_F(LockOrderTest, IncreasingOrderIsFine) {
  RwSpinLock pool(LockLevel::pool, "pool");
  SpinLock cls(LockLevel::size_class, "size_class");
  ZsPageLock z;
  pool.lock_shared();
  cls.lock();
  z.lock_read();
  EXPECT_EQ(lockdep::held_count(), 3);
  z.unlock_read();
  cls.unlock();
  pool.unlock_shared();
  EXPECT_EQ(lockdep::held_count(), 0);
}

TEST_F(LockOrderTest, DecreasingOrderAbortsNamingBothLocks) {
  EXPECT_DEATH(
      {
        ZsPageLock z;
        SpinLock cls(LockLevel::size_class, "size_class");
        z.lock_read();
        cls.lock();  // zspage (40) then size_class (30): inversion
      },
      "lock order violation: acquiring size_class .*lock_order_test.cc.* while holding zspage "
      ".*lock_order_test.cc");
}

TEST_F(LockOrderTest, TryLockMayGoAgainstTheOrder) {
  SpinLock cls(LockLevel::size_class, "size_class");
  ZsPageLock z;
  z.lock_read();
  ASSERT_TRUE(cls.try_lock());
  cls.unlock();
  z.unlock_read();
}

TEST_F(LockOrderTest, NestedZspageReadLocksAreAllowed) {
  ZsPageLock a, b;
  a.lock_read();
  b.lock_read();
  b.unlock_read();
  a.unlock_read();
}

TEST_F(LockOrderTest, RecursiveSpinLockAborts) {
  EXPECT_DEATH(
      {
        SpinLock cls(LockLevel::size_class, "size_class");
        cls.lock();
        cls.lock();
      },
      "recursive acquire of size_class");
}

TEST_F(LockOrderTest, MightSleepUnderSpinLockAborts) {
  EXPECT_DEATH(
      {
        SpinLock cls(LockLevel::size_class, "size_class");
        cls.lock();
        might_sleep();
      },
      "might_sleep: .* while holding size_class \\(size_class, spinning lock\\)");
}

TEST_F(LockOrderTest, MightSleepUnderZspageWriteLockAborts) {
  EXPECT_DEATH(
      {
        ZsPageLock z;
        if (z.try_lock_write()) might_sleep();
      },
      "might_sleep: .* while holding zspage \\(zspage, zspage write lock\\)");
}

TEST_F(LockOrderTest, MightSleepUnderZspageReadLockIsFine) {
  ZsPageLock z;
  z.lock_read();
  might_sleep();  // readers may sleep: the point of the 2025 design
  z.unlock_read();
}

TEST_F(LockOrderTest, BlockingBitLockUnderSpinLockAborts) {
  EXPECT_DEATH(
      {
        SpinLock cls(LockLevel::size_class, "size_class");
        std::atomic<unsigned> word{0};
        cls.lock();
        bit_lock(word, 1u);
      },
      "might_sleep");
}

TEST(LockLevelTest, TheOrderIsStrictAndNamed) {
  // kLockLevels lists the enum in acquisition order, each level once, each with its name.
  for (std::size_t i = 1; i < std::size(kLockLevels); i++) {
    EXPECT_LT(static_cast<int>(kLockLevels[i - 1]), static_cast<int>(kLockLevels[i]));
  }
  for (LockLevel l : kLockLevels) {
    EXPECT_STRNE(lock_level_name(l), "?");
    EXPECT_LT(static_cast<unsigned>(l), kMaxLockLevel);
    for (LockLevel m : kLockLevels) {
      if (l != m) {
        EXPECT_STRNE(lock_level_name(l), lock_level_name(m));
      }
    }
  }
}

TEST_F(LockOrderTest, ReleaseOfUnheldLockAborts) {
  EXPECT_DEATH(
      {
        int x;
        lockdep::release(&x, SiteLoc::current());
      },
      "does not hold");
}

}  // namespace
}  // namespace uzram

// SpinLock, RwSpinLock and the bit lock under contention.
#include "sync/spin_lock.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "sync/bit_lock.h"
#include "sync/rw_spin_lock.h"

namespace uzram {
namespace {

TEST(SpinLockTest, MutualExclusion) {
  SpinLock l(LockLevel::size_class, "test");
  long counter = 0;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&] {
      for (int i = 0; i < 20000; i++) {
        SpinGuard g(l);
        counter++;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, 80000);
  EXPECT_FALSE(l.is_contended());
  EXPECT_TRUE(l.try_lock());
  EXPECT_FALSE(l.try_lock());
  l.unlock();
}

TEST(RwSpinLockTest, ReadersShareWriterExcludes) {
  RwSpinLock l(LockLevel::pool, "pool");
  long a = 0, b = 0;
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; t++) {
    ts.emplace_back([&] {
      while (!stop.load()) {
        l.lock_shared();
        EXPECT_EQ(a, b);
        l.unlock_shared();
      }
    });
  }
  for (int i = 0; i < 20000; i++) {
    l.lock();
    a++;
    b++;
    l.unlock();
  }
  stop.store(true);
  for (auto& t : ts) t.join();
  EXPECT_EQ(a, 20000);
}

TEST(BitLockTest, SleepingWaitersAndTryLock) {
  std::atomic<std::uint32_t> word{0x10};  // other bits are left alone
  constexpr std::uint32_t kBit = 1;
  long counter = 0;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&] {
      for (int i = 0; i < 5000; i++) {
        bit_lock(word, kBit);
        counter++;
        bit_unlock(word, kBit);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, 20000);
  EXPECT_EQ(word.load(), 0x10u);
  EXPECT_TRUE(bit_try_lock(word, kBit));
  EXPECT_FALSE(bit_try_lock(word, kBit));
  bit_unlock(word, kBit);
}

}  // namespace
}  // namespace uzram

// util::Thread: starts and joins without exceptions; the UZRAM_FAULT_THREAD_CREATE seam
// fails exactly the listed starts (its own binary: the plan is read at the first start of
// the process), destroying the closure unrun.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <memory>

#include "util/thread.h"

namespace uzram {
namespace {

TEST(ThreadTest, FaultSeamFailsTheListedStarts) {
  ASSERT_EQ(::setenv("UZRAM_FAULT_THREAD_CREATE", "2,4", 1), 0);
  std::atomic<int> ran{0};
  auto token = std::make_shared<int>(0);  // its use count shows which closures are alive
  Thread t[5];
  int rc[5];
  for (int i = 0; i < 5; i++) {
    rc[i] = t[i].start([&ran, token]() noexcept { ran.fetch_add(1); });
  }
  EXPECT_EQ(rc[0], 0);
  EXPECT_EQ(rc[1], EAGAIN);
  EXPECT_EQ(rc[2], 0);
  EXPECT_EQ(rc[3], EAGAIN);
  EXPECT_EQ(rc[4], 0);
  for (int i = 0; i < 5; i++) {
    EXPECT_EQ(t[i].joinable(), rc[i] == 0);
    if (t[i].joinable()) t[i].join();
  }
  EXPECT_EQ(ran.load(), 3);
  EXPECT_EQ(token.use_count(), 1);  // failed closures were destroyed, run ones freed
  Thread moved;
  ASSERT_EQ(moved.start([&ran]() noexcept { ran++; }), 0);
  Thread other(std::move(moved));
  EXPECT_FALSE(moved.joinable());
  other.join();
  EXPECT_EQ(ran.load(), 4);
}

}  // namespace
}  // namespace uzram

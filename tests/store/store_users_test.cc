// Store users (Store::open_user / close_user, the kernel's open count): reset and disksize
// refused with busy while a user is open, and ordered against open_user by the init lock
// (a user never sees its device reset or resized under it).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "testing/seed.h"
#include "uzram/store.h"

namespace uzram {
namespace {

TEST(StoreUsersTest, ResetAndDisksizeRefusedWhileOpen) {
  auto st = std::move(Store::create("zram3").value());
  EXPECT_EQ(st->open_user().error(), Errc::not_initialized);  // nothing to serve yet
  ASSERT_TRUE(st->write_attr("disksize", "1M"));
  auto a = st->open_user();
  auto b = st->open_user();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, 1u << 20);
  EXPECT_EQ(st->users(), 2u);
  std::string msg;
  EXPECT_EQ(st->write_attr("reset", "1", &msg).error(), Errc::busy);
  EXPECT_NE(msg.find("reset: device in use by 2"), std::string::npos) << msg;
  EXPECT_EQ(st->write_attr("disksize", "2M", &msg).error(), Errc::busy);
  EXPECT_NE(msg.find("disksize: device in use"), std::string::npos) << msg;
  EXPECT_TRUE(st->initialized());
  alignas(8) unsigned char blk[kBlockSize] = {7};
  EXPECT_TRUE(st->write(0, blk));                    // I/O goes on
  EXPECT_TRUE(st->write_attr("mem_limit", "512K"));  // so do runtime attributes
  st->close_user();
  EXPECT_EQ(st->write_attr("reset", "1", &msg).error(), Errc::busy);  // one still open
  st->close_user();
  EXPECT_EQ(st->users(), 0u);
  EXPECT_TRUE(st->write_attr("reset", "1", &msg)) << msg;
  EXPECT_FALSE(st->initialized());
  ASSERT_TRUE(st->write_attr("disksize", "2M"));
  auto c = st->open_user();
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, 2u << 20);  // the new size, never the old one
  st->close_user();
}

// Users come and go on several threads while another resets and re-initialises the store
// with a different size each time. A user must see, for as long as it is open, the size
// open_user returned and the block it wrote.
TEST(StoreUsersTest, OpenRacesResetAndDisksize) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  auto st = std::move(Store::create("zram4").value());
  ASSERT_TRUE(st->write_attr("disksize", "64K"));
  std::atomic<bool> stop{false};
  std::atomic<unsigned> resets{0}, opened{0};
  std::vector<std::thread> users;
  for (unsigned t = 0; t < 3; t++) {
    users.emplace_back([&, t] {
      Random rng(seed + t);
      alignas(8) unsigned char in[kBlockSize], out[kBlockSize];
      while (!stop.load(std::memory_order_relaxed)) {
        auto size = st->open_user();
        if (!size) continue;  // between a reset and the next disksize
        opened.fetch_add(1, std::memory_order_relaxed);
        const std::uint64_t index = t % (*size / kBlockSize);
        testing::fill_random(rng, in, sizeof in);
        for (int i = 0; i < 20; i++) {
          ASSERT_EQ(st->disksize(), *size);
          ASSERT_TRUE(st->write(index, in));
          ASSERT_TRUE(st->read(index, out));
          ASSERT_EQ(std::memcmp(in, out, kBlockSize), 0);
        }
        st->close_user();
        if (rng.next() % 2)
          std::this_thread::sleep_for(std::chrono::microseconds(50));  // let resets in
      }
    });
  }
  Random rng(seed);
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (std::chrono::steady_clock::now() < until || resets.load() < 20) {
    if (st->write_attr("reset", "1")) {
      resets.fetch_add(1, std::memory_order_relaxed);
      const std::uint64_t kib = 64 + 4 * (rng.next() % 64);
      ASSERT_TRUE(st->write_attr("disksize", std::to_string(kib) + "K"));
    }
    std::this_thread::yield();
    if (std::chrono::steady_clock::now() > until + std::chrono::seconds(20)) break;
  }
  stop = true;
  for (auto& u : users) u.join();
  EXPECT_GT(resets.load(), 0u);
  EXPECT_GT(opened.load(), 0u);
  EXPECT_EQ(st->users(), 0u);
  st->check_invariants();
}

}  // namespace
}  // namespace uzram

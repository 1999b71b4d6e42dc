// store/registry_test.cc - StoreRegistry (uzram/store_registry.h): hot_add numbering,
// hot_remove's rules (ENODEV, EBUSY while initialised or in use), retired stores refusing
// writes, and hot_add/hot_remove racing lookups, users and a holder's disksize writes.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "testing/seed.h"
#include "testing/temp_dir.h"
#include "uzram/store.h"
#include "uzram/store_registry.h"

namespace uzram {
namespace {

const std::error_code kEnodev(ENODEV, std::generic_category());

TEST(StoreRegistryTest, HotAddTakesTheLowestFreeNumber) {
  StoreRegistry r;
  for (unsigned i = 0; i < 4; i++) EXPECT_EQ(*r.hot_add(), i);
  ASSERT_TRUE(r.hot_remove(1));
  ASSERT_TRUE(r.hot_remove(2));
  EXPECT_EQ(r.size(), 2u);
  EXPECT_EQ(r.find("zram1"), nullptr);
  EXPECT_EQ(*r.hot_add(), 1u);  // the kernel's idr: the lowest free id
  EXPECT_EQ(*r.hot_add(), 2u);
  EXPECT_EQ(*r.hot_add(), 4u);
  std::vector<std::string> names;
  for (const auto& s : r.stores()) names.push_back(s->name());
  EXPECT_EQ(names, (std::vector<std::string>{"zram0", "zram1", "zram2", "zram3", "zram4"}));
  EXPECT_EQ(r.find("zram3")->name(), "zram3");
  EXPECT_EQ(r.find(3u), r.find("zram3"));
}

TEST(StoreRegistryTest, Names) {
  unsigned n = 99;
  EXPECT_TRUE(StoreRegistry::parse_name("zram0", &n));
  EXPECT_EQ(n, 0u);
  EXPECT_TRUE(StoreRegistry::parse_name("zram1023", &n));
  EXPECT_EQ(n, 1023u);
  for (const char* bad : {"", "zram", "zram01", "zram-1", "zram1x", "ZRAM1", "zram 1", "nbd0",
                          "zram99999999999999"}) {
    EXPECT_FALSE(StoreRegistry::parse_name(bad, &n)) << bad;
  }
  EXPECT_EQ(StoreRegistry::name_of(12), "zram12");
  StoreRegistry r;
  EXPECT_EQ(r.find(""), nullptr);
  EXPECT_EQ(r.find("zram0"), nullptr);
}

TEST(StoreRegistryTest, HotRemoveRules) {
  StoreRegistry r;
  ASSERT_TRUE(r.hot_add());
  ASSERT_TRUE(r.hot_add());
  std::string msg;
  EXPECT_EQ(r.hot_remove(7, &msg).error(), kEnodev);
  EXPECT_EQ(msg, "hot_remove: no store zram7");
  auto s = r.find(1u);
  ASSERT_TRUE(s->write_attr("disksize", "1M"));
  EXPECT_EQ(r.hot_remove(1, &msg).error(), Errc::busy);  // initialised: it holds data
  EXPECT_EQ(msg, "hot_remove: zram1 is initialised (reset it first)");
  ASSERT_TRUE(s->open_user());
  EXPECT_EQ(r.hot_remove(1, &msg).error(), Errc::busy);
  EXPECT_EQ(msg,
            "hot_remove: zram1 is in use by 1 open connection(s); disconnect them, then reset it");
  EXPECT_EQ(s->write_attr("reset", "1").error(), Errc::busy);
  s->close_user();
  ASSERT_TRUE(s->write_attr("reset", "1"));
  EXPECT_TRUE(r.hot_remove(1, &msg)) << msg;
  EXPECT_EQ(r.find(1u), nullptr);
  EXPECT_EQ(r.hot_remove(1, &msg).error(), kEnodev);
  EXPECT_TRUE(r.hot_remove(0));  // zram0 too, as the kernel allows
  EXPECT_EQ(r.size(), 0u);
}

// Whoever still holds a removed store can neither initialise it nor give it a backing
// device: it stays empty until the last holder lets go.
TEST(StoreRegistryTest, RetiredStoreRefusesWrites) {
  testing::TempDir dir;
  const std::string backing = dir / "backing.img";
  std::FILE* f = std::fopen(backing.c_str(), "w");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fputs(std::string(1 << 20, 'x').c_str(), f) >= 0, true);
  std::fclose(f);
  StoreRegistry r;
  ASSERT_TRUE(r.hot_add());
  auto held = r.find(0u);
  ASSERT_TRUE(held->write_attr("backing_dev", backing));
  ASSERT_TRUE(r.hot_remove(0));
  EXPECT_TRUE(held->retired());
  EXPECT_EQ(*held->read_attr("backing_dev"), "none\n");  // closed by the removal
  std::string msg;
  for (const char* attr : {"disksize", "comp_algorithm", "backing_dev", "mem_limit"}) {
    EXPECT_EQ(
        held->write_attr(attr, attr == std::string("backing_dev") ? backing : "1M", &msg).error(),
        kEnodev)
        << attr;
    EXPECT_EQ(msg, std::string(attr) + ": zram0 was removed (hot_remove)");
  }
  EXPECT_FALSE(held->initialized());
  EXPECT_EQ(held->open_user().error(), Errc::not_initialized);
  // The number is free again: a new zram0, not the retired object.
  EXPECT_EQ(*r.hot_add(), 0u);
  EXPECT_NE(r.find(0u), held);
  EXPECT_FALSE(r.find(0u)->retired());
  EXPECT_TRUE(r.find(0u)->write_attr("backing_dev", backing, &msg)) << msg;  // lock released
}

TEST(StoreRegistryTest, AtMostMaxStores) {
  StoreRegistry r;
  for (unsigned i = 0; i < StoreRegistry::kMaxStores; i++) ASSERT_TRUE(r.hot_add());
  std::string msg;
  EXPECT_EQ(r.hot_add(&msg).error(), std::error_code(ENOSPC, std::generic_category()));
  EXPECT_EQ(msg, "hot_add: at most 1024 stores");
}

// A holder writes disksize while another thread removes the store: exactly one of them
// wins. Either the store was removed while uninitialised (the disksize write fails with
// ENODEV, the store stays empty), or it was initialised first (hot_remove says EBUSY).
TEST(StoreRegistryTest, HotRemoveRacesDisksize) {
  for (int round = 0; round < 200; round++) {
    StoreRegistry r;
    ASSERT_TRUE(r.hot_add());
    auto held = r.find(0u);
    std::atomic<bool> go{false};
    Result<void> init = Errc::invalid_argument;
    std::thread t([&] {
      while (!go.load()) {
      }
      init = held->write_attr("disksize", "64K");
    });
    go = true;
    const Result<void> removed = r.hot_remove(0);
    t.join();
    ASSERT_NE(static_cast<bool>(init), static_cast<bool>(removed)) << "round " << round;
    if (removed) {
      EXPECT_EQ(init.error(), kEnodev);
      EXPECT_FALSE(held->initialized());
      EXPECT_EQ(r.find(0u), nullptr);
    } else {
      EXPECT_EQ(removed.error(), Errc::busy);
      EXPECT_TRUE(held->initialized());
      EXPECT_EQ(r.find(0u), held);
    }
  }
}

// Lookups, users and I/O on some stores while others are added and removed: nothing is
// lost, a store is never removed under a user, a removed store is never found again.
TEST(StoreRegistryTest, ChurnWhileOthersAreUsed) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  StoreRegistry r;
  ASSERT_EQ(*r.hot_add(), 0u);
  ASSERT_TRUE(r.find(0u)->write_attr("disksize", "256K"));
  std::atomic<bool> stop{false};
  std::atomic<unsigned> removed{0}, used{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 2; t++) {  // users of zram0 and of whatever they find
    threads.emplace_back([&, t] {
      Random rng(seed + t);
      alignas(8) unsigned char blk[kBlockSize] = {static_cast<unsigned char>(t + 1)};
      alignas(8) unsigned char out[kBlockSize];
      while (!stop.load(std::memory_order_relaxed)) {
        auto s = r.find(static_cast<unsigned>(rng.next() % 4));
        if (!s || !s->open_user()) continue;
        used.fetch_add(1, std::memory_order_relaxed);
        ASSERT_TRUE(s->write(t, blk));
        ASSERT_TRUE(s->read(t, out));
        ASSERT_EQ(out[0], blk[0]);
        ASSERT_FALSE(s->retired());  // never removed while a user is open
        s->close_user();
      }
    });
  }
  threads.emplace_back([&] {  // adds, initialises, resets and removes zram1..3
    Random rng(seed + 100);
    while (!stop.load(std::memory_order_relaxed)) {
      auto n = r.hot_add();
      if (n && rng.next() % 2) (void)r.find(*n)->write_attr("disksize", "64K");
      const unsigned victim = 1 + static_cast<unsigned>(rng.next() % 3);
      if (auto s = r.find(victim)) (void)s->write_attr("reset", "1");
      if (r.hot_remove(victim)) {
        removed.fetch_add(1, std::memory_order_relaxed);
        EXPECT_EQ(r.find(victim) == nullptr || !r.find(victim)->retired(), true);
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_GT(removed.load(), 0u);
  EXPECT_GT(used.load(), 0u);
  for (const auto& s : r.stores()) {
    EXPECT_FALSE(s->retired());
    EXPECT_EQ(s->users(), 0u);
    s->check_invariants();
  }
}

}  // namespace
}  // namespace uzram

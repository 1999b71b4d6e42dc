// tests/nbd/store_backend_test.cc - StoreBackend's trim and write-zeroes: whole blocks
// only, discarded a chunk at a time (one store discard, pool frees batched), and never
// around a concurrent partial write of the same block.
#include "nbd/store_backend.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "testing/seed.h"
#include "uzram/pool.h"
#include "uzram/store.h"

namespace uzram::nbd {
namespace {

constexpr std::size_t kBlock = 4096;

std::unique_ptr<Store> make_store(std::uint64_t blocks) {
  auto s = Store::create("nbd-backend-test");
  EXPECT_TRUE(s.has_value());
  auto st = std::move(s).value();
  EXPECT_TRUE(st->write_attr("disksize", std::to_string(blocks * kBlock)).has_value());
  return st;
}

void fill_block(std::vector<unsigned char>& b, std::uint64_t index) {
  for (std::size_t i = 0; i < b.size(); i++) b[i] = static_cast<unsigned char>(index * 7 + i % 251);
}

TEST(StoreBackendTest, TrimFreesWholeBlocksOnly) {
  constexpr std::uint64_t kBlocks = 3000;  // more than the 1024 stripes: several chunks
  auto st = make_store(kBlocks);
  StoreBackend be(*st);
  std::vector<unsigned char> b(kBlock), r(kBlock);
  for (std::uint64_t i = 0; i < kBlocks; i++) {
    fill_block(b, i);
    ASSERT_EQ(be.write(i * kBlock, kBlock, b.data()), 0u);
  }
  const std::uint64_t stored = st->mm_stat().orig_data_size / kBlock;
  ASSERT_EQ(stored, kBlocks);
  // [100, 2900 blocks + 100): blocks 1 .. 2899 are whole; 0 and 2900 are partial.
  ASSERT_EQ(be.trim(100, static_cast<std::uint32_t>(2899 * kBlock)), 0u);
  for (std::uint64_t i = 0; i < kBlocks; i++) {
    ASSERT_EQ(st->is_unallocated(i), i >= 1 && i < 2899) << i;
  }
  ASSERT_EQ(be.read(0, kBlock, r.data()), 0u);
  fill_block(b, 0);
  EXPECT_EQ(std::memcmp(r.data(), b.data(), kBlock), 0);
  EXPECT_EQ(st->io_stat().notify_free, 2898u);
  EXPECT_EQ(st->mm_stat().orig_data_size / kBlock, kBlocks - 2898);
  // Write-zeroes: whole blocks become holes, partial ones zero-filled bytes.
  ASSERT_EQ(be.zero(2899 * kBlock + 10, static_cast<std::uint32_t>(kBlock + 20), false), 0u);
  ASSERT_EQ(be.read(2899 * kBlock, kBlock, r.data()), 0u);
  fill_block(b, 2899);
  EXPECT_EQ(std::memcmp(r.data(), b.data(), 10), 0);
  for (std::size_t i = 10; i < kBlock; i++) ASSERT_EQ(r[i], 0) << i;
  ASSERT_EQ(be.zero(kBlock * 2899, static_cast<std::uint32_t>(kBlock * 101), false), 0u);
  for (std::uint64_t i = 2899; i < kBlocks; i++) EXPECT_TRUE(st->is_unallocated(i)) << i;
  st->check_invariants();
  EXPECT_EQ(st->pool()->stats().objs_used, 1u);  // block 0
}

// Write-zeroes of a range while other threads patch bytes inside its blocks: afterwards
// every byte is either zero (the zeroing came last) or a patch byte (the patch came
// last) - never the data from before both, which a discard running around a
// read-modify-write would bring back.
TEST(StoreBackendTest, ZeroNeverLosesToAConcurrentPartialWrite) {
  constexpr std::uint64_t kBlocks = 2100;
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  auto st = make_store(kBlocks);
  StoreBackend be(*st);
  std::vector<unsigned char> old(kBlock);
  for (int round = 0; round < 4; round++) {
    for (std::uint64_t i = 0; i < kBlocks; i++) {
      for (std::size_t k = 0; k < kBlock; k++)
        old[k] = static_cast<unsigned char>(0xa0 + (k + i) % 7);
      ASSERT_EQ(be.write(i * kBlock, kBlock, old.data()), 0u);
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> ts;
    for (int t = 0; t < 2; t++) {
      ts.emplace_back([&, t] {
        Random rng(seed + static_cast<std::uint64_t>(round * 2 + t));
        const std::vector<unsigned char> p(64, 0xbb);
        while (!stop.load(std::memory_order_relaxed)) {
          const std::uint64_t off = rng.uniform(kBlocks * kBlock - 64);
          const auto len = static_cast<std::uint32_t>(rng.range(1, 64));
          if (be.write(off, len, p.data()) != 0) ADD_FAILURE() << "write failed";
        }
      });
    }
    ASSERT_EQ(be.zero(0, static_cast<std::uint32_t>(kBlocks * kBlock), false), 0u);
    stop.store(true);
    for (auto& t : ts) t.join();
    std::vector<unsigned char> r(kBlock);
    for (std::uint64_t i = 0; i < kBlocks; i++) {
      ASSERT_EQ(be.read(i * kBlock, kBlock, r.data()), 0u);
      for (std::size_t k = 0; k < kBlock; k++) {
        ASSERT_TRUE(r[k] == 0 || r[k] == 0xbb) << "block " << i << " byte " << k << ": "
                                               << static_cast<int>(r[k]) << " survived the zeroing";
      }
    }
    st->check_invariants();
  }
}

}  // namespace
}  // namespace uzram::nbd

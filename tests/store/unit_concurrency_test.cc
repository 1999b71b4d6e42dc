// Concurrency on a unit store (run under TSan by the tsan preset): threads write whole
// units, pieces and single blocks, read whole units and blocks, discard parts and free
// single blocks of the same few units, while another flips unit_policy. Every block read
// must be zeros or a whole block some writer wrote for that index (never torn, never
// another block's), and the invariants hold at the end.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "store/unit_test_util.h"
#include "testing/seed.h"

namespace uzram::testing {
namespace {

constexpr unsigned kN = 8, kUnits = 4, kBlocks = kN * kUnits;

// Block `index` as written in generation `gen`: a 16-byte header (index, gen), then bytes
// derived from both (text-like, or random for odd generations divisible by 3: raw units).
void make(unsigned char* b, std::uint64_t index, std::uint64_t gen) {
  make_block(b, gen % 3 == 0 && gen % 2 ? 0 : 2, index * 1000003u + gen);
  std::memcpy(b, &index, 8);
  std::memcpy(b + 8, &gen, 8);
}

// Zeros, or make(index, gen) for the gen in its header.
bool valid(const unsigned char* b, std::uint64_t index) {
  static const std::vector<unsigned char> zeros(kBlockSize, 0);
  if (std::memcmp(b, zeros.data(), kBlockSize) == 0) return true;
  std::uint64_t i, gen;
  std::memcpy(&i, b, 8);
  std::memcpy(&gen, b + 8, 8);
  if (i != index) return false;
  std::vector<unsigned char> want(kBlockSize);
  make(want.data(), index, gen);
  return std::memcmp(b, want.data(), kBlockSize) == 0;
}

TEST(UnitConcurrencyTest, WholeAndPartialWritesAndReadsOfTheSameUnits) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE(seed_trace(seed));
  auto st = unit_store("zstd", "32K", "1M");
  std::atomic<std::uint64_t> gens{1}, bad{0}, failed{0};
  std::atomic<bool> stop{false};
  const auto worker = [&](unsigned t) {
    std::mt19937_64 rng(seed + t);
    std::vector<unsigned char> buf(kN * kBlockSize);
    for (unsigned op = 0; op < 400; op++) {
      const unsigned u = static_cast<unsigned>(rng() % kUnits);
      const std::uint64_t first = std::uint64_t{u} * kN;
      const unsigned k = static_cast<unsigned>(rng() % kN);
      const unsigned cnt = 1 + static_cast<unsigned>(rng() % (kN - k));
      bool ok = true;
      switch (rng() % 7) {
        case 0:  // whole unit
          for (unsigned j = 0; j < kN; j++) make(&buf[j * kBlockSize], first + j, gens++);
          ok = static_cast<bool>(st->write_blocks(first, kN, buf.data()));
          break;
        case 1:  // a piece
          for (unsigned j = 0; j < cnt; j++) make(&buf[j * kBlockSize], first + k + j, gens++);
          ok = static_cast<bool>(st->write_blocks(first + k, cnt, buf.data()));
          break;
        case 2:  // one block
          make(buf.data(), first + k, gens++);
          ok = static_cast<bool>(st->write(first + k, buf.data()));
          break;
        case 3:  // whole-unit read
          ok = static_cast<bool>(st->read_blocks(first, kN, buf.data()));
          for (unsigned j = 0; ok && j < kN; j++) bad += !valid(&buf[j * kBlockSize], first + j);
          break;
        case 4:  // block reads
          for (unsigned j = 0; ok && j < cnt; j++) {
            ok = static_cast<bool>(st->read(first + k + j, buf.data()));
            bad += ok && !valid(buf.data(), first + k + j);
          }
          break;
        case 5:  // discard a part
          ok = static_cast<bool>(st->discard((first + k) * kBlockSize, cnt * kBlockSize));
          break;
        default: st->slot_free_notify(first + k); break;
      }
      failed += !ok;
    }
  };
  std::thread flipper([&] {
    const char* const policies[] = {"rmw", "split", "split_after=2"};
    for (unsigned i = 0; !stop.load(); i++) {
      ASSERT_TRUE(st->write_attr("unit_policy", policies[i % 3]));
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; t++) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  stop = true;
  flipper.join();
  EXPECT_EQ(bad.load(), 0u) << "seed " << seed;
  EXPECT_EQ(failed.load(), 0u) << "seed " << seed;
  std::vector<unsigned char> all(kBlocks * kBlockSize);
  ASSERT_TRUE(st->read_blocks(0, kBlocks, all.data()));
  for (unsigned i = 0; i < kBlocks; i++) EXPECT_TRUE(valid(&all[i * kBlockSize], i)) << i;
  st->check_invariants();
  const UnitStat u = st->unit_stat();
  EXPECT_GT(u.whole_reads + u.partial_reads, 0u);
}

}  // namespace
}  // namespace uzram::testing

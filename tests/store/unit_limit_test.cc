// A full store keeps making progress (issue 14: `uzram serve --swap` with 32 KiB units
// hung in a guest swapping onto it). At mem_limit, rewriting stored blocks with data that
// compresses no worse is taken (else every rewrite of a store whose classes are packed is
// refused: the new object needs room before the old one is freed, and a client that
// retries, the kernel's swap, waits forever); a partial discard frees memory; nothing
// stored is lost; and a swap store's pool maps no memory after disksize. Block and unit
// stores alike, against a reference model.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "pool/pool_internal.h"
#include "store/unit_test_util.h"
#include "testing/seed.h"
#include "uzram/store.h"

namespace uzram::testing {
namespace {

constexpr std::uint64_t kLimit = std::uint64_t{2} << 20;

// Swap-like contents: `rnd` pseudo-random bytes, then a pattern of the seed (about 3:1
// with lz4 at rnd = 1024, as tests/swap/swapload.c's pages).
void swap_page(unsigned char* b, std::uint64_t seed, unsigned rnd) {
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (unsigned i = 0; i < kBlockSize; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const std::uint64_t w = i < rnd ? x : (seed & 0xff) * 0x0101010101010101ULL;
    std::memcpy(b + i, &w, 8);
  }
}

// The random part of block idx: the same for every write of a block (a rewrite compresses
// about as well), different from run to run of 8 blocks (units of every size class).
unsigned rnd_of(std::uint64_t idx) { return static_cast<unsigned>((idx / 8 * 5 % 8) * 384 + 256); }

class Model {
 public:
  explicit Model(Store& st) : st_(st) {}
  void wrote(std::uint64_t idx, std::uint64_t seed) { seeds_[idx] = seed; }
  void discarded(std::uint64_t idx) { seeds_.erase(idx); }
  void check() {
    alignas(8) unsigned char want[kBlockSize], got[kBlockSize];
    for (std::uint64_t idx = 0; idx < blocks_; idx++) {
      auto it = seeds_.find(idx);
      if (it == seeds_.end()) {
        std::memset(want, 0, kBlockSize);
      } else {
        swap_page(want, it->second, rnd_of(idx));
      }
      ASSERT_TRUE(st_.read(idx, got));
      ASSERT_EQ(std::memcmp(got, want, kBlockSize), 0) << "block " << idx;
    }
    st_.check_invariants();
  }
  std::uint64_t blocks_ = 0;

 private:
  Store& st_;
  std::map<std::uint64_t, std::uint64_t> seeds_;
};

std::unique_ptr<Store> limited_store(const char* unit, bool swap) {
  StoreOptions o;
  o.swap = swap;
  auto st = std::move(Store::create("zram0", o).value());
  set_attr(*st, "comp_algorithm", "lz4");
  set_attr(*st, "unit_size", unit);
  set_attr(*st, "mem_limit", std::to_string(kLimit).c_str());
  set_attr(*st, "disksize", "64M");
  return st;
}

void check_at_limit(const char* unit, bool swap, std::uint64_t seed) {
  SCOPED_TRACE(std::string(unit) + (swap ? " swap store" : " store") + ", " + seed_trace(seed));
  auto st = limited_store(unit, swap);
  Model model(*st);
  std::mt19937_64 rng(seed);
  std::uint64_t next = seed % 1000000 * 1000;  // page seeds
  // Fill, 8 blocks per write (whole units), until mem_limit refuses.
  std::vector<unsigned char> run(8 * kBlockSize);
  for (std::uint64_t first = 0;; first += 8) {
    const std::uint64_t s0 = next;
    for (unsigned k = 0; k < 8; k++) swap_page(&run[k * kBlockSize], next++, rnd_of(first + k));
    auto r = st->write_blocks(first, 8, run.data());
    if (!r) {
      ASSERT_EQ(r.error(), Errc::limit_reached);
      model.blocks_ = first;
      break;
    }
    for (unsigned k = 0; k < 8; k++) model.wrote(first + k, s0 + k);
  }
  ASSERT_GT(model.blocks_, 256u);
  // Rewrites of single blocks, as swap writes pages into freed slots: most are taken.
  unsigned taken = 0;
  alignas(8) unsigned char b[kBlockSize];
  for (unsigned i = 0; i < 2000; i++) {
    const std::uint64_t idx = rng() % model.blocks_;
    swap_page(b, next, rnd_of(idx));
    auto r = st->write(idx, b);
    if (r) {
      model.wrote(idx, next);
      taken++;
    } else {
      ASSERT_EQ(r.error(), Errc::limit_reached);
    }
    next++;
  }
  EXPECT_GE(taken, 1500u) << "rewrites taken at mem_limit (of 2000)";
  const MmStat m = st->mm_stat();
  EXPECT_LE(m.mem_used_max, kLimit + (std::uint64_t{2} << 20));  // kRewriteRoom
  ASSERT_NO_FATAL_FAILURE(model.check());
  // A discard of the middle of every run frees memory, whatever the unit policy did.
  const std::uint64_t compr = m.compr_data_size;
  for (std::uint64_t first = 0; first < model.blocks_; first += 8) {
    ASSERT_TRUE(st->discard((first + 2) * kBlockSize, 4 * kBlockSize));
    for (unsigned k = 2; k < 6; k++) model.discarded(first + k);
  }
  EXPECT_LT(st->mm_stat().compr_data_size, compr * 3 / 4);
  ASSERT_NO_FATAL_FAILURE(model.check());
  // The pool of a swap store took every handle-table chunk it used from its reserve.
  if (swap) {
    EXPECT_EQ(handle_chunks_mapped_on_demand(*st->pool()), 0u);
  }
  std::printf("%s%s: %u of 2000 rewrites taken at mem_limit; unit_stat %s", unit,
              swap ? " swap" : "", taken, attr(*st, "unit_stat").c_str());
}

TEST(StoreAtLimit, RewritesAreTakenAndNothingIsLost) {
  const std::uint64_t seed = test_seed();
  for (const char* unit : {"4K", "32K"}) {
    for (bool swap : {false, true}) check_at_limit(unit, swap, seed);
  }
}

TEST(StoreAtLimit, EveryUnitPolicy) {
  const std::uint64_t seed = test_seed();
  for (const char* policy : {"rmw", "split", "split_after=3"}) {
    SCOPED_TRACE(policy);
    auto st = limited_store("16K", true);
    set_attr(*st, "unit_policy", policy);
    std::uint64_t blocks = 0;
    std::vector<unsigned char> run(4 * kBlockSize);
    for (;; blocks += 4) {
      for (unsigned k = 0; k < 4; k++) swap_page(&run[k * kBlockSize], blocks + k, 1024);
      if (!st->write_blocks(blocks, 4, run.data())) break;
    }
    std::mt19937_64 rng(seed);
    unsigned taken = 0;
    alignas(8) unsigned char b[kBlockSize];
    for (unsigned i = 0; i < 1000; i++) {
      swap_page(b, 1000000 + i, 1024);
      taken += st->write(rng() % blocks, b) ? 1 : 0;
    }
    EXPECT_GE(taken, 750u);
    st->check_invariants();
  }
}

}  // namespace
}  // namespace uzram::testing

// Stores with compression units (unit_size 16K/32K/64K, docs/units.md): whole-unit writes
// and reads, partial reads through the decoded-unit cache, partial writes by policy,
// discard, free notify, mem_limit, idle, block_state, mm_stat and unit_stat, tail blocks.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "store/pp_test_helpers.h"
#include "store/unit_test_util.h"
#include "uzram/store.h"

namespace uzram::testing {
namespace {

constexpr unsigned kN = 8;  // blocks of a 32 KiB unit

std::vector<unsigned char> read_all(Store& st, std::uint64_t index, unsigned blocks) {
  std::vector<unsigned char> v(std::size_t{blocks} * kBlockSize);
  EXPECT_TRUE(st.read_blocks(index, blocks, v.data()));
  return v;
}

std::vector<unsigned char> read_each(Store& st, std::uint64_t index, unsigned blocks) {
  std::vector<unsigned char> v(std::size_t{blocks} * kBlockSize);
  for (unsigned k = 0; k < blocks; k++) {
    EXPECT_TRUE(st.read(index + k, v.data() + std::size_t{k} * kBlockSize));
  }
  return v;
}

TEST(UnitStoreTest, Attributes) {
  auto st = std::move(Store::create().value());
  EXPECT_EQ(attr(*st, "unit_size"), "4096\n");
  EXPECT_EQ(attr(*st, "unit_policy"), "split_after=2\n");
  std::string msg;
  for (const char* bad : {"8K", "0", "128K", "32K1", "x"}) {
    EXPECT_EQ(st->write_attr("unit_size", bad, &msg).error(), Errc::invalid_argument) << bad;
  }
  for (const char* bad :
       {"", "rmw2", "split_after=0", "split_after=256", "split_after=x", "split_after="}) {
    EXPECT_FALSE(st->write_attr("unit_policy", bad, &msg)) << bad;
  }
  set_attr(*st, "unit_policy", "rmw");
  EXPECT_EQ(attr(*st, "unit_policy"), "rmw\n");
  set_attr(*st, "unit_policy", "split");
  EXPECT_EQ(attr(*st, "unit_policy"), "split\n");
  set_attr(*st, "unit_policy", "split_after=1");
  EXPECT_EQ(attr(*st, "unit_policy"), "split\n");
  set_attr(*st, "unit_policy", "split_after=9");
  EXPECT_EQ(attr(*st, "unit_policy"), "split_after=9\n");
  set_attr(*st, "unit_size", "16384");
  EXPECT_EQ(attr(*st, "unit_size"), "16384\n");
  set_attr(*st, "disksize", "1M");
  EXPECT_EQ(st->unit_size(), 16384u);
  EXPECT_EQ(st->write_attr("unit_size", "32K", &msg).error(), Errc::busy);
  set_attr(*st, "unit_policy", "rmw");  // runtime-settable
  EXPECT_EQ(attr(*st, "unit_stat"),
            "       0        0        0        0        0        0        0\n");
  set_attr(*st, "reset", "1");
  EXPECT_EQ(attr(*st, "unit_size"), "4096\n");
  EXPECT_EQ(attr(*st, "unit_policy"), "split_after=2\n");
}

TEST(UnitStoreTest, WholeUnitsWrittenAndReadOnceEach) {
  auto st = unit_store("zstd", "32K");
  auto data = blocks_of(4 * kN, 2, 1);
  ASSERT_TRUE(st->write_blocks(0, 4 * kN, data.data()));
  UnitStat u = st->unit_stat();
  EXPECT_EQ(u.units, 4u);
  const MmStat m = st->mm_stat();
  EXPECT_EQ(m.orig_data_size, 4u * kN * kBlockSize);  // counts 4 KiB blocks
  EXPECT_GT(m.compr_data_size, 0u);
  EXPECT_LT(m.compr_data_size, 4u * kN * kBlockSize / 2);
  EXPECT_EQ(m.same_pages, 0u);
  EXPECT_EQ(st->read_attr("unit_stat").value(),
            "       4        0        0        0        0        0        0\n");
  EXPECT_EQ(read_all(*st, 0, 4 * kN), data);
  EXPECT_EQ(st->unit_stat().whole_reads, 4u);
  EXPECT_EQ(st->unit_stat().partial_reads, 0u);
  st->check_invariants();
  // A run not aligned to units: the whole unit inside goes as a unit, the edges as pieces.
  auto more = blocks_of(2 * kN, 2, 500);
  ASSERT_TRUE(st->write_blocks(4 * kN + 3, 2 * kN, more.data()));
  EXPECT_EQ(st->unit_stat().units, 5u);  // units 5 (whole) and 4, 6: pieces of no unit
  EXPECT_EQ(read_all(*st, 4 * kN + 3, 2 * kN), more);
  EXPECT_EQ(read_each(*st, 4 * kN + 3, 2 * kN), more);
  st->check_invariants();
}

TEST(UnitStoreTest, PartialReadsHitTheCache) {
  PinToOneCpu pin;
  auto st = unit_store("zstd", "32K");
  auto data = blocks_of(2 * kN, 2, 7);
  ASSERT_TRUE(st->write_blocks(0, 2 * kN, data.data()));
  EXPECT_EQ(read_each(*st, 0, 2 * kN), data);
  UnitStat u = st->unit_stat();
  EXPECT_EQ(u.partial_reads, 2u * kN);
  EXPECT_EQ(u.cache_hits, 2u * (kN - 1));  // one decompression per unit
  // Two entries: alternating between two units hits; a rewrite misses (new version).
  std::vector<unsigned char> b(kBlockSize);
  ASSERT_TRUE(st->read(0, b.data()));
  ASSERT_TRUE(st->read(kN, b.data()));
  EXPECT_EQ(st->unit_stat().cache_hits, u.cache_hits + 2);
  ASSERT_TRUE(st->write_blocks(0, kN, data.data()));
  ASSERT_TRUE(st->read(1, b.data()));
  EXPECT_EQ(st->unit_stat().cache_hits, u.cache_hits + 2);
  EXPECT_EQ(0, std::memcmp(b.data(), data.data() + kBlockSize, kBlockSize));
  // An rmw leaves the patched unit in the cache under its new version: the next partial
  // write and read decompress nothing.
  set_attr(*st, "unit_policy", "rmw");
  auto patch = blocks_of(2, 3, 70);
  ASSERT_TRUE(st->write(3, patch.data()));
  ASSERT_TRUE(st->write(4, patch.data() + kBlockSize));
  const std::uint64_t hits = st->unit_stat().cache_hits;
  ASSERT_TRUE(st->read(4, b.data()));
  EXPECT_EQ(st->unit_stat().cache_hits, hits + 1);
  EXPECT_EQ(0, std::memcmp(b.data(), patch.data() + kBlockSize, kBlockSize));
  EXPECT_EQ(st->unit_stat().rmw_writes, 2u);
}

TEST(UnitStoreTest, RawAndSameFilledUnits) {
  auto st = unit_store("lz4", "32K");
  auto raw = blocks_of(kN, 0, 3);  // random: stored raw
  ASSERT_TRUE(st->write_blocks(0, kN, raw.data()));
  MmStat m = st->mm_stat();
  EXPECT_EQ(m.huge_pages, kN);
  EXPECT_EQ(m.huge_pages_since, kN);
  EXPECT_EQ(m.compr_data_size, kN * kBlockSize);
  EXPECT_EQ(st->unit_stat().units, 1u);
  auto same = blocks_of(kN, 1, 4);  // every block one word (different words)
  ASSERT_TRUE(st->write_blocks(kN, kN, same.data()));
  m = st->mm_stat();
  EXPECT_EQ(m.same_pages, kN);
  EXPECT_EQ(st->unit_stat().units, 1u);  // N same-filled blocks, not a unit
  EXPECT_EQ(read_all(*st, 0, kN), raw);
  EXPECT_EQ(read_each(*st, 0, kN), raw);
  EXPECT_EQ(read_all(*st, kN, kN), same);
  std::uint64_t w;
  EXPECT_TRUE(st->is_same_filled(kN + 2, &w));
  EXPECT_FALSE(st->is_same_filled(2, &w));
  // Overwriting the raw unit with same-filled blocks frees it.
  ASSERT_TRUE(st->write_blocks(0, kN, same.data()));
  m = st->mm_stat();
  EXPECT_EQ(m.huge_pages, 0u);
  EXPECT_EQ(m.compr_data_size, 0u);
  EXPECT_EQ(st->unit_stat().units, 0u);
  st->check_invariants();
}

// One block written into a stored unit, under each policy.
TEST(UnitStoreTest, PartialWritePolicies) {
  for (const char* policy : {"rmw", "split", "split_after=3"}) {
    SCOPED_TRACE(policy);
    auto st = unit_store("zstd", "32K");
    set_attr(*st, "unit_policy", policy);
    auto data = blocks_of(kN, 2, 11);
    ASSERT_TRUE(st->write_blocks(0, kN, data.data()));
    for (unsigned w = 0; w < 3; w++) {
      auto block = blocks_of(1, 2, 100 + w);
      const unsigned k = (2 + 3 * w) % kN;
      ASSERT_TRUE(st->write(k, block.data()));
      std::memcpy(data.data() + std::size_t{k} * kBlockSize, block.data(), kBlockSize);
      EXPECT_EQ(read_each(*st, 0, kN), data);
      EXPECT_EQ(read_all(*st, 0, kN), data);
      st->check_invariants();
    }
    const UnitStat u = st->unit_stat();
    const std::string p = policy;
    if (p == "rmw") {
      EXPECT_EQ(u.rmw_writes, 3u);
      EXPECT_EQ(u.splits, 0u);
      EXPECT_EQ(u.units, 1u);
    } else if (p == "split") {
      EXPECT_EQ(u.split_writes, 1u);  // then the range holds blocks: ordinary writes
      EXPECT_EQ(u.splits, 1u);
      EXPECT_EQ(u.units, 0u);
    } else {
      EXPECT_EQ(u.rmw_writes, 2u);
      EXPECT_EQ(u.split_writes, 1u);
      EXPECT_EQ(u.units, 0u);
    }
    EXPECT_EQ(st->mm_stat().orig_data_size, kN * kBlockSize);
    // A whole-unit write makes it a unit again.
    ASSERT_TRUE(st->write_blocks(0, kN, data.data()));
    EXPECT_EQ(st->unit_stat().units, 1u);
    EXPECT_EQ(read_each(*st, 0, kN), data);
    st->check_invariants();
  }
}

TEST(UnitStoreTest, PiecesOfWriteBlocksAreOnePartialWrite) {
  auto st = unit_store("zstd", "32K");
  set_attr(*st, "unit_policy", "rmw");
  auto data = blocks_of(2 * kN, 2, 21);
  ASSERT_TRUE(st->write_blocks(0, 2 * kN, data.data()));
  auto piece = blocks_of(6, 3, 900);  // blocks 5..10: 3 of unit 0, 3 of unit 1
  ASSERT_TRUE(st->write_blocks(5, 6, piece.data()));
  std::memcpy(data.data() + 5 * kBlockSize, piece.data(), piece.size());
  EXPECT_EQ(st->unit_stat().rmw_writes, 2u);
  EXPECT_EQ(read_all(*st, 0, 2 * kN), data);
  st->check_invariants();
}

TEST(UnitStoreTest, DiscardWholeAndPartialUnits) {
  for (const char* policy : {"rmw", "split"}) {
    SCOPED_TRACE(policy);
    auto st = unit_store("zstd", "32K");
    set_attr(*st, "unit_policy", policy);
    auto data = blocks_of(4 * kN, 2, 31);
    ASSERT_TRUE(st->write_blocks(0, 4 * kN, data.data()));
    const std::uint64_t mem = st->mm_stat().mem_used_total;
    // Blocks 6..25: the end of unit 0, all of units 1 and 2 but 2 blocks of unit 3.
    ASSERT_TRUE(st->discard(6 * kBlockSize, 20 * kBlockSize + 100));  // partial tail: kept
    std::memset(data.data() + 6 * kBlockSize, 0, 20 * kBlockSize);
    EXPECT_EQ(read_all(*st, 0, 4 * kN), data);
    EXPECT_EQ(read_each(*st, 0, 4 * kN), data);
    EXPECT_EQ(st->mm_stat().orig_data_size, (4 * kN - 20) * kBlockSize);
    EXPECT_LT(st->mm_stat().compr_data_size, mem);
    EXPECT_TRUE(st->is_unallocated(6));
    EXPECT_TRUE(st->is_unallocated(12));
    EXPECT_FALSE(st->is_unallocated(5));
    EXPECT_FALSE(st->is_unallocated(26));
    const UnitStat u = st->unit_stat();
    EXPECT_EQ(u.rmw_writes + u.split_writes, 2u);  // the two edges
    EXPECT_EQ(st->io_stat().notify_free, 20u);
    st->check_invariants();
    ASSERT_TRUE(st->discard(0, 4 * kN * kBlockSize));
    EXPECT_EQ(st->mm_stat().orig_data_size, 0u);
    EXPECT_EQ(st->mm_stat().compr_data_size, 0u);
    EXPECT_EQ(st->unit_stat().units, 0u);
    st->check_invariants();
  }
}

// A discard (fstrim repeats them) of blocks a unit no longer holds changes nothing: no
// re-encoding, no step towards a split, no count.
TEST(UnitStoreTest, RepeatedDiscardOfHolesLeavesTheUnitAlone) {
  auto st = unit_store("zstd", "32K");
  auto data = blocks_of(kN, 2, 41);
  ASSERT_TRUE(st->write_blocks(0, kN, data.data()));
  ASSERT_TRUE(st->discard(2 * kBlockSize, 2 * kBlockSize));  // one partial write (rmw)
  std::memset(data.data() + 2 * kBlockSize, 0, 2 * kBlockSize);
  const UnitStat before = st->unit_stat();
  const MmStat mm = st->mm_stat();
  EXPECT_EQ(before.rmw_writes, 1u);
  for (int i = 0; i < 5; i++) ASSERT_TRUE(st->discard(2 * kBlockSize, 2 * kBlockSize));
  const UnitStat after = st->unit_stat();
  EXPECT_EQ(after.rmw_writes, before.rmw_writes);
  EXPECT_EQ(after.split_writes, before.split_writes);
  EXPECT_EQ(after.splits, 0u);
  EXPECT_EQ(after.units, 1u);
  EXPECT_EQ(st->mm_stat().compr_data_size, mm.compr_data_size);
  EXPECT_EQ(read_all(*st, 0, kN), data);
  st->check_invariants();
}

TEST(UnitStoreTest, FreeNotifyDropsMembersAndTheLastFreesTheUnit) {
  auto st = unit_store("zstd", "32K");
  auto data = blocks_of(kN, 2, 41);
  ASSERT_TRUE(st->write_blocks(0, kN, data.data()));
  const std::uint64_t compr = st->mm_stat().compr_data_size;
  for (unsigned k = 0; k + 1 < kN; k++) {
    st->slot_free_notify(k);
    EXPECT_EQ(st->mm_stat().orig_data_size, (kN - 1 - k) * kBlockSize);
    EXPECT_EQ(st->mm_stat().compr_data_size, compr);  // retained until the last member goes
    EXPECT_TRUE(st->is_unallocated(k));
    st->check_invariants();
  }
  std::vector<unsigned char> b(kBlockSize);
  ASSERT_TRUE(st->read(kN - 1, b.data()));
  EXPECT_EQ(0, std::memcmp(b.data(), data.data() + (kN - 1) * kBlockSize, kBlockSize));
  ASSERT_TRUE(st->read(0, b.data()));
  EXPECT_EQ(b, std::vector<unsigned char>(kBlockSize, 0));
  st->slot_free_notify(kN - 1);
  EXPECT_EQ(st->mm_stat().compr_data_size, 0u);
  EXPECT_EQ(st->unit_stat().units, 0u);
  EXPECT_EQ(st->io_stat().notify_free, kN);
  st->check_invariants();
}

TEST(UnitStoreTest, MemLimitKeepsOldContents) {
  auto st = unit_store("zstd", "32K", "16M");
  auto data = blocks_of(kN, 2, 51);
  ASSERT_TRUE(st->write_blocks(0, kN, data.data()));
  set_attr(*st, "mem_limit", "4096");  // below what the pool holds already
  auto other = blocks_of(kN, 3, 52);
  EXPECT_EQ(st->write_blocks(0, kN, other.data()).error(), Errc::limit_reached);
  EXPECT_EQ(st->write(3, other.data()).error(), Errc::limit_reached);  // rmw fails
  set_attr(*st, "unit_policy", "split");
  EXPECT_EQ(st->write(3, other.data()).error(), Errc::limit_reached);  // split fails
  EXPECT_EQ(read_all(*st, 0, kN), data);
  EXPECT_EQ(read_each(*st, 0, kN), data);
  EXPECT_EQ(st->unit_stat().units, 1u);
  EXPECT_EQ(st->io_stat().failed_writes, 3u);
  // A partial discard that cannot re-encode drops the members instead.
  ASSERT_TRUE(st->discard(2 * kBlockSize, 2 * kBlockSize));
  std::memset(data.data() + 2 * kBlockSize, 0, 2 * kBlockSize);
  EXPECT_EQ(read_all(*st, 0, kN), data);
  EXPECT_EQ(st->mm_stat().orig_data_size, (kN - 2) * kBlockSize);
  st->check_invariants();
  set_attr(*st, "mem_limit", "0");
  ASSERT_TRUE(st->write_blocks(0, kN, other.data()));
  EXPECT_EQ(read_all(*st, 0, kN), other);
  st->check_invariants();
}

TEST(UnitStoreTest, BlockStateIdleAndTheUnitFlag) {
  auto st = unit_store("lz4", "16K");
  auto data = blocks_of(4, 2, 61);
  ASSERT_TRUE(st->write_blocks(0, 4, data.data()));
  auto raw = blocks_of(4, 0, 62);
  ASSERT_TRUE(st->write_blocks(4, 4, raw.data()));
  ASSERT_TRUE(st->write(9, data.data()));  // an ordinary block in a unit range
  set_attr(*st, "idle", "all");
  std::string bs = attr(*st, "block_state");
  std::vector<std::string> lines;
  for (std::size_t a = 0, b; (b = bs.find('\n', a)) != std::string::npos; a = b + 1) {
    lines.push_back(bs.substr(a, b - a));
  }
  ASSERT_EQ(lines.size(), 9u) << bs;
  for (unsigned k = 0; k < 4; k++) EXPECT_EQ(lines[k].substr(lines[k].size() - 7), "...i..u");
  for (unsigned k = 4; k < 8; k++) EXPECT_EQ(lines[k].substr(lines[k].size() - 7), "..hi..u");
  EXPECT_EQ(lines[8].substr(lines[8].size() - 7), "...i...");
  std::vector<unsigned char> b(kBlockSize);
  ASSERT_TRUE(st->read(2, b.data()));  // any access to a member: the unit is not idle
  bs = attr(*st, "block_state");
  EXPECT_EQ(bs.find("...i..u"), std::string::npos) << bs;
  st->slot_free_notify(5);  // a freed member is not listed
  bs = attr(*st, "block_state");
  EXPECT_EQ(bs.find("           5 "), std::string::npos) << bs;
}

TEST(UnitStoreTest, FourKStoreKeepsSixFlagsAndNoUnits) {
  auto st = new_store("zstd", "1M");
  auto data = blocks_of(16, 2, 71);
  ASSERT_TRUE(st->write_blocks(0, 16, data.data()));
  EXPECT_EQ(read_all(*st, 0, 16), data);
  const std::string bs = attr(*st, "block_state");
  EXPECT_EQ(bs.find('\n') - bs.find_last_of(' ', bs.find('\n')) - 1, 6u) << bs;
  EXPECT_EQ(attr(*st, "unit_stat"),
            "       0        0        0        0        0        0        0\n");
  st->check_invariants();
}

// A disk that is not a multiple of the unit: the tail's blocks are stored one by one.
TEST(UnitStoreTest, TailBlocksPastTheLastUnit) {
  auto st = unit_store("zstd", "64K", "200K");  // 50 blocks: 3 units of 16 and 2 blocks
  auto data = blocks_of(50, 2, 81);
  ASSERT_TRUE(st->write_blocks(0, 50, data.data()));
  EXPECT_EQ(st->unit_stat().units, 3u);
  EXPECT_EQ(st->mm_stat().orig_data_size, 50u * kBlockSize);
  EXPECT_EQ(read_all(*st, 0, 50), data);
  EXPECT_EQ(read_each(*st, 40, 10),
            std::vector<unsigned char>(data.begin() + 40 * kBlockSize, data.end()));
  EXPECT_EQ(st->write_blocks(45, 6, data.data()).error(), Errc::out_of_range);
  ASSERT_TRUE(st->discard(47 * kBlockSize, 3 * kBlockSize));
  EXPECT_TRUE(st->is_unallocated(48));
  st->check_invariants();
}

// The streams' memory counts the resident pages of their unit buffers (5 units each:
// compression buffer of two, gather buffer, a cache of two), mapped and left untouched at
// disksize (not a swap store: no warm-up): a write touches the compression buffer, a block
// read a cache entry; never more than the 5 units. Pool frames are mem_used_total.
TEST(UnitStoreTest, MemoryCountsTheUnitBuffers) {
  auto four = new_store("lz4", "1M");
  auto units = unit_store("lz4", "64K", "1M");
  const std::uint64_t fresh = units->memory().streams;
  EXPECT_LT(fresh, four->memory().streams + units->streams() * 8192);
  auto data = blocks_of(64, 2, 99);
  ASSERT_TRUE(units->write_blocks(0, 64, data.data()));
  const std::uint64_t written = units->memory().streams;
  EXPECT_GE(written, fresh + 4096);
  EXPECT_EQ(read_each(*units, 1, 1),
            std::vector<unsigned char>(data.begin() + kBlockSize, data.begin() + 2 * kBlockSize));
  EXPECT_GE(units->memory().streams, written + 4096);
  EXPECT_LE(units->memory().streams,
            four->memory().streams + units->streams() * (5 * 65536 + 4096));
  EXPECT_EQ(units->memory().pool_frames, units->mm_stat().mem_used_total);
}

// Post-processing of units: unit_pp_test.cc.

}  // namespace
}  // namespace uzram::testing

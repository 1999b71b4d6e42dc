// Post-processing of unit stores (docs/units.md#post-processing): writeback splits units
// (each member its own backing block, raw or compressed; same-filled members as
// same-filled blocks; a range selects the units it touches; the limits, a full tier and
// small batches leave a unit whole in RAM), recompression keeps units (re-encoded whole,
// type=huge on raw units, threshold x N, max_pages in blocks), writeback_compact, and the
// policy engine's rounds on a unit store.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "store/nbdkit_server.h"
#include "store/pp_test_helpers.h"
#include "store/unit_test_util.h"

namespace uzram::testing {
namespace {

constexpr std::uint64_t kN = 8;  // 32K units

struct UnitPpConfig {
  const char* algo = "lz4";
  const char* unit = "32K";
  std::uint64_t blocks = 256;
  std::uint64_t backing_blocks = 257;  // 0: no backing device
  bool compressed_wb = false;
  const char* recomp = nullptr;
  std::string uri;  // a remote backing tier instead of the file
};

class UnitPpTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> store(const UnitPpConfig& c) {
    auto st = std::move(Store::create("zram-unit-pp").value());
    write_attr_ok(*st, "unit_size", c.unit);
    write_attr_ok(*st, "comp_algorithm", c.algo);
    if (c.recomp) write_attr_ok(*st, "recomp_algorithm", std::string("algo=") + c.recomp);
    if (!c.uri.empty()) {
      write_attr_ok(*st, "backing_dev", c.uri);
    } else if (c.backing_blocks) {
      EXPECT_EQ(truncate(file_.path().c_str(), static_cast<off_t>(c.backing_blocks * kBlockSize)),
                0);
      write_attr_ok(*st, "backing_dev", file_.path());
    }
    if (c.compressed_wb) write_attr_ok(*st, "compressed_writeback", "1");
    write_attr_ok(*st, "disksize", std::to_string(c.blocks * kBlockSize));
    return st;
  }
  // Writes `units` whole units from unit `u` with data of make_block kind `kind`.
  std::vector<unsigned char> put(Store& st, std::uint64_t u, unsigned units, int kind) {
    auto d = blocks_of(static_cast<unsigned>(units * kN), kind, 1000 * u + 7);
    EXPECT_TRUE(st.write_blocks(u * kN, units * kN, d.data()));
    std::memcpy(&want_[u * kN * kBlockSize], d.data(), d.size());
    return d;
  }
  void check(Store& st, std::uint64_t blocks) {
    std::vector<unsigned char> got(blocks * kBlockSize);
    ASSERT_TRUE(st.read_blocks(0, blocks, got.data()));
    for (std::uint64_t b = 0; b < blocks; b++) {
      ASSERT_EQ(std::memcmp(&got[b * kBlockSize], &want_[b * kBlockSize], kBlockSize), 0)
          << "block " << b;
    }
    st.check_invariants();
  }
  void zero(std::uint64_t b) { std::memset(&want_[b * kBlockSize], 0, kBlockSize); }

  TempFile file_;
  std::vector<unsigned char> want_ = std::vector<unsigned char>(1024 * kBlockSize, 0);
};

TEST_F(UnitPpTest, WritebackSplitsIdleUnitsIntoBlocks) {
  auto st = store({});
  put(*st, 0, 2, 2);  // text: compressed units
  put(*st, 2, 1, 3);  // half random
  // A unit with same-filled members, and one with a member freed.
  auto d = blocks_of(kN, 2, 55);
  make_block(&d[2 * kBlockSize], 1, 9);
  make_block(&d[5 * kBlockSize], 1, 10);
  ASSERT_TRUE(st->write_blocks(3 * kN, kN, d.data()));
  std::memcpy(&want_[3 * kN * kBlockSize], d.data(), d.size());
  put(*st, 4, 1, 2);
  st->slot_free_notify(4 * kN + 6);
  zero(4 * kN + 6);
  ASSERT_EQ(st->unit_stat().units, 5u);
  const MmStat before = st->mm_stat();
  write_attr_ok(*st, "idle", "all");
  write_attr_ok(*st, "writeback", "type=idle");
  const UnitStat us = st->unit_stat();
  EXPECT_EQ(us.units, 0u);
  EXPECT_EQ(us.splits, 5u);
  EXPECT_EQ(us.split_writes + us.rmw_writes, 0u);
  const MmStat after = st->mm_stat();
  EXPECT_EQ(after.orig_data_size, before.orig_data_size);  // 39 blocks, still stored
  EXPECT_EQ(after.compr_data_size, 0u);
  EXPECT_EQ(after.same_pages, before.same_pages + 2);
  EXPECT_EQ(st->bd_stat().bd_count, 5 * kN - 1 - 2);   // not the freed one, nor the same ones
  EXPECT_EQ(st->bd_stat().bd_writes, 5 * kN - 1 - 2);  // raw: one block each
  check(*st, 5 * kN);
  // Block state: written back ('w'), no unit ('.') any more.
  const std::string bs = attr(*st, "block_state");
  EXPECT_NE(bs.find(".w....."), std::string::npos) << bs.substr(0, 200);
  EXPECT_EQ(bs.find("u\n"), std::string::npos);
  // A block of a split range is an ordinary block again: a rewrite of the unit re-forms it.
  put(*st, 0, 1, 2);
  EXPECT_EQ(st->unit_stat().units, 1u);
  EXPECT_EQ(st->bd_stat().bd_count, 5 * kN - 3 - kN);
  check(*st, 5 * kN);
}

TEST_F(UnitPpTest, CompressedWritebackPacksEachMember) {
  UnitPpConfig c;
  c.compressed_wb = true;
  auto st = store(c);
  put(*st, 0, 4, 2);
  write_attr_ok(*st, "writeback", "type=idle");  // nothing idle: nothing happens
  EXPECT_EQ(st->unit_stat().units, 4u);
  write_attr_ok(*st, "idle", "all");
  write_attr_ok(*st, "writeback", "type=idle");
  EXPECT_EQ(st->unit_stat().splits, 4u);
  const BdStat bd = st->bd_stat();
  EXPECT_EQ(bd.bd_count, 4 * kN);
  EXPECT_LT(bd.backing_blocks, 4 * kN / 2) << "text blocks compress 2x at least, packed";
  check(*st, 4 * kN);
  // Partly discarded: writeback_compact moves the packed members out of sparse blocks.
  for (std::uint64_t b = 0; b < 4 * kN; b += 3) {
    ASSERT_TRUE(st->discard(b * kBlockSize, kBlockSize));
    zero(b);
  }
  write_attr_ok(*st, "writeback_compact", "threshold=90");
  EXPECT_GT(st->bd_stat().compacted, 0u);
  check(*st, 4 * kN);
}

TEST_F(UnitPpTest, TypeHugeTakesRawUnitsOnly) {
  auto st = store({});
  put(*st, 0, 1, 0);  // random: a raw unit
  put(*st, 1, 1, 2);
  EXPECT_EQ(st->mm_stat().huge_pages, kN);
  write_attr_ok(*st, "writeback", "type=huge");
  EXPECT_EQ(st->unit_stat().splits, 1u);
  EXPECT_EQ(st->unit_stat().units, 1u);
  EXPECT_EQ(st->mm_stat().huge_pages, 0u);
  EXPECT_EQ(st->bd_stat().bd_count, kN);
  check(*st, 2 * kN);
}

TEST_F(UnitPpTest, ARangeSelectsTheUnitsItTouches) {
  auto st = store({});
  put(*st, 0, 4, 2);
  ASSERT_TRUE(st->write(4 * kN + 1, &want_[0]));  // an ordinary block after the units
  std::memcpy(&want_[(4 * kN + 1) * kBlockSize], &want_[0], kBlockSize);
  write_attr_ok(*st, "writeback", "page_index=" + std::to_string(kN + 3));  // inside unit 1
  EXPECT_EQ(st->unit_stat().splits, 1u);
  EXPECT_EQ(st->bd_stat().bd_count, kN);
  // From the middle of unit 2 to the middle of unit 3: both.
  write_attr_ok(*st, "writeback",
                "page_indexes=" + std::to_string(2 * kN + 5) + "-" + std::to_string(3 * kN + 2));
  EXPECT_EQ(st->unit_stat().splits, 3u);
  EXPECT_EQ(st->unit_stat().units, 1u);
  EXPECT_TRUE(st->is_unallocated(4 * kN)) << "nothing there";
  check(*st, 4 * kN + 2);
}

TEST_F(UnitPpTest, AUnitThatCannotGoWholeStaysInRam) {
  UnitPpConfig c;
  c.backing_blocks = 6;  // 5 usable blocks: not a unit of 8 raw members
  auto st = store(c);
  put(*st, 0, 1, 2);
  std::string msg;
  auto r = st->write_attr("writeback", "type=huge_idle", &msg);  // nothing selected
  EXPECT_TRUE(r) << msg;
  write_attr_ok(*st, "idle", "all");
  r = st->write_attr("writeback", "type=idle", &msg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::no_memory) << msg;
  EXPECT_EQ(st->unit_stat().units, 1u);
  EXPECT_EQ(st->unit_stat().splits, 0u);
  EXPECT_EQ(st->bd_stat().bd_count, 0u);
  check(*st, kN);
  // writeback_limit: 3 pages are not a unit either; 8 are.
  st.reset();  // (the backing file's lock)
  auto st2 = store({});
  put(*st2, 0, 1, 2);
  write_attr_ok(*st2, "writeback_limit_enable", "1");
  write_attr_ok(*st2, "writeback_limit", std::to_string(3 * kBlockSize / 4096));
  write_attr_ok(*st2, "idle", "all");
  r = st2->write_attr("writeback", "type=idle", &msg);
  EXPECT_FALSE(r);
  EXPECT_EQ(st2->unit_stat().units, 1u);
  EXPECT_EQ(attr(*st2, "writeback_limit"), "3\n") << "the pages charged are given back";
  write_attr_ok(*st2, "writeback_limit", std::to_string(kN));
  write_attr_ok(*st2, "idle", "all");
  write_attr_ok(*st2, "writeback", "type=idle");
  EXPECT_EQ(st2->unit_stat().splits, 1u);
  EXPECT_EQ(attr(*st2, "writeback_limit"), "0\n");
  check(*st2, kN);
}

TEST_F(UnitPpTest, ABatchOfOnePageStillTakesAUnit) {
  auto st = store({});
  write_attr_ok(*st, "writeback_batch_size", "1");
  put(*st, 0, 3, 3);
  write_attr_ok(*st, "idle", "all");
  write_attr_ok(*st, "writeback", "type=idle");
  EXPECT_EQ(st->unit_stat().splits, 3u);
  EXPECT_EQ(st->bd_stat().bd_count, 3 * kN);
  check(*st, 3 * kN);
}

TEST_F(UnitPpTest, RecompressKeepsUnits) {
  UnitPpConfig c;
  c.recomp = "zstd";
  c.backing_blocks = 0;
  auto st = store(c);
  put(*st, 0, 2, 2);
  // Random nibbles: lz4 finds no matches (a raw unit), zstd halves them.
  SCOPED_TRACE(seed_trace(test_seed()));
  Random rng(test_seed());
  std::vector<unsigned char> d(kN * kBlockSize);
  for (std::uint64_t b = 0; b < kN; b++) {
    const Page p = nibble_page(rng);
    std::memcpy(&d[b * kBlockSize], p.data(), kBlockSize);
  }
  ASSERT_TRUE(st->write_blocks(2 * kN, kN, d.data()));
  std::memcpy(&want_[2 * kN * kBlockSize], d.data(), d.size());
  const MmStat before = st->mm_stat();
  write_attr_ok(*st, "recompress", "type=huge");
  const MmStat after = st->mm_stat();
  EXPECT_EQ(st->unit_stat().units, 3u);
  EXPECT_EQ(st->unit_stat().splits, 0u);
  ASSERT_EQ(before.huge_pages, kN) << "lz4 stores the nibbles raw";
  {
    EXPECT_EQ(after.huge_pages, 0u);
    EXPECT_LT(after.compr_data_size, before.compr_data_size);
  }
  check(*st, 3 * kN);
  // max_pages counts blocks: a unit is 8 of them.
  write_attr_ok(*st, "recompress", "max_pages=" + std::to_string(kN - 1));
  EXPECT_EQ(st->mm_stat().compr_data_size, after.compr_data_size) << "no unit fits 7 blocks";
  write_attr_ok(*st, "recompress", "max_pages=" + std::to_string(kN));
  const std::uint64_t one = st->mm_stat().compr_data_size;
  EXPECT_LT(one, after.compr_data_size);
  write_attr_ok(*st, "recompress", "");
  EXPECT_LT(st->mm_stat().compr_data_size, one);
  EXPECT_EQ(st->unit_stat().units, 3u);
  // Partial reads after the re-encoding: the decoded-unit caches hold the old version.
  for (std::uint64_t b = 0; b < 3 * kN; b++) {
    std::vector<unsigned char> got(kBlockSize);
    ASSERT_TRUE(st->read(b, got.data()));
    ASSERT_EQ(std::memcmp(got.data(), &want_[b * kBlockSize], kBlockSize), 0) << b;
  }
  check(*st, 3 * kN);
}

TEST_F(UnitPpTest, RecompressThresholdIsPerBlock) {
  UnitPpConfig c;
  c.recomp = "zstd";
  c.backing_blocks = 0;
  auto st = store(c);
  put(*st, 0, 1, 2);
  const std::uint64_t compr = st->mm_stat().compr_data_size;
  ASSERT_GT(compr, 50 * kN);
  // 50 bytes a block: the unit (over 400 bytes) is a candidate, no result is that small.
  write_attr_ok(*st, "recompress", "threshold=50");
  EXPECT_EQ(st->mm_stat().compr_data_size, compr);
  EXPECT_NE(attr(*st, "block_state").find("u"), std::string::npos);
  check(*st, kN);
  // A threshold above the unit's own size per block: left alone, as a block below it
  // would be.
  put(*st, 0, 1, 2);
  write_attr_ok(*st, "recompress", "threshold=" + std::to_string(compr / kN + 1));
  EXPECT_EQ(st->mm_stat().compr_data_size, compr);
  // At the unit's size per block: a candidate, and zstd's result is below it.
  write_attr_ok(*st, "recompress", "threshold=" + std::to_string(compr / kN));
  EXPECT_LT(st->mm_stat().compr_data_size, compr);
  check(*st, kN);
}

TEST_F(UnitPpTest, PolicyRoundsWriteUnitsBack) {
  auto st = store({});
  put(*st, 0, 4, 2);
  write_attr_ok(*st, "policy",
                "custom interval=1h idle_min=1h idle_max=1h round_min=4K round_max=4M day_max=0 "
                "order=idle pressure=off");
  impl(st.get())->advance_clock_for_testing(3600);
  impl(st.get())->policy_.run_now();
  const PolicyStats ps = impl(st.get())->policy_.stats();
  EXPECT_EQ(ps.rounds, 1u);
  EXPECT_EQ(ps.idle_marked, 4 * kN) << "idle_marked counts blocks";
  EXPECT_EQ(ps.wb_kind[static_cast<unsigned>(WbKind::idle)], 4 * kN);
  EXPECT_EQ(st->unit_stat().splits, 4u);
  check(*st, 4 * kN);
}

// The memory reaction on a unit store: whole-unit writes through a pool of a quarter of
// the data wait for room, which the reaction makes by writing the coldest units back.
TEST_F(UnitPpTest, MemoryReactionWritesUnitsBack) {
  UnitPpConfig c;
  c.blocks = 1024;
  c.backing_blocks = 1025;
  auto st = store(c);
  want_.assign(c.blocks * kBlockSize, 0);
  write_attr_ok(*st, "mem_limit", "1M");
  write_attr_ok(*st, "policy", "custom interval=0 high=90 low=60 wait=30s pressure=writeback");
  for (std::uint64_t u = 0; u < c.blocks / kN; u++) {
    if (u % 16 == 15) impl(st.get())->advance_clock_for_testing(10);  // distinct ages
    put(*st, u, 1, 2);
  }
  impl(st.get())->policy_.run_now();
  const PolicyStats ps = impl(st.get())->policy_.stats();
  EXPECT_GT(ps.triggers, 0u);
  EXPECT_GT(ps.wb_pressure, 0u);
  EXPECT_EQ(ps.limit_failed, 0u);
  EXPECT_EQ(st->io_stat().failed_writes, 0u);
  EXPECT_EQ(st->bd_stat().bd_count, ps.wb_pressure);
  EXPECT_GT(st->unit_stat().splits, 0u);
  EXPECT_EQ(ps.wb_pressure % kN, 0u) << "whole units: all their members";
  EXPECT_LE(st->mm_stat().mem_used_total, std::uint64_t{1} << 20);
  check(*st, c.blocks);
  write_attr_ok(*st, "policy", "off");
}

// The remote tier takes a split unit's members as it takes blocks; reads come back from
// it and discarded members are trimmed there.
TEST_F(UnitPpTest, RemoteTierTakesSplitUnits) {
  if (!have_nbdkit()) GTEST_SKIP() << "nbdkit not installed (Debian: nbdkit)";
  NbdkitServer remote({"memory", "4M"});
  ASSERT_TRUE(remote.start());
  for (const bool compressed : {false, true}) {
    SCOPED_TRACE(compressed ? "compressed_writeback" : "raw");
    UnitPpConfig c;
    c.uri = remote.uri();
    c.compressed_wb = compressed;
    auto st = store(c);
    put(*st, 0, 4, 2);
    write_attr_ok(*st, "idle", "all");
    write_attr_ok(*st, "writeback", "type=idle");
    EXPECT_EQ(st->unit_stat().splits, 4u);
    EXPECT_EQ(st->bd_stat().bd_count, 4 * kN);
    check(*st, 4 * kN);
    EXPECT_GE(st->bd_stat().bd_reads, compressed ? 1 : 4 * kN);  // packed: fewer blocks
    ASSERT_TRUE(st->discard(0, 2 * kN * kBlockSize));
    for (std::uint64_t b = 0; b < 2 * kN; b++) zero(b);
    if (!compressed) {
      const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (st->bd_stat().trimmed < 2 * kN && std::chrono::steady_clock::now() < end) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_EQ(st->bd_stat().trimmed, 2 * kN);
    }
    check(*st, 4 * kN);
    write_attr_ok(*st, "reset", "1");
  }
}

}  // namespace
}  // namespace uzram::testing

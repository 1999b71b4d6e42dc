// Writeback to a backing file: every mode and index form, counters (bd_stat, mm_stat)
// after each step, check_invariants() after every mutation, freeing of backing blocks,
// writeback_limit, compressed writeback, every error, and races with block I/O.
// Seeded: the seed is printed, UZRAM_TEST_SEED replays it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "store/pp_test_helpers.h"

namespace uzram {
namespace {

using namespace uzram::testing;  // NOLINT

class WritebackTest : public ::testing::Test {
 protected:
  void SetUp() override { rng_ = std::make_unique<Random>(test_seed()); }

  // A store of `blocks` blocks on a backing file of the same size (never grown by the store).
  std::unique_ptr<Store> store(std::uint64_t blocks = 256, bool compressed = false,
                               std::vector<std::string> recomp = {}) {
    EXPECT_EQ(truncate(file_.path().c_str(), static_cast<off_t>(blocks * kBlockSize)), 0);
    StoreConfig c;
    c.backing = file_.path();
    c.blocks = blocks;
    c.compressed_writeback = compressed;
    c.recomp = std::move(recomp);
    return make_store(c);
  }

  // Block layout used by several tests: [0,16) random (huge), [16,48) text, [48,56) same.
  void fill_layout(Store& s) {
    for (std::uint64_t i = 0; i < 16; i++) model_.write(s, i, random_page(*rng_));
    for (std::uint64_t i = 16; i < 48; i++) model_.write(s, i, text_page(*rng_));
    for (std::uint64_t i = 48; i < 56; i++)
      model_.write(s, i, same_page(0x0101010101010101ull * i));
    s.check_invariants();
  }

  Random& rng() { return *rng_; }

  TempFile file_;
  Model model_;
  std::unique_ptr<Random> rng_;
};

TEST_F(WritebackTest, BackingFileIsShownAndNeverGrown) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(256);
  EXPECT_EQ(file_.size(), 256 * kBlockSize);
  write_attr_ok(*s, "reset", "1");
  // A file shorter than the disk: its size is the backing tier's (block 0 never used).
  ASSERT_EQ(truncate(file_.path().c_str(), 8 * kBlockSize), 0);
  write_attr_ok(*s, "backing_dev", file_.path());
  write_attr_ok(*s, "comp_algorithm", "lz4");
  write_attr_ok(*s, "disksize", "1M");
  for (std::uint64_t i = 0; i < 16; i++) model_.write(*s, i, random_page(rng()));
  std::string msg;
  auto r = attr(*s, "writeback", "huge", &msg);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(msg.find("is full (7 blocks)"), std::string::npos) << msg;
  EXPECT_EQ(s->bd_stat().bd_count, 7u);
  EXPECT_EQ(file_.size(), 8 * kBlockSize);
  model_.verify(*s, 16);
  s->check_invariants();
  auto shown = s->read_attr("backing_dev");
  ASSERT_TRUE(shown.has_value());
  char real[PATH_MAX];
  ASSERT_NE(realpath(file_.path().c_str(), real), nullptr);
  EXPECT_EQ(*shown, std::string(real) + "\n");
  EXPECT_EQ(*s->read_attr("bd_stat"), "       7        7        7\n");
}

TEST_F(WritebackTest, HugeWritesBackOnlyHugeSlots) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store();
  fill_layout(*s);
  const MmStat before = s->mm_stat();
  ASSERT_EQ(before.huge_pages, 16u);
  ASSERT_EQ(before.same_pages, 8u);
  write_attr_ok(*s, "writeback", "huge");
  s->check_invariants();
  const BdStat bd = s->bd_stat();
  EXPECT_EQ(bd.bd_count, 16u);
  EXPECT_EQ(bd.bd_writes, 16u);
  EXPECT_EQ(bd.bd_reads, 0u);
  const MmStat after = s->mm_stat();
  EXPECT_EQ(after.orig_data_size, before.orig_data_size);  // still stored
  EXPECT_EQ(after.compr_data_size, before.compr_data_size - 16 * kBlockSize);
  EXPECT_EQ(after.huge_pages, 0u);
  EXPECT_EQ(after.huge_pages_since, 16u);
  EXPECT_EQ(after.same_pages, 8u);
  EXPECT_LT(after.mem_used_total, before.mem_used_total);
  for (std::uint64_t i = 0; i < 56; i++) {
    EXPECT_EQ((slot_flags(*s, i) & slotf::kWb) != 0, i < 16) << i;
  }
  model_.verify(*s, 256);
  EXPECT_EQ(s->bd_stat().bd_reads, 16u);
  s->check_invariants();
  // block_state shows them as written back.
  auto bs = s->read_attr("block_state");
  ASSERT_TRUE(bs.has_value());
  EXPECT_NE(bs->find(" .w...."), std::string::npos) << *bs;
}

TEST_F(WritebackTest, IdleWritesBackUntouchedIdleSlots) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store();
  fill_layout(*s);
  write_attr_ok(*s, "idle", "all");
  Page buf;
  for (std::uint64_t i : {0, 1, 16, 17, 18})
    ASSERT_TRUE(s->read(i, buf.data()).has_value());  // not idle
  write_attr_ok(*s, "writeback", "type=idle");
  s->check_invariants();
  EXPECT_EQ(s->bd_stat().bd_count, 48u - 5u);
  for (std::uint64_t i = 0; i < 48; i++) {
    const bool touched = i == 0 || i == 1 || (i >= 16 && i <= 18);
    EXPECT_EQ((slot_flags(*s, i) & slotf::kWb) != 0, !touched) << i;
  }
  const MmStat m = s->mm_stat();
  EXPECT_EQ(m.huge_pages, 2u);
  EXPECT_EQ(m.orig_data_size, 56 * kBlockSize);
  model_.verify(*s, 256);
  s->check_invariants();
}

TEST_F(WritebackTest, HugeIdleNeedsBoth) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store();
  fill_layout(*s);
  write_attr_ok(*s, "idle", "all");
  Page buf;
  for (std::uint64_t i = 0; i < 8; i++) ASSERT_TRUE(s->read(i, buf.data()).has_value());
  write_attr_ok(*s, "writeback", "huge_idle");
  s->check_invariants();
  EXPECT_EQ(s->bd_stat().bd_count, 8u);  // huge slots 8..15
  for (std::uint64_t i = 0; i < 48; i++) {
    EXPECT_EQ((slot_flags(*s, i) & slotf::kWb) != 0, i >= 8 && i < 16) << i;
  }
  EXPECT_EQ(s->mm_stat().huge_pages, 8u);
  // The key=value spelling does the same; nothing is left to do.
  write_attr_ok(*s, "writeback", "type=huge_idle");
  EXPECT_EQ(s->bd_stat().bd_count, 8u);
  model_.verify(*s, 256);
  s->check_invariants();
}

TEST_F(WritebackTest, IncompressibleAfterRecompression) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(256, false, {"zstd"});
  fill_layout(*s);  // random pages stay huge under zstd
  for (std::uint64_t i = 60; i < 64; i++) model_.write(*s, i, nibble_page(rng()));  // rescued
  write_attr_ok(*s, "writeback", "incompressible");  // nothing marked yet
  EXPECT_EQ(s->bd_stat().bd_count, 0u);
  write_attr_ok(*s, "recompress", "type=huge");
  s->check_invariants();
  for (std::uint64_t i = 0; i < 16; i++)
    EXPECT_TRUE(slot_flags(*s, i) & slotf::kIncompressible) << i;
  for (std::uint64_t i = 60; i < 64; i++) EXPECT_EQ(slot_prio(*s, i), 1u) << i;
  write_attr_ok(*s, "writeback", "type=incompressible");
  s->check_invariants();
  EXPECT_EQ(s->bd_stat().bd_count, 16u);
  EXPECT_EQ(s->mm_stat().huge_pages, 0u);
  // A recompressed (zstd) slot written back uncompressed reads back through the file.
  write_attr_ok(*s, "writeback", "page_indexes=60-63");
  EXPECT_EQ(s->bd_stat().bd_count, 20u);
  model_.verify(*s, 256);
  s->check_invariants();
}

TEST_F(WritebackTest, PageIndexAndRanges) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store();
  fill_layout(*s);
  // Single indexes and ranges mix; same-filled (50) and unwritten (100) blocks are skipped,
  // duplicates are written once.
  write_attr_ok(*s, "writeback",
                "page_index=3 page_index=20 page_indexes=30-33 page_index=50 "
                "page_index=100 page_indexes=31-34 page_index=3");
  s->check_invariants();
  EXPECT_EQ(s->bd_stat().bd_count, 7u);
  EXPECT_EQ(s->bd_stat().bd_writes, 7u);
  for (std::uint64_t i = 0; i < 56; i++) {
    const bool want = i == 3 || i == 20 || (i >= 30 && i <= 34);
    EXPECT_EQ((slot_flags(*s, i) & slotf::kWb) != 0, want) << i;
  }
  // A type filters the ranges, wherever it is written.
  write_attr_ok(*s, "writeback", "page_indexes=0-19 type=huge");
  s->check_invariants();
  EXPECT_EQ(s->bd_stat().bd_count, 7u + 15u);
  EXPECT_EQ(slot_flags(*s, 16) & slotf::kWb, 0u);
  EXPECT_EQ(s->mm_stat().huge_pages, 0u);
  // Already written back: nothing to do, no error.
  write_attr_ok(*s, "writeback", "page_index=3");
  EXPECT_EQ(s->bd_stat().bd_writes, 22u);
  model_.verify(*s, 256);
  s->check_invariants();
}

TEST_F(WritebackTest, GrammarErrors) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(64);
  fill_layout(*s);
  struct Case {
    const char* arg;
    Errc want;
  } cases[] = {
      {"", Errc::invalid_argument},
      {"bogus", Errc::invalid_argument},
      {"type=bogus", Errc::invalid_argument},
      {"type=", Errc::invalid_argument},
      {"idle huge", Errc::invalid_argument},
      {"type=idle type=huge", Errc::invalid_argument},
      {"page_index=x", Errc::invalid_argument},
      {"page_index=-1", Errc::invalid_argument},
      {"page_indexes=5", Errc::invalid_argument},
      {"page_indexes=5-", Errc::invalid_argument},
      {"page_indexes=a-b", Errc::invalid_argument},
      {"foo=1", Errc::invalid_argument},
      {"page_index=64", Errc::out_of_range},
      {"page_index=18446744073709551615", Errc::out_of_range},
      {"page_indexes=10-64", Errc::out_of_range},
      {"page_indexes=9-3", Errc::out_of_range},
      {"page_index=1 page_indexes=60-70", Errc::out_of_range},
  };
  for (const Case& c : cases) {
    std::string msg;
    auto r = attr(*s, "writeback", c.arg, &msg);
    ASSERT_FALSE(r.has_value()) << c.arg;
    EXPECT_EQ(r.error(), make_error_code(c.want)) << c.arg << ": " << msg;
    EXPECT_NE(msg.find("writeback"), std::string::npos) << msg;
  }
  // Nothing was selected by the failed commands (PP_SLOT never leaks).
  for (std::uint64_t i = 0; i < 64; i++) EXPECT_EQ(slot_flags(*s, i) & slotf::kPpSlot, 0u) << i;
  EXPECT_EQ(s->bd_stat().bd_count, 0u);
  s->check_invariants();
}

TEST_F(WritebackTest, NoBackingDevice) {
  SCOPED_TRACE(seed_trace(test_seed()));
  StoreConfig c;
  c.blocks = 16;
  auto s = make_store(c);
  std::string msg;
  auto r = attr(*s, "writeback", "huge", &msg);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::not_supported));
  EXPECT_NE(msg.find("backing"), std::string::npos) << msg;
  EXPECT_EQ(*s->read_attr("backing_dev"), "none\n");
}

TEST_F(WritebackTest, BackingDevValidation) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto r0 = Store::create("zram-test");
  ASSERT_TRUE(r0.has_value());
  std::unique_ptr<Store> s = std::move(r0).value();
  std::string msg;
  auto r = attr(*s, "backing_dev", "/nonexistent/uzram-backing", &msg);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::invalid_argument));
  EXPECT_NE(msg.find("backing_dev"), std::string::npos) << msg;
  r = attr(*s, "backing_dev", "/tmp", &msg);  // a directory
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::invalid_argument));
  EXPECT_NE(msg.find("backing_dev"), std::string::npos) << msg;
  r = attr(*s, "backing_dev", "/dev/null", &msg);  // a character device
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::invalid_argument));
  EXPECT_EQ(*s->read_attr("backing_dev"), "none\n");
  r = attr(*s, "backing_dev", file_.path(), &msg);  // empty: never grown, so refused
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(msg.find("is empty"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncate -s SIZE " + file_.path()), std::string::npos) << msg;
  ASSERT_EQ(truncate(file_.path().c_str(), 64 * 1024), 0);
  write_attr_ok(*s, "backing_dev", file_.path());
  EXPECT_NE(*s->read_attr("backing_dev"), "none\n");
  write_attr_ok(*s, "backing_dev", "none");  // resets
  EXPECT_EQ(*s->read_attr("backing_dev"), "none\n");
  write_attr_ok(*s, "backing_dev", file_.path());
  write_attr_ok(*s, "backing_dev", file_.path());  // again: the store's own lock, no EBUSY
  // The file is opened when backing_dev is written and kept: a rename, or a file put in its
  // place, changes nothing (no later open by path).
  TempFile other;
  ASSERT_EQ(truncate(other.path().c_str(), 64 * 1024), 0);
  write_attr_ok(*s, "backing_dev", other.path());
  const std::string moved = other.path() + ".moved";
  ASSERT_EQ(rename(other.path().c_str(), moved.c_str()), 0);
  ASSERT_EQ(symlink(file_.path().c_str(), other.path().c_str()), 0);
  write_attr_ok(*s, "disksize", "64K");
  model_.write(*s, 3, random_page(rng()));
  write_attr_ok(*s, "writeback", "page_index=3");
  EXPECT_EQ(s->bd_stat().bd_count, 1u);
  struct stat st;
  ASSERT_EQ(stat(file_.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_blocks, 0);  // untouched: still a hole
  ASSERT_EQ(stat(moved.c_str(), &st), 0);
  EXPECT_GT(st.st_blocks, 0);  // the block went to the file that was opened
  model_.verify(*s, 16);
  unlink(other.path().c_str());
  rename(moved.c_str(), other.path().c_str());
  write_attr_ok(*s, "reset", "1");
  write_attr_ok(*s, "backing_dev", file_.path());
  write_attr_ok(*s, "disksize", "64K");
  r = attr(*s, "backing_dev", file_.path(), &msg);  // not after init
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::busy));
}

TEST_F(WritebackTest, DiscardAndOverwriteFreeBackingBlocksAndFullDevice) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(16);  // a 16-block file: block 0 is never used, so 15 fit
  for (std::uint64_t i = 0; i < 16; i++) model_.write(*s, i, random_page(rng()));
  std::string msg;
  auto r = attr(*s, "writeback", "huge", &msg);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::no_memory));
  EXPECT_NE(msg.find("full"), std::string::npos) << msg;
  s->check_invariants();
  EXPECT_EQ(s->bd_stat().bd_count, 15u);
  EXPECT_EQ(s->mm_stat().huge_pages, 1u);
  for (std::uint64_t i = 0; i < 16; i++) EXPECT_EQ(slot_flags(*s, i) & slotf::kPpSlot, 0u) << i;
  model_.verify(*s, 16);

  // Discard five written-back blocks: their backing blocks are free again.
  std::vector<std::uint64_t> wb;
  for (std::uint64_t i = 0; i < 16; i++) {
    if (slot_flags(*s, i) & slotf::kWb) wb.push_back(i);
  }
  for (int k = 0; k < 5; k++) {
    ASSERT_TRUE(s->discard(wb[k] * kBlockSize, kBlockSize).has_value());
    model_.forget(wb[k]);
    s->check_invariants();
  }
  EXPECT_EQ(s->bd_stat().bd_count, 10u);
  EXPECT_EQ(s->mm_stat().orig_data_size, 11 * kBlockSize);
  // Overwrite three more with new data (freeing their blocks), then the free notification.
  for (int k = 5; k < 8; k++) {
    model_.write(*s, wb[k], random_page(rng()));
    s->check_invariants();
  }
  s->slot_free_notify(wb[8]);
  model_.forget(wb[8]);
  s->check_invariants();
  EXPECT_EQ(s->bd_stat().bd_count, 6u);
  // Every huge page now fits: 6 + 1 + 3 = 10 <= 15.
  write_attr_ok(*s, "writeback", "huge");
  s->check_invariants();
  EXPECT_EQ(s->bd_stat().bd_count, 10u);
  EXPECT_EQ(s->bd_stat().bd_writes, 15u + 4u);
  model_.verify(*s, 16);
  // Refill the five discarded blocks and write back everything: exactly full, no error.
  for (int k = 0; k < 5; k++) model_.write(*s, wb[k], random_page(rng()));
  write_attr_ok(*s, "writeback", "huge");  // 10 + 5 = 15
  EXPECT_EQ(s->bd_stat().bd_count, 15u);
  model_.verify(*s, 16);
  s->check_invariants();
  // Reset frees every backing block; the device comes back empty.
  write_attr_ok(*s, "reset", "1");
  write_attr_ok(*s, "backing_dev", file_.path());
  write_attr_ok(*s, "disksize", "64K");
  EXPECT_EQ(s->bd_stat().bd_count, 0u);
  s->check_invariants();
}

TEST_F(WritebackTest, WritebackLimit) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store();
  for (std::uint64_t i = 0; i < 10; i++) model_.write(*s, i, random_page(rng()));
  write_attr_ok(*s, "writeback_limit_enable", "1");
  write_attr_ok(*s, "writeback_limit", "0");
  std::string msg;
  auto r = attr(*s, "writeback", "huge", &msg);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::io_error));
  EXPECT_NE(msg.find("writeback_limit"), std::string::npos) << msg;
  EXPECT_EQ(s->bd_stat().bd_count, 0u);
  s->check_invariants();

  write_attr_ok(*s, "writeback_limit", "3");
  r = attr(*s, "writeback", "huge", &msg);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::io_error));
  EXPECT_EQ(s->bd_stat().bd_count, 3u);
  EXPECT_EQ(*s->read_attr("writeback_limit"), "0\n");
  s->check_invariants();

  write_attr_ok(*s, "writeback_limit", "7");  // exactly the remaining candidates: no error
  write_attr_ok(*s, "writeback", "huge");
  EXPECT_EQ(s->bd_stat().bd_count, 10u);
  EXPECT_EQ(*s->read_attr("writeback_limit"), "0\n");
  s->check_invariants();

  // Disabled: the (exhausted) budget does not matter.
  for (std::uint64_t i = 10; i < 14; i++) model_.write(*s, i, random_page(rng()));
  write_attr_ok(*s, "writeback_limit_enable", "0");
  write_attr_ok(*s, "writeback", "huge");
  EXPECT_EQ(s->bd_stat().bd_count, 14u);
  EXPECT_EQ(*s->read_attr("writeback_limit"), "0\n");
  model_.verify(*s, 256);
  s->check_invariants();
}

TEST_F(WritebackTest, CompressedWritebackRoundTrip) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(256, true, {"zstd"});
  fill_layout(*s);
  for (std::uint64_t i = 60; i < 70; i++) model_.write(*s, i, nibble_page(rng()));
  write_attr_ok(*s, "recompress", "type=huge");  // 60..69 now zstd (priority 1)
  for (std::uint64_t i = 60; i < 70; i++) ASSERT_EQ(slot_prio(*s, i), 1u) << i;
  const MmStat before = s->mm_stat();
  write_attr_ok(*s, "writeback", "page_indexes=0-100");
  s->check_invariants();
  EXPECT_EQ(s->bd_stat().bd_count, 16u + 32u + 10u);
  const MmStat after = s->mm_stat();
  EXPECT_EQ(after.compr_data_size, 0u);
  EXPECT_EQ(after.huge_pages, 0u);
  EXPECT_EQ(after.orig_data_size, before.orig_data_size);
  for (std::uint64_t i = 0; i < 16; i++) {  // huge: the raw page, nothing to decompress
    EXPECT_EQ(slot_flags(*s, i) & (slotf::kWb | slotf::kWbCompressed), slotf::kWb) << i;
  }
  for (std::uint64_t i = 16; i < 48; i++) {
    EXPECT_EQ(slot_flags(*s, i) & (slotf::kWb | slotf::kWbCompressed),
              slotf::kWb | slotf::kWbCompressed)
        << i;
    EXPECT_EQ(slot_prio(*s, i), 0u) << i;
  }
  for (std::uint64_t i = 60; i < 70; i++) EXPECT_EQ(slot_prio(*s, i), 1u) << i;  // zstd on read
  model_.verify(*s, 256);
  EXPECT_EQ(s->bd_stat().bd_reads, 58u);
  s->check_invariants();
  // The compressed block really is compressed on disk: the file holds text pages in well
  // under a page each (the second half of each such block is zero padding).
  for (std::uint64_t i = 16; i < 48; i++) {
    model_.write(*s, i, text_page(rng()));  // overwrite frees the backing blocks
  }
  EXPECT_EQ(s->bd_stat().bd_count, 26u);
  model_.verify(*s, 256);
  s->check_invariants();
}

TEST_F(WritebackTest, ReadOfLostBackingBlockFails) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(16);
  model_.write(*s, 5, random_page(rng()));
  write_attr_ok(*s, "writeback", "page_index=5");
  ASSERT_EQ(s->bd_stat().bd_count, 1u);
  ASSERT_EQ(truncate(file_.path().c_str(), 0), 0);  // the data is gone
  Page buf;
  auto r = s->read(5, buf.data());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::io_error));
  EXPECT_EQ(s->io_stat().failed_reads, 1u);
  // The slot can still be overwritten or discarded.
  ASSERT_TRUE(s->discard(5 * kBlockSize, kBlockSize).has_value());
  EXPECT_EQ(s->bd_stat().bd_count, 0u);
  s->check_invariants();
}

TEST_F(WritebackTest, BusyWhileAnotherPostProcessingRuns) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto s = store(64, false, {"zstd"});
  fill_layout(*s);
  impl(s.get())->pp_in_progress_.store(true);  // as if a pass were running
  std::string msg;
  auto r = attr(*s, "writeback", "huge", &msg);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::busy));
  EXPECT_NE(msg.find("writeback"), std::string::npos);
  r = attr(*s, "recompress", "type=huge", &msg);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::busy));
  impl(s.get())->pp_in_progress_.store(false);
  write_attr_ok(*s, "writeback", "huge");
  EXPECT_EQ(s->bd_stat().bd_count, 16u);
  s->check_invariants();
}

// Writeback passes race with writers, readers, discards and another post-processor; every
// command returns success or busy, the data and the counters stay exact.
TEST_F(WritebackTest, ConcurrentIoAndPostProcessing) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE(seed_trace(seed));
  constexpr std::uint64_t kBlocks = 512;
  constexpr unsigned kThreads = 3;
  auto s = store(kBlocks, false, {"zstd"});
  // Each I/O thread owns the blocks i % kThreads == t; its private model is merged after.
  std::vector<Model> models(kThreads);
  std::atomic<unsigned> io_running{kThreads};
  std::atomic<int> busy{0}, done_passes{0};
  std::vector<std::thread> io;
  for (unsigned t = 0; t < kThreads; t++) {
    io.emplace_back([&, t] {
      Random r(seed + 17 * (t + 1));
      Page buf;
      for (int op = 0; op < 3000; op++) {
        const std::uint64_t i = r.uniform(kBlocks / kThreads) * kThreads + t;
        const std::uint64_t k = r.uniform(10);
        if (k < 4) {
          const std::uint64_t kind = r.uniform(3);
          models[t].write(*s, i,
                          kind == 0   ? random_page(r)
                          : kind == 1 ? nibble_page(r)
                                      : text_page(r));
        } else if (k < 8) {
          ASSERT_TRUE(s->read(i, buf.data()).has_value());
          const Page* want = models[t].expected(i);
          Page zero{};
          ASSERT_EQ(0, std::memcmp(buf.data(), want ? want->data() : zero.data(), kBlockSize)) << i;
        } else if (k < 9) {
          ASSERT_TRUE(s->discard(i * kBlockSize, kBlockSize).has_value());
          models[t].forget(i);
        } else {
          std::string m;
          (void)s->write_attr("idle", "all", &m);
        }
      }
      io_running--;
    });
  }
  auto post = [&](const char* name, const char* arg) {
    // Until the I/O threads are done, and at least 3 successful passes each (a thread can
    // be starved of the pp_in_progress flag for a while on a small machine).
    for (int ok = 0; ok < 3 || io_running.load() > 0;) {
      std::string m;
      auto r = s->write_attr(name, arg, &m);
      if (!r) {
        ASSERT_EQ(r.error(), make_error_code(Errc::busy)) << name << " " << arg << ": " << m;
        busy++;
        std::this_thread::yield();
      } else {
        done_passes++;
        ok++;
      }
    }
  };
  std::thread wb([&] { post("writeback", "idle"); });
  std::thread wb2([&] { post("writeback", "huge"); });
  std::thread rc([&] { post("recompress", "type=huge"); });
  wb.join();
  wb2.join();
  rc.join();
  for (auto& t : io) t.join();
  EXPECT_GT(done_passes.load(), 0);
  EXPECT_GT(s->bd_stat().bd_writes, 0u);
  for (std::uint64_t i = 0; i < kBlocks; i++)
    EXPECT_EQ(slot_flags(*s, i) & slotf::kPpSlot, 0u) << i;
  s->check_invariants();
  Page buf, zero{};
  for (std::uint64_t i = 0; i < kBlocks; i++) {
    ASSERT_TRUE(s->read(i, buf.data()).has_value());
    const Page* want = models[i % kThreads].expected(i);
    ASSERT_EQ(0, std::memcmp(buf.data(), want ? want->data() : zero.data(), kBlockSize)) << i;
  }
  s->check_invariants();
  std::printf("concurrent: %d passes, %d busy, bd_stat %s", done_passes.load(), busy.load(),
              s->read_attr("bd_stat").value().c_str());
}

}  // namespace
}  // namespace uzram

// Store core: lifecycle and attributes (with the kernel's refusals and formats), the
// write/read paths (same-filled, huge, compressed), mem_limit, discard, free notify.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "store/store_test_util.h"
#include "uzram/pool.h"
#include "uzram/store.h"

namespace uzram {
namespace {

using testing::make_block;
using testing::new_store;

TEST(StoreAttrTest, LifecycleAndKernelRefusals) {
  auto st = std::move(Store::create("zram7").value());
  EXPECT_EQ(st->name(), "zram7");
  EXPECT_EQ(st->read_attr("initstate").value(), "0\n");
  EXPECT_EQ(st->read_attr("disksize").value(), "0\n");
  std::string msg;
  // Before init: I/O and post-processing are refused.
  unsigned char b[kBlockSize] = {};
  EXPECT_EQ(st->write(0, b).error(), Errc::not_initialized);
  EXPECT_EQ(st->write_attr("compact", "1", &msg).error(), Errc::invalid_argument);
  EXPECT_NE(msg.find("compact"), std::string::npos);
  EXPECT_EQ(st->write_attr("disksize", "0", &msg).error(), Errc::invalid_argument);
  EXPECT_EQ(st->write_attr("disksize", "12Q", &msg).error(), Errc::invalid_argument);
  ASSERT_TRUE(st->write_attr("comp_algorithm", "lz4"));
  ASSERT_TRUE(st->write_attr("disksize", "1M"));
  EXPECT_EQ(st->read_attr("disksize").value(), "1048576\n");
  EXPECT_EQ(st->read_attr("initstate").value(), "1\n");
  // After init: EBUSY, with a message naming the attribute.
  EXPECT_EQ(st->write_attr("disksize", "2M", &msg).error(), Errc::busy);
  EXPECT_NE(msg.find("disksize"), std::string::npos);
  EXPECT_EQ(st->write_attr("comp_algorithm", "zstd", &msg).error(), Errc::busy);
  EXPECT_NE(msg.find("comp_algorithm"), std::string::npos);
  EXPECT_EQ(st->write_attr("recomp_algorithm", "algo=zstd", &msg).error(), Errc::busy);
  EXPECT_EQ(st->write_attr("algorithm_params", "level=3", &msg).error(), Errc::busy);
  EXPECT_EQ(st->write_attr("backing_dev", "/tmp", &msg).error(), Errc::busy);
  // Read-only / write-only / unknown.
  EXPECT_EQ(st->write_attr("mm_stat", "1", &msg).error(), Errc::not_supported);
  EXPECT_EQ(st->read_attr("mem_limit", &msg).error(), Errc::not_supported);
  EXPECT_EQ(st->read_attr("nope", &msg).error(), Errc::invalid_argument);
  EXPECT_NE(msg.find("nope"), std::string::npos);
  // reset returns to uninitialised and restores the default algorithm.
  EXPECT_EQ(st->write_attr("reset", "0", &msg).error(), Errc::invalid_argument);
  ASSERT_TRUE(st->write_attr("reset", "1"));
  EXPECT_EQ(st->read_attr("initstate").value(), "0\n");
  EXPECT_EQ(st->comp_algorithm(), "lzo-rle");
}

TEST(StoreAttrTest, AlgorithmsAndParams) {
  auto st = std::move(Store::create().value());
  const std::string list = st->read_attr("comp_algorithm").value();
  EXPECT_EQ(list.rfind("[lzo-rle] lzo ", 0), 0u) << list;
  EXPECT_NE(list.find("zstd"), std::string::npos);
  std::string msg;
  EXPECT_EQ(st->write_attr("comp_algorithm", "lz5", &msg).error(), Errc::invalid_argument);
  EXPECT_NE(msg.find("lz5"), std::string::npos);
  ASSERT_TRUE(st->write_attr("comp_algorithm", "zstd\n"));  // sysfs writes end in a newline
  EXPECT_NE(st->read_attr("comp_algorithm").value().find("[zstd]"), std::string::npos);
  EXPECT_EQ(st->write_attr("algorithm_params", "algo=zstd level=99", &msg).error(),
            Errc::bad_level);
  EXPECT_NE(msg.find("algorithm_params"), std::string::npos);
  EXPECT_EQ(st->write_attr("algorithm_params", "algo=zstd dict=/nonexistent/dict", &msg).error(),
            Errc::bad_dictionary);
  EXPECT_EQ(st->write_attr("algorithm_params", "algo=lz4 level=1", &msg).error(),
            Errc::invalid_argument);
  EXPECT_EQ(st->write_attr("algorithm_params", "colour=blue", &msg).error(),
            Errc::invalid_argument);
  ASSERT_TRUE(st->write_attr("algorithm_params", "algo=zstd level=9"));
  EXPECT_EQ(st->write_attr("recomp_algorithm", "algo=zstd priority=4", &msg).error(),
            Errc::invalid_argument);
  EXPECT_EQ(st->write_attr("recomp_algorithm", "priority=1", &msg).error(), Errc::invalid_argument);
  ASSERT_TRUE(st->write_attr("recomp_algorithm", "algo=lz4hc priority=2"));
  EXPECT_EQ(st->read_attr("recomp_algorithm").value().rfind("#2: ", 0), 0u);
  ASSERT_TRUE(st->write_attr("disksize", "64K"));
  unsigned char in[kBlockSize], out[kBlockSize];
  make_block(in, 3, 1);
  ASSERT_TRUE(st->write(0, in));
  ASSERT_TRUE(st->read(0, out));
  EXPECT_EQ(std::memcmp(in, out, kBlockSize), 0);
}

TEST(StoreIoTest, SameFilledHugeAndCompressed) {
  auto st = new_store("lz4", "4M");
  unsigned char in[kBlockSize], out[kBlockSize];
  std::memset(in, 0, sizeof in);
  ASSERT_TRUE(st->write(0, in));  // zero page
  for (unsigned i = 0; i < kBlockSize; i++) in[i] = static_cast<unsigned char>(0xab + (i % 8) * 3);
  ASSERT_TRUE(st->write(1, in));  // a repeated 8-byte word, not zero
  std::uint64_t word = 0;
  EXPECT_TRUE(st->is_same_filled(1, &word));
  make_block(in, 0, 7);  // random: incompressible -> huge
  ASSERT_TRUE(st->write(2, in));
  make_block(in, 2, 8);  // text-like: compressible
  ASSERT_TRUE(st->write(3, in));
  const MmStat m = st->mm_stat();
  EXPECT_EQ(m.orig_data_size, 4 * kBlockSize);
  EXPECT_EQ(m.same_pages, 2u);
  EXPECT_EQ(m.huge_pages, 1u);
  EXPECT_EQ(m.huge_pages_since, 1u);
  EXPECT_GT(m.compr_data_size, kBlockSize);
  EXPECT_LT(m.compr_data_size, 2 * kBlockSize);
  EXPECT_EQ(m.mem_used_total, st->pool()->total_pages() * kBlockSize);
  for (std::uint64_t i = 0; i < 4; i++) {
    unsigned char expect[kBlockSize];
    ASSERT_TRUE(st->read(i, out));
    if (i == 0) std::memset(expect, 0, kBlockSize);
    if (i == 1)
      for (unsigned k = 0; k < kBlockSize; k++)
        expect[k] = static_cast<unsigned char>(0xab + (k % 8) * 3);
    if (i == 2) make_block(expect, 0, 7);
    if (i == 3) make_block(expect, 2, 8);
    EXPECT_EQ(std::memcmp(out, expect, kBlockSize), 0) << "block " << i;
  }
  ASSERT_TRUE(st->read(100, out));  // never written: zeros
  EXPECT_TRUE(st->is_unallocated(100));
  EXPECT_EQ(out[0] | out[4095], 0);
  EXPECT_EQ(st->read(1024, out).error(), Errc::out_of_range);
  EXPECT_EQ(st->write(1024, in).error(), Errc::out_of_range);
  // Overwrites free the old contents: huge -> same -> compressed.
  std::memset(in, 0, sizeof in);
  ASSERT_TRUE(st->write(2, in));
  EXPECT_EQ(st->mm_stat().huge_pages, 0u);
  EXPECT_EQ(st->mm_stat().huge_pages_since, 1u);
  EXPECT_EQ(st->mm_stat().same_pages, 3u);
  st->check_invariants();
}

TEST(StoreIoTest, MmStatFormatIsTheKernels) {
  auto st = new_store("lz4", "1M");
  unsigned char in[kBlockSize];
  make_block(in, 0, 1);
  ASSERT_TRUE(st->write(0, in));
  const std::string mm = st->read_attr("mm_stat").value();
  char expect[256];
  const MmStat m = st->mm_stat();
  std::snprintf(expect, sizeof expect, "%8llu %8llu %8llu %8llu %8llu %8llu %8llu %8llu %8llu\n",
                (unsigned long long)m.orig_data_size, (unsigned long long)m.compr_data_size,
                (unsigned long long)m.mem_used_total, 0ull, (unsigned long long)m.mem_used_max,
                0ull, 0ull, 1ull, 1ull);
  EXPECT_EQ(mm, expect);
  EXPECT_EQ(st->read_attr("io_stat").value(), "       0        0 0        0\n");
  EXPECT_EQ(st->read_attr("debug_stat").value(),
            "version: 1\n0        0\nfailed_writebacks        0\nbacking_blocks        0\n"
            "backing_bytes        0\nbacking_compacted        0\nbacking_trimmed        0\n"
            "backing_lost        0\nfailed_backing_reads        0\nbacking_reconnects        0\n"
            "backing_connected        0\n");
  EXPECT_EQ(st->read_attr("bd_stat").value(), "       0        0        0\n");
  EXPECT_EQ(st->read_attr("backing_dev").value(), "none\n");
  const std::string bs = st->read_attr("block_state").value();
  EXPECT_EQ(bs.substr(0, 13), "           0 ");
  EXPECT_EQ(bs.substr(bs.size() - 8), " ..h...\n");
  EXPECT_NE(st->read_attr("classes").value().find("pages_per_zspage"), std::string::npos);
}

TEST(StoreIoTest, MemLimitFailsCleanlyAndKeepsData) {
  auto st = new_store("lz4", "16M");
  ASSERT_TRUE(st->write_attr("mem_limit", "64K"));
  unsigned char in[kBlockSize], out[kBlockSize];
  make_block(in, 2, 100);  // a small object
  ASSERT_TRUE(st->write(100, in));
  std::uint64_t stored = 0;
  for (std::uint64_t i = 0; i < 64; i++) {
    make_block(in, 0, i);  // huge: one frame each
    if (!st->write(i, in)) break;
    stored++;
  }
  EXPECT_GE(stored, 14u);
  EXPECT_LE(stored, 16u);  // soft by up to one zspage, as in the kernel
  EXPECT_GT(st->io_stat().failed_writes, 0u);
  // An overwrite that would grow the store fails and keeps the old contents.
  make_block(in, 0, 999);
  EXPECT_EQ(st->write(100, in).error(), Errc::limit_reached);
  make_block(in, 2, 100);
  ASSERT_TRUE(st->read(100, out));
  EXPECT_EQ(std::memcmp(in, out, kBlockSize), 0);
  // One that stores no more than it frees is taken, over the limit by at most kRewriteRoom
  // (docs/store.md#mem_limit-and-rewrites).
  make_block(in, 0, 999);
  ASSERT_TRUE(st->write(0, in));
  ASSERT_TRUE(st->read(0, out));
  EXPECT_EQ(std::memcmp(in, out, kBlockSize), 0);
  EXPECT_LE(st->mm_stat().mem_used_max, (64u << 10) + (2u << 20));
  EXPECT_EQ(st->mm_stat().mem_limit, 65536u);
  EXPECT_GE(st->mm_stat().mem_used_max, st->mm_stat().mem_used_total);
  ASSERT_TRUE(st->write_attr("mem_limit", "0"));  // unlimited again
  make_block(in, 0, 999);
  ASSERT_TRUE(st->write(40, in));
  std::string msg;
  EXPECT_EQ(st->write_attr("mem_used_max", "5", &msg).error(), Errc::invalid_argument);
  ASSERT_TRUE(st->discard(0, 20 * kBlockSize));
  ASSERT_TRUE(st->write_attr("mem_used_max", "0"));
  EXPECT_EQ(st->mm_stat().mem_used_max, st->mm_stat().mem_used_total);
  st->check_invariants();
}

TEST(StoreIoTest, DiscardWholeBlocksOnlyAndFreeNotify) {
  auto st = new_store("lz4", "1M");
  unsigned char in[kBlockSize];
  for (std::uint64_t i = 0; i < 8; i++) {
    make_block(in, 2, i);
    ASSERT_TRUE(st->write(i, in));
  }
  // [100, 3*4096+5): block 0 partial (skipped), blocks 1 and 2 whole, block 3 partial.
  ASSERT_TRUE(st->discard(100, 3 * kBlockSize + 5 - 100));
  EXPECT_FALSE(st->is_unallocated(0));
  EXPECT_TRUE(st->is_unallocated(1));
  EXPECT_TRUE(st->is_unallocated(2));
  EXPECT_FALSE(st->is_unallocated(3));
  EXPECT_EQ(st->io_stat().notify_free, 2u);
  EXPECT_EQ(st->discard(kBlockSize, 1 << 20).error(), Errc::out_of_range);
  st->slot_free_notify(4);
  EXPECT_TRUE(st->is_unallocated(4));
  EXPECT_EQ(st->io_stat().notify_free, 3u);
  EXPECT_EQ(st->mm_stat().orig_data_size, 5 * kBlockSize);
  st->check_invariants();
}

TEST(StoreIoTest, CompactAndIdle) {
  auto st = new_store("lz4", "8M");
  unsigned char in[kBlockSize];
  for (std::uint64_t i = 0; i < 1000; i++) {
    make_block(in, 2, i);
    ASSERT_TRUE(st->write(i, in));
  }
  for (std::uint64_t i = 0; i < 1000; i += 2) ASSERT_TRUE(st->discard(i * kBlockSize, kBlockSize));
  const std::uint64_t before = st->mm_stat().mem_used_total;
  ASSERT_TRUE(st->write_attr("compact", "1"));
  EXPECT_LT(st->mm_stat().mem_used_total, before);
  EXPECT_GT(st->mm_stat().pages_compacted, 0u);
  std::string msg;
  EXPECT_EQ(st->write_attr("idle", "sometimes", &msg).error(), Errc::invalid_argument);
  EXPECT_NE(msg.find("idle"), std::string::npos);
  ASSERT_TRUE(st->write_attr("idle", "all"));
  std::string bs = st->read_attr("block_state").value();
  EXPECT_NE(bs.find("...i..\n"), std::string::npos);
  unsigned char out[kBlockSize];
  ASSERT_TRUE(st->read(1, out));                // access clears IDLE
  ASSERT_TRUE(st->write_attr("idle", "3600"));  // nothing is an hour old: all cleared
  bs = st->read_attr("block_state").value();
  EXPECT_EQ(bs.find("i..\n"), std::string::npos);
  st->check_invariants();
}

}  // namespace
}  // namespace uzram

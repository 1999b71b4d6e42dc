// A store for swap (StoreOptions::swap, `uzram serve --swap`): mem_limit required before
// disksize and kept within the pool it sized, every freed frame kept for the next write,
// writes beyond mem_limit refused with the stored data intact, and reset resizing.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "store_test_util.h"
#include "uzram/pool.h"
#include "uzram/store.h"

namespace uzram::testing {
namespace {

std::unique_ptr<Store> swap_store() {
  StoreOptions o;
  o.swap = true;
  auto s = Store::create("zram0", o);
  EXPECT_TRUE(s.has_value());
  return std::move(s).value();
}

TEST(SwapStore, DisksizeNeedsMemLimit) {
  auto s = swap_store();
  std::string msg;
  auto r = s->write_attr("disksize", "64M", &msg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::invalid_argument);
  EXPECT_NE(msg.find("needs mem_limit"), std::string::npos) << msg;
  EXPECT_FALSE(s->initialized());
  ASSERT_TRUE(s->write_attr("mem_limit", "8M"));
  ASSERT_TRUE(s->write_attr("disksize", "64M", &msg)) << msg;
  const PoolOptions& po = s->pool()->options();
  EXPECT_EQ(po.max_bytes, (std::size_t{8} << 20) + (std::size_t{4} << 20));
  EXPECT_EQ(po.decay_ms, 0u);
  EXPECT_EQ(po.frame_cache, po.max_bytes / 4096);
  EXPECT_EQ(po.reserve_handles, std::size_t{64} << 20 >> 12);
  EXPECT_TRUE(po.eager_workers);
  EXPECT_TRUE(po.prefault);
}

// A swap store's streams are warmed up at disksize: zstd's contexts and the unit buffers
// they touched are resident before any write (serving must not need memory from the
// kernel); another store's come on first use (docs/uzram-serve.md#memory).
TEST(SwapStore, StreamsAreWarmAtDisksizeOthersOnFirstUse) {
  auto s = swap_store();
  ASSERT_TRUE(s->write_attr("comp_algorithm", "zstd"));
  ASSERT_TRUE(s->write_attr("unit_size", "32K"));
  ASSERT_TRUE(s->write_attr("mem_limit", "8M"));
  ASSERT_TRUE(s->write_attr("disksize", "16M"));
  auto lazy = Store::create("zram1", StoreOptions{});
  ASSERT_TRUE(lazy);
  Store& l = **lazy;
  ASSERT_TRUE(l.write_attr("comp_algorithm", "zstd"));
  ASSERT_TRUE(l.write_attr("unit_size", "32K"));
  ASSERT_TRUE(l.write_attr("disksize", "16M"));
  ASSERT_EQ(s->streams(), l.streams());
  // A warmed stream: a compression context sized for a unit (hundreds of KiB), a unit
  // in its cache; a fresh one: the Stream object and a few pages.
  EXPECT_GE(s->memory().streams, s->streams() * std::uint64_t{300} << 10);
  EXPECT_LT(l.memory().streams, l.streams() * std::uint64_t{64} << 10);
  std::vector<unsigned char> unit(32768);
  for (std::size_t i = 0; i < unit.size(); i++) unit[i] = static_cast<unsigned char>(i * 7 / 5);
  ASSERT_TRUE(l.write_blocks(0, 8, unit.data()));
  EXPECT_GE(l.memory().streams, std::uint64_t{300} << 10);  // the writing stream's context
}

TEST(SwapStore, MemLimitStaysWithinThePool) {
  auto s = swap_store();
  ASSERT_TRUE(s->write_attr("mem_limit", "16M"));
  ASSERT_TRUE(s->write_attr("disksize", "64M"));
  std::string msg;
  for (const char* v : {"0", "17M", "1G"}) {
    auto r = s->write_attr("mem_limit", v, &msg);
    ASSERT_FALSE(r) << v;
    EXPECT_EQ(r.error(), Errc::invalid_argument);
    EXPECT_NE(msg.find("serves swap"), std::string::npos) << msg;
  }
  EXPECT_EQ(s->mm_stat().mem_limit, std::uint64_t{16} << 20);
  ASSERT_TRUE(s->write_attr("mem_limit", "8M"));
  ASSERT_TRUE(s->write_attr("mem_limit", "16M"));
  // Reset: the next disksize sizes the pool again, for the mem_limit then.
  ASSERT_TRUE(s->write_attr("reset", "1"));
  ASSERT_TRUE(s->write_attr("mem_limit", "32M"));
  ASSERT_TRUE(s->write_attr("disksize", "64M"));
  EXPECT_EQ(s->pool()->options().max_bytes, std::size_t{36} << 20);
  // A plain store takes any mem_limit.
  auto plain = std::move(Store::create().value());
  ASSERT_TRUE(plain->write_attr("disksize", "64M"));
  ASSERT_TRUE(plain->write_attr("mem_limit", "0"));
  ASSERT_TRUE(plain->write_attr("mem_limit", "1G"));
}

// A remote backing tier allocates for every request: a swap store refuses it (a file or
// block device is written with the memory the store holds).
TEST(SwapStore, RefusesARemoteBackingTier) {
  auto s = swap_store();
  std::string msg;
  auto r = s->write_attr("backing_dev", "nbd+unix:///?socket=/nonexistent/uzram.sock", &msg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::invalid_argument);
  EXPECT_NE(msg.find("serves swap"), std::string::npos) << msg;
  EXPECT_EQ(*s->read_attr("backing_dev"), "none\n");
}

// Filled past mem_limit: the writes beyond fail and the data before reads back; frames
// freed by discards are kept and reused by the next writes, none returned to the OS.
TEST(SwapStore, FillsToMemLimitAndKeepsItsFrames) {
  auto s = swap_store();
  ASSERT_TRUE(s->write_attr("mem_limit", "4M"));
  ASSERT_TRUE(s->write_attr("disksize", "64M"));
  alignas(8) unsigned char b[kBlockSize];
  std::uint64_t stored = 0;
  for (std::uint64_t i = 0; i < 4096; i++) {
    make_block(b, 0, i);  // incompressible: one frame each
    if (!s->write(i, b)) break;
    stored++;
  }
  EXPECT_GT(stored, 900u);
  EXPECT_LT(stored, 1100u);
  for (std::uint64_t i = 0; i < stored; i++) {
    alignas(8) unsigned char got[kBlockSize];
    make_block(b, 0, i);
    ASSERT_TRUE(s->read(i, got));
    ASSERT_EQ(std::memcmp(got, b, kBlockSize), 0) << i;
  }
  const std::uint64_t frames = s->pool()->stats().arena_frames;
  EXPECT_LE(frames * kBlockSize, (std::uint64_t{4} << 20) + (std::uint64_t{4} << 20));
  ASSERT_TRUE(s->discard(0, stored * kBlockSize));
  for (std::uint64_t i = 0; i < stored; i++) {
    make_block(b, 2, i);
    ASSERT_TRUE(s->write(i, b));
  }
  const PoolStats ps = s->pool()->stats();
  EXPECT_EQ(ps.frames_returned, 0u);
  EXPECT_EQ(ps.arena_frames, frames);
  EXPECT_GT(ps.idle_reused, 0u);
  s->check_invariants();
}

}  // namespace
}  // namespace uzram::testing

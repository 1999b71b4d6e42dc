// Unit stores under concurrency (run under TSan by the tsan preset): writer threads own
// disjoint units (whole-unit, partial and single-block writes, discards, free
// notifications, each checked exactly by its owner) and, in a shared region, the blocks
// of one unit belong to different threads (concurrent partial writes into one unit: an
// update lost by a re-encoding shows in the owner's read-back). A reader checks that
// every block it reads is one its owner wrote, and that no block ever goes back to an
// older version (a stale decoded-unit cache would); a post-processing thread runs
// compaction, idle, writeback and recompression all along. At the end every block is
// compared with its owner's model and the invariants and mm_stat are checked.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "store/pp_test_helpers.h"
#include "store/unit_model.h"
#include "testing/seed.h"

namespace uzram::testing {
namespace {

constexpr std::uint64_t kMagic = 0x756e69742d746167ULL;  // "unit-tag"
constexpr int kWriters = 3;
constexpr int kWriterOps = kUnitTestSanitized ? 600 : 2500;

// Version v (>= 1) of block b, self-describing: a same-filled word holding b and v, or a
// header (magic ^ b, v, kind) and a body regenerated from (b, v).
void tagged(unsigned char* p, std::uint64_t b, std::uint64_t v) {
  const unsigned kind = static_cast<unsigned>((b * 7 + v) % 4);
  if (kind == 0) {
    const std::uint64_t w = (std::uint64_t{0x5a} << 56) | (b << 24) | (v & 0xffffff);
    for (std::size_t i = 0; i < kBlockSize; i += 8) std::memcpy(p + i, &w, 8);
    return;
  }
  Random rng(b * 1000003 + v);
  unit_block(rng, p, kind == 1 ? 0 : kind == 2 ? 3 : 4);
  const std::uint64_t head[3] = {kMagic ^ b, v, kind};
  std::memcpy(p, head, sizeof head);
}

// The version block b holds (0: zeros), or -1 if it is nothing b's owner ever wrote.
std::int64_t version_of(const unsigned char* p, std::uint64_t b) {
  std::uint64_t w;
  std::memcpy(&w, p, 8);
  if (block_same_filled(p)) {
    if (w == 0) return 0;
    if ((w >> 56) != 0x5a || ((w >> 24) & 0xffffffff) != b) return -1;
    return static_cast<std::int64_t>(w & 0xffffff);
  }
  std::uint64_t head[3];
  std::memcpy(head, p, sizeof head);
  if (head[0] != (kMagic ^ b)) return -1;
  unsigned char want[kBlockSize];
  tagged(want, b, head[1]);
  return std::memcmp(want, p, kBlockSize) == 0 ? static_cast<std::int64_t>(head[1]) : -1;
}

struct Shared {
  std::unique_ptr<Store> st;
  std::uint64_t n = 1, units = 0, blocks = 0;
  std::vector<std::vector<unsigned char>> model;  // per block: its owner's last write
  std::atomic<int> writers_left{kWriters};
  // Blocks 0 .. units/2 * n: unit u belongs to writer u % kWriters; the rest: block b
  // belongs to writer b % kWriters.
  int owner(std::uint64_t b) const {
    return static_cast<int>(b < units / 2 * n ? b / n % kWriters : b % kWriters);
  }
};

void check_read(Shared& sh, std::uint64_t b, const unsigned char* got, const char* what) {
  const auto& want = sh.model[b];
  ASSERT_EQ(std::memcmp(got, want.data(), kBlockSize), 0)
      << what << ": block " << b << " holds version " << version_of(got, b) << ", not "
      << version_of(want.data(), b);
}

void writer(Shared& sh, int me, std::uint64_t seed) {
  Random rng(seed + static_cast<std::uint64_t>(me));
  std::vector<std::uint64_t> version(sh.blocks, 0);
  std::vector<unsigned char> buf(3 * sh.n * kBlockSize), got(buf.size());
  const std::uint64_t own_units = sh.units / 2, first_shared = own_units * sh.n;
  auto put = [&](std::uint64_t b, unsigned char* p) {
    tagged(p, b, ++version[b]);
    sh.model[b].assign(p, p + kBlockSize);
  };
  for (int i = 0; i < kWriterOps; i++) {
    const std::uint64_t op = rng.uniform(10);
    if (op < 5) {  // my own units: whole units, or blocks of one
      std::uint64_t u = rng.uniform(own_units);
      u = u - u % kWriters + static_cast<std::uint64_t>(me);
      if (u >= own_units) u = static_cast<std::uint64_t>(me);
      std::uint64_t b0 = u * sh.n, count = sh.n;
      if (op >= 3) {
        b0 += rng.uniform(sh.n);
        count = rng.range(1, u * sh.n + sh.n - b0);
      }
      for (std::uint64_t k = 0; k < count; k++) put(b0 + k, &buf[k * kBlockSize]);
      ASSERT_TRUE(sh.st->write_blocks(b0, count, buf.data()));
      ASSERT_TRUE(sh.st->read_blocks(b0, count, got.data()));
      for (std::uint64_t k = 0; k < count; k++) {
        ASSERT_NO_FATAL_FAILURE(check_read(sh, b0 + k, &got[k * kBlockSize], "own unit"));
      }
      if (op == 4 && rng.one_in(3)) {  // discard part of it, or free a block
        const std::uint64_t b = b0 + rng.uniform(count);
        if (rng.one_in(2)) {
          ASSERT_TRUE(sh.st->discard(b * kBlockSize, kBlockSize));
          sh.model[b].assign(kBlockSize, 0);
        } else {
          sh.st->slot_free_notify(b);  // it may miss (another thread holds the lock)
          ASSERT_TRUE(sh.st->read(b, got.data()));
          if (version_of(got.data(), b) == 0) sh.model[b].assign(kBlockSize, 0);
          ASSERT_NO_FATAL_FAILURE(check_read(sh, b, got.data(), "after free notify"));
        }
      }
    } else {  // a block of mine in the shared region: its unit's other blocks are not
      std::uint64_t b = first_shared + rng.uniform(sh.blocks - first_shared);
      b = b - b % kWriters + static_cast<std::uint64_t>(me);
      if (b >= sh.blocks || sh.owner(b) != me) continue;
      if (op == 9) {
        ASSERT_TRUE(sh.st->discard(b * kBlockSize, kBlockSize));
        sh.model[b].assign(kBlockSize, 0);
      } else {
        put(b, buf.data());
        ASSERT_TRUE(op < 7 ? sh.st->write(b, buf.data()) : sh.st->write_blocks(b, 1, buf.data()));
      }
      ASSERT_TRUE(sh.st->read(b, got.data()));
      ASSERT_NO_FATAL_FAILURE(check_read(sh, b, got.data(), "shared unit"));
    }
  }
}

void reader(Shared& sh, std::uint64_t seed) {
  Random rng(seed ^ 0xabcdef);
  std::vector<std::int64_t> seen(sh.blocks, 0);
  std::vector<unsigned char> got(sh.n * kBlockSize);
  while (sh.writers_left.load() > 0) {
    const std::uint64_t u = rng.uniform(sh.units);
    std::uint64_t b0 = u * sh.n, count = sh.n;
    if (rng.one_in(2)) {  // a block or two of it: the decoded-unit cache
      b0 += rng.uniform(sh.n);
      count = std::min<std::uint64_t>(rng.range(1, 2), (u + 1) * sh.n - b0);
    }
    ASSERT_TRUE(sh.st->read_blocks(b0, count, got.data()));
    for (std::uint64_t k = 0; k < count; k++) {
      const std::int64_t v = version_of(&got[k * kBlockSize], b0 + k);
      ASSERT_GE(v, 0) << "block " << b0 + k << " holds something its owner never wrote";
      if (v == 0) continue;  // zeros: discarded or freed meanwhile
      ASSERT_GE(v, seen[b0 + k]) << "block " << b0 + k << " went back to an older version";
      seen[b0 + k] = v;
    }
  }
}

void post_processor(Shared& sh) {
  static const char* const kOps[][2] = {{"compact", "1"},
                                        {"idle", "all"},
                                        {"writeback", "type=idle"},
                                        {"recompress", "type=huge"},
                                        {"idle", "all"},
                                        {"recompress", "type=idle"},
                                        {"writeback", "type=huge"},
                                        {"writeback_compact", "1"}};
  for (int i = 0; sh.writers_left.load() > 0; i++) {
    const auto& op = kOps[i % std::size(kOps)];
    std::string msg;
    auto r = sh.st->write_attr(op[0], op[1], &msg);
    ASSERT_TRUE(r || r.error() == Errc::no_memory) << op[0] << " " << op[1] << ": " << msg;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

class UnitModelMtTest : public ::testing::TestWithParam<const char*> {};

TEST_P(UnitModelMtTest, OwnAndSharedUnits) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE(seed_trace(seed));
  TempFile backing;
  Shared sh;
  sh.n = parse_size(GetParam()).value() / kBlockSize;
  sh.units = sh.n == 1 ? 192 : 48;
  sh.blocks = sh.units * sh.n;
  ASSERT_EQ(truncate(backing.path().c_str(), static_cast<off_t>(sh.blocks * kBlockSize)), 0);
  sh.model.assign(sh.blocks, std::vector<unsigned char>(kBlockSize, 0));
  sh.st = std::move(Store::create("zram-units").value());
  write_attr_ok(*sh.st, "unit_size", GetParam());
  write_attr_ok(*sh.st, "comp_algorithm", sh.n == 8 ? "lz4" : "zstd");
  write_attr_ok(*sh.st, "recomp_algorithm", sh.n == 8 ? "algo=zstd" : "algo=deflate");
  write_attr_ok(*sh.st, "backing_dev", backing.path());
  write_attr_ok(*sh.st, "disksize", std::to_string(sh.blocks * kBlockSize));
  std::vector<std::thread> ts;
  for (int w = 0; w < kWriters; w++) {
    ts.emplace_back([&, w] {
      writer(sh, w, seed);
      sh.writers_left.fetch_sub(1);
    });
  }
  ts.emplace_back([&] { reader(sh, seed); });
  ts.emplace_back([&] { post_processor(sh); });
  for (auto& t : ts) t.join();
  sh.st->check_invariants();
  std::vector<unsigned char> got(sh.blocks * kBlockSize);
  ASSERT_TRUE(sh.st->read_blocks(0, sh.blocks, got.data()));
  std::uint64_t stored = 0;  // written and not discarded or freed: never all zeros
  for (std::uint64_t b = 0; b < sh.blocks; b++) {
    ASSERT_NO_FATAL_FAILURE(check_read(sh, b, &got[b * kBlockSize], "at the end"));
    stored += version_of(sh.model[b].data(), b) > 0;
  }
  EXPECT_EQ(sh.st->mm_stat().orig_data_size, stored * kBlockSize);
  ASSERT_TRUE(sh.st->discard(0, sh.blocks * kBlockSize));
  sh.st->check_invariants();
  EXPECT_EQ(sh.st->mm_stat().orig_data_size, 0u);
  EXPECT_EQ(sh.st->unit_stat().units, 0u);
  EXPECT_EQ(sh.st->pool()->stats().objs_used, 0u) << "objects leaked";
}

INSTANTIATE_TEST_SUITE_P(Units, UnitModelMtTest, ::testing::Values("4K", "16K", "32K", "64K"),
                         [](const auto& param_info) { return std::string(param_info.param); });

}  // namespace
}  // namespace uzram::testing

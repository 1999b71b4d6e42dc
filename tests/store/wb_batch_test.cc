// writeback_batch_size and the two bug classes the kernel fixed in its batched writeback
// (May 2026): a completion racing the end of a pass (use-after-free of the pass's state:
// many short passes with concurrent overwrites, discards, frees and reads of the same slots,
// run under ASan and TSan), and a pass stopped early (limit exhausted, backing tier full,
// write errors) leaking a reserved backing block: after every exit the allocator's blocks
// in use are exactly those the written-back slots cover (check_invariants compares the
// live bytes of every block with the slots) and, raw, exactly bd_count.
#include <gtest/gtest.h>
#include <sys/uio.h>

#include <atomic>
#include <thread>

#include "store/backing.h"
#include "store/nbdkit_server.h"
#include "store/pp_test_helpers.h"

namespace uzram {
namespace {

using namespace uzram::testing;  // NOLINT

std::atomic<std::size_t> g_max_write{0}, g_nwrites{0};
std::atomic<std::uint64_t> g_fail_at{~std::uint64_t{0}};  // fail writes reaching this block

ssize_t counting_pwritev(int fd, const iovec* iov, int cnt, off_t off) {
  std::size_t len = 0;
  for (int i = 0; i < cnt; i++) len += iov[i].iov_len;
  g_nwrites++;
  std::size_t m = g_max_write.load();
  while (len > m && !g_max_write.compare_exchange_weak(m, len)) {
  }
  if (static_cast<std::uint64_t>(off) + len > g_fail_at.load() * kBlockSize) {
    errno = EIO;
    return -1;
  }
  return pwritev(fd, iov, cnt, off);
}

std::uint64_t blocks_in_use(Store& s) { return impl(&s)->backing_->alloc.used(); }

class WbBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rng_ = std::make_unique<Random>(test_seed());
    g_max_write = 0;
    g_nwrites = 0;
    g_fail_at = ~std::uint64_t{0};
  }
  void TearDown() override { backing_testing::set_hooks(nullptr, nullptr); }
  std::unique_ptr<Store> store(std::uint64_t blocks, std::uint64_t file_blocks, bool packed) {
    EXPECT_EQ(truncate(file_.path().c_str(), static_cast<off_t>(file_blocks * kBlockSize)), 0);
    StoreConfig c;
    c.backing = file_.path();
    c.blocks = blocks;
    c.compressed_writeback = packed;
    return make_store(c);
  }
  Page page(std::uint64_t i) {
    switch (i % 3) {
      case 0: return random_page(*rng_);
      case 1: return text_page(*rng_);
      default: return nibble_page(*rng_);
    }
  }
  TempFile file_;
  std::unique_ptr<Random> rng_;
};

TEST_F(WbBatchTest, TheAttribute) {
  auto s = store(64, 64, false);
  EXPECT_EQ(*s->read_attr("writeback_batch_size"), "32\n");
  write_attr_ok(*s, "writeback_batch_size", "1");
  EXPECT_EQ(*s->read_attr("writeback_batch_size"), "1\n");
  write_attr_ok(*s, "writeback_batch_size", " 256 \n");
  EXPECT_EQ(*s->read_attr("writeback_batch_size"), "256\n");
  write_attr_ok(*s, "writeback_batch_size", "100000");  // clamped
  EXPECT_EQ(*s->read_attr("writeback_batch_size"), "256\n");
  for (const char* bad : {"0", "", "-1", "abc", "1.5", "99999999999999999999"}) {
    std::string msg;
    auto r = s->write_attr("writeback_batch_size", bad, &msg);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error(), make_error_code(Errc::invalid_argument)) << bad;
    EXPECT_EQ(msg.rfind("writeback_batch_size: ", 0), 0u) << msg;
  }
  EXPECT_EQ(*s->read_attr("writeback_batch_size"), "256\n");
  write_attr_ok(*s, "reset", "1");  // kept, as the kernel keeps it
  EXPECT_EQ(*s->read_attr("writeback_batch_size"), "256\n");
  // backing_timeout_ms: milliseconds, bounded.
  EXPECT_EQ(*s->read_attr("backing_timeout_ms"), "10000\n");
  for (const char* bad : {"0", "9", "3600001", "x"}) {
    std::string msg;
    EXPECT_FALSE(s->write_attr("backing_timeout_ms", bad, &msg).has_value()) << bad;
    EXPECT_EQ(msg.rfind("backing_timeout_ms: ", 0), 0u) << msg;
  }
}

// Each write carries at most a batch; a batch of consecutive blocks is one write.
TEST_F(WbBatchTest, BatchesBoundTheWrites) {
  SCOPED_TRACE(seed_trace(test_seed()));
  for (unsigned batch : {1u, 5u, 32u, 256u}) {
    SCOPED_TRACE(batch);
    auto s = store(600, 601, false);
    Model model;
    for (std::uint64_t i = 0; i < 600; i++) model.write(*s, i, random_page(*rng_));
    write_attr_ok(*s, "writeback_batch_size", std::to_string(batch));
    g_max_write = 0;
    g_nwrites = 0;
    backing_testing::set_hooks(counting_pwritev, nullptr);
    write_attr_ok(*s, "writeback", "huge");
    backing_testing::set_hooks(nullptr, nullptr);
    EXPECT_EQ(s->bd_stat().bd_count, 600u);
    EXPECT_LE(g_max_write.load(), batch * kBlockSize);
    EXPECT_GE(g_nwrites.load(), (600 + batch - 1) / batch);
    EXPECT_LE(g_nwrites.load(), (600 + batch - 1) / batch + 2);  // fresh file: runs
    model.verify(*s, 600);
    s->check_invariants();
  }
}

// Stops of every kind, at every point of a batch, in both layouts: no reserved block
// outlives the pass.
TEST_F(WbBatchTest, EarlyExitsLeakNoReservedBlock) {
  SCOPED_TRACE(seed_trace(test_seed()));
  for (bool packed : {false, true}) {
    for (int round = 0; round < 12; round++) {
      SCOPED_TRACE(::testing::Message() << (packed ? "packed" : "raw") << " round " << round);
      const std::uint64_t file_blocks = round % 3 == 1 ? 20 + rng_->uniform(40) : 400;
      auto s = store(300, file_blocks, packed);
      Model model;
      for (std::uint64_t i = 0; i < 300; i++) model.write(*s, i, page(i));
      write_attr_ok(*s, "writeback_batch_size", std::to_string(1 + rng_->uniform(40)));
      switch (round % 3) {
        case 0:  // the limit runs out somewhere in a batch
          write_attr_ok(*s, "writeback_limit_enable", "1");
          write_attr_ok(*s, "writeback_limit", std::to_string(rng_->uniform(120)));
          break;
        case 1: break;  // the file fills up
        default:        // writes fail from some block on
          g_fail_at = 1 + rng_->uniform(150);
          backing_testing::set_hooks(counting_pwritev, nullptr);
          break;
      }
      std::string msg;
      (void)s->write_attr("writeback", "page_indexes=0-299", &msg);
      backing_testing::set_hooks(nullptr, nullptr);
      s->check_invariants();  // live bytes of every block == what the WB slots say
      const BdStat bd = s->bd_stat();
      if (!packed) {
        EXPECT_EQ(blocks_in_use(*s), bd.bd_count) << msg;
      }
      EXPECT_EQ(bd.backing_blocks, blocks_in_use(*s));
      for (std::uint64_t i = 0; i < 300; i++) {
        EXPECT_EQ(slot_flags(*s, i) & slotf::kPpSlot, 0u) << i;
      }
      model.verify(*s, 300);
      // What stayed behind still goes out once the cause is gone.
      write_attr_ok(*s, "writeback_limit_enable", "0");
      (void)s->write_attr("writeback", "page_indexes=0-299", &msg);
      s->check_invariants();
      for (std::uint64_t i = 0; i < 300; i += 2) {  // frees empty blocks out again
        ASSERT_TRUE(s->discard(i * kBlockSize, kBlockSize).has_value());
        model.forget(i);
      }
      s->check_invariants();
      if (!packed) {
        EXPECT_EQ(blocks_in_use(*s), s->bd_stat().bd_count);
      }
      model.verify(*s, 300);
      write_attr_ok(*s, "reset", "1");  // every block back: checked at close
    }
  }
}

// Short passes (batch sizes 1..8, limits that stop them early) race overwrites, discards,
// free notifications and reads of the very slots they write back, and compaction passes;
// a completion must never touch a pass that has ended. Data and counters stay exact.
void race(Store& s, std::uint64_t seed, std::uint64_t blocks, int passes_wanted) {
  constexpr unsigned kThreads = 3;
  std::vector<Model> models(kThreads);
  std::atomic<bool> pp_done{false};
  {
    Random r(seed);
    for (std::uint64_t i = 0; i < blocks; i++) {  // work for the first passes
      models[i % kThreads].write(s, i, r.one_in(2) ? text_page(r) : random_page(r));
    }
  }
  std::vector<std::thread> io;
  for (unsigned t = 0; t < kThreads; t++) {
    io.emplace_back([&, t] {
      Random r(seed + 31 * (t + 1));
      Page buf, zero{};
      for (int op = 0; op < 200 || !pp_done.load(); op++) {
        const std::uint64_t i = r.uniform(blocks / kThreads) * kThreads + t;
        const std::uint64_t k = r.uniform(10);
        if (k < 4) {
          models[t].write(s, i, r.one_in(2) ? text_page(r) : random_page(r));
        } else if (k < 7) {
          auto rr = s.read(i, buf.data());
          ASSERT_TRUE(rr.has_value()) << i;
          const Page* want = models[t].expected(i);
          ASSERT_EQ(0, std::memcmp(buf.data(), want ? want->data() : zero.data(), kBlockSize));
        } else if (k < 9) {
          ASSERT_TRUE(s.discard(i * kBlockSize, kBlockSize).has_value());
          models[t].forget(i);
        } else {
          s.slot_free_notify(i);  // may miss (try-lock): then the block stays
          if (s.is_unallocated(i)) models[t].forget(i);
        }
      }
    });
  }
  std::atomic<int> passes{0};
  std::thread pp([&] {
    Random r(seed + 7);
    for (; passes.load() < passes_wanted; passes++) {
      std::string m;
      (void)s.write_attr("writeback_batch_size", std::to_string(1 + r.uniform(8)), &m);
      (void)s.write_attr("writeback_limit_enable", r.one_in(3) ? "1" : "0", &m);
      (void)s.write_attr("writeback_limit", std::to_string(r.uniform(64)), &m);
      auto res = r.one_in(5) ? s.write_attr("writeback_compact", "threshold=90", &m)
                             : s.write_attr("writeback", r.one_in(2) ? "huge" : "idle", &m);
      if (r.one_in(4)) (void)s.write_attr("idle", "all", &m);
      (void)res;
    }
    pp_done = true;
  });
  for (auto& t : io) t.join();
  pp.join();
  s.check_invariants();
  const BdStat bd = s.bd_stat();
  std::printf("race: %d passes, bd_writes %llu, compacted %llu, bd_count %llu\n", passes.load(),
              static_cast<unsigned long long>(bd.bd_writes),
              static_cast<unsigned long long>(bd.compacted),
              static_cast<unsigned long long>(bd.bd_count));
  EXPECT_GT(bd.bd_writes, 0u);
  Page buf, zero{};
  for (std::uint64_t i = 0; i < blocks; i++) {
    ASSERT_TRUE(s.read(i, buf.data()).has_value());
    const Page* want = models[i % kThreads].expected(i);
    ASSERT_EQ(0, std::memcmp(buf.data(), want ? want->data() : zero.data(), kBlockSize)) << i;
  }
}

TEST_F(WbBatchTest, CompletionsRaceTheEndOfPasses) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE(seed_trace(seed));
  for (bool packed : {false, true}) {
    auto s = store(240, 241, packed);
    race(*s, seed, 240, 300);
  }
}

TEST_F(WbBatchTest, CompletionsRaceTheEndOfPassesRemote) {
  if (!have_nbdkit()) GTEST_SKIP() << "nbdkit not installed";
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE(seed_trace(seed));
  NbdkitServer remote({"memory", "1M"});
  ASSERT_TRUE(remote.start());
  for (bool packed : {false, true}) {
    auto r = Store::create("zram-race");
    std::unique_ptr<Store> s = std::move(r).value();
    write_attr_ok(*s, "comp_algorithm", "lz4");
    write_attr_ok(*s, "backing_dev", remote.uri());
    if (packed) write_attr_ok(*s, "compressed_writeback", "1");
    write_attr_ok(*s, "disksize", std::to_string(240 * kBlockSize));
    race(*s, seed, 240, 200);
  }
}

}  // namespace
}  // namespace uzram

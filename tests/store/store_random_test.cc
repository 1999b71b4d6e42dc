// Randomized store-vs-reference-model test, and concurrent writers/readers (checksums;
// concurrent writes to one block must never leak - the kernel's bug until Sep 2025).
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "store/store_test_util.h"
#include "testing/seed.h"
#include "util/random.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

using testing::make_block;
using testing::new_store;

// Configures an uninitialised store: algorithm, a zstd recompression algorithm and a
// backing file, then 1 MiB (256 blocks).
void setup(Store& st, const char* algo, const std::string& backing) {
  std::string msg;
  ASSERT_TRUE(st.write_attr("comp_algorithm", algo, &msg)) << msg;
  ASSERT_TRUE(st.write_attr("recomp_algorithm", "algo=zstd priority=1", &msg)) << msg;
  ASSERT_TRUE(st.write_attr("backing_dev", backing, &msg)) << msg;
  ASSERT_TRUE(st.write_attr("disksize", "1M", &msg)) << msg;
}

TEST(StoreRandomTest, MatchesReferenceModel) {
  char backing[] = "/tmp/uzram-random-backing-XXXXXX";
  const int fd = mkstemp(backing);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 1 << 20), 0);  // the disk's size: never grown by the store
  close(fd);
  std::uint64_t written_back = 0;
  for (const char* algo : {"lz4", "zstd", "lzo-rle", "deflate"}) {
    const std::uint64_t seed = testing::test_seed();
    SCOPED_TRACE(std::string(algo) + " seed " + std::to_string(seed) +
                 " (UZRAM_TEST_SEED replays)");
    auto st = std::move(Store::create().value());
    setup(*st, algo, backing);
    Random rng(seed);
    std::map<std::uint64_t, std::vector<unsigned char>> model;  // absent = zeros
    unsigned char in[kBlockSize], out[kBlockSize];
    for (int step = 0; step < 1500; step++) {
      const std::uint64_t idx = rng.uniform(256);
      switch (rng.uniform(6)) {
        case 0:
        case 1:
        case 2: {
          make_block(in, static_cast<int>(rng.uniform(4)), rng.next());
          ASSERT_TRUE(st->write(idx, in));
          model[idx].assign(in, in + kBlockSize);
          break;
        }
        case 3: {
          ASSERT_TRUE(st->read(idx, out));
          auto it = model.find(idx);
          std::vector<unsigned char> expect(kBlockSize, 0);
          if (it != model.end()) expect = it->second;
          ASSERT_EQ(std::memcmp(out, expect.data(), kBlockSize), 0)
              << "block " << idx << " step " << step;
          break;
        }
        case 4: {
          const std::uint64_t n = rng.range(1, 4);
          if (idx + n > 256) break;
          ASSERT_TRUE(st->discard(idx * kBlockSize, n * kBlockSize));
          for (std::uint64_t k = idx; k < idx + n; k++) model.erase(k);
          break;
        }
        default: {
          // Post-processing never changes contents: idle marking, writeback to the file
          // (the backing file may fill up: no_memory is fine), recompression, compaction.
          static const char* const kOps[][2] = {{"compact", "1"},
                                                {"idle", "all"},
                                                {"writeback", "type=idle"},
                                                {"writeback", "type=huge"},
                                                {"recompress", "type=huge"},
                                                {"recompress", "type=idle max_pages=20"}};
          const auto& op = kOps[rng.uniform(6)];
          if (rng.one_in(60)) {
            written_back += st->bd_stat().bd_writes;
            ASSERT_TRUE(st->write_attr("reset", "1"));
            setup(*st, algo, backing);
            model.clear();
            break;
          }
          std::string msg;
          auto r = st->write_attr(op[0], op[1], &msg);
          ASSERT_TRUE(r || r.error() == Errc::no_memory) << op[0] << " " << op[1] << ": " << msg;
          break;
        }
      }
      if (step % 50 == 0) st->check_invariants();
    }
    st->check_invariants();
    EXPECT_EQ(st->mm_stat().orig_data_size, model.size() * kBlockSize);
    written_back += st->bd_stat().bd_writes;
  }
  unlink(backing);
  EXPECT_GT(written_back, 0u) << "the sequence never wrote a block back";
}

TEST(StoreConcurrencyTest, ConcurrentWritersToOneBlockNeverLeak) {
  auto st = new_store("lz4", "64K");
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&, t] {
      unsigned char in[kBlockSize];
      for (int i = 0; i < 3000; i++) {
        make_block(in, (i + t) % 4, static_cast<std::uint64_t>(t * 100000 + i));
        ASSERT_TRUE(st->write(static_cast<std::uint64_t>(i % 2), in));
      }
    });
  }
  for (auto& t : ts) t.join();
  st->check_invariants();  // exactly one object (or same fill) per block, counters exact
  ASSERT_TRUE(st->discard(0, 2 * kBlockSize));
  st->check_invariants();
  EXPECT_EQ(st->pool()->stats().objs_used, 0u) << "objects leaked";
  EXPECT_EQ(st->mm_stat().orig_data_size, 0u);
}

TEST(StoreConcurrencyTest, WritersAndReadersWithChecksums) {
  auto st = new_store("zstd", "4M");  // 1024 blocks
  constexpr std::uint64_t kBlocks = 1024;
  // Each block's content is make_block(kind, version) with version published after the
  // write; readers accept any version they can reproduce (a block is only written by its
  // owner thread: block % 2).
  std::atomic<std::uint64_t> version[kBlocks];
  for (auto& v : version) v.store(0);
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0};
  std::vector<std::thread> ts;
  for (int w = 0; w < 2; w++) {
    ts.emplace_back([&, w] {
      Random rng(static_cast<std::uint64_t>(w) + 1);
      unsigned char in[kBlockSize];
      for (int i = 0; i < 4000; i++) {
        const std::uint64_t b = rng.uniform(kBlocks / 2) * 2 + static_cast<std::uint64_t>(w);
        const std::uint64_t v = version[b].load() + 1;
        make_block(in, static_cast<int>(v % 4), b * 1000003 + v);
        ASSERT_TRUE(st->write(b, in));
        version[b].store(v);
      }
    });
  }
  for (int r = 0; r < 2; r++) {
    ts.emplace_back([&, r] {
      Random rng(static_cast<std::uint64_t>(r) + 100);
      unsigned char out[kBlockSize], expect[kBlockSize];
      while (!stop.load()) {
        const std::uint64_t b = rng.uniform(kBlocks);
        const std::uint64_t v0 = version[b].load();
        ASSERT_TRUE(st->read(b, out));
        const std::uint64_t v1 = version[b].load();
        bool ok = false;
        for (std::uint64_t v = v0; v <= v1 + 1 && !ok; v++) {  // a write may be in flight
          if (v == 0) {
            std::memset(expect, 0, kBlockSize);
          } else {
            make_block(expect, static_cast<int>(v % 4), b * 1000003 + v);
          }
          ok = std::memcmp(out, expect, kBlockSize) == 0;
        }
        ASSERT_TRUE(ok) << "block " << b << " versions " << v0 << ".." << v1;
        reads.fetch_add(1);
      }
    });
  }
  ts.emplace_back([&] {
    while (!stop.load()) {
      ASSERT_TRUE(st->write_attr("compact", "1"));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  for (int i = 0; i < 2; i++) ts[i].join();
  stop.store(true);
  for (std::size_t i = 2; i < ts.size(); i++) ts[i].join();
  EXPECT_GT(reads.load(), 0);
  st->check_invariants();
}

}  // namespace
}  // namespace uzram

// The streams' idle release (docs/store.md#streams): a codec gives its contexts back and
// works as before; a stream pool releases idle streams (never a busy one, never a warm
// pool's); a store releases them when its last user closes and after its idle period, and
// the data stays intact; a swap store keeps them warm; users closing while others write
// (under TSan in the tsan suite).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "store/codec.h"
#include "store/store_impl.h"
#include "store/streams.h"
#include "store/unit_test_util.h"
#include "testing/seed.h"
#include "uzram/memory.h"

namespace uzram::testing {
namespace {

constexpr std::size_t kUnit = 32768;
constexpr std::uint64_t kWarm = std::uint64_t{300} << 10;  // a zstd context used on a unit
constexpr std::uint64_t kCold = std::uint64_t{64} << 10;   // a stream given back, per stream

std::vector<unsigned char> text(std::size_t n, std::uint64_t seed) {
  std::vector<unsigned char> v(n);
  for (std::size_t k = 0; k < n; k += kBlockSize) make_block(v.data() + k, 2, seed + k);
  return v;
}

TEST(CodecRelease, ZstdGivesItsContextsBackAndWorksOn) {
  CodecSpec spec;
  spec.name = "zstd";
  auto c = make_codec(spec);
  ASSERT_TRUE(c);
  Codec& z = **c;
  const auto src = text(kUnit, 1);
  std::vector<unsigned char> out(2 * kUnit), back(kUnit);
  for (int round = 0; round < 3; round++) {
    auto n = z.compress_pieces(src.data(), kUnit, out.data(), out.size(), 4096);
    ASSERT_TRUE(n);
    auto got = z.decompress_prefix(out.data(), *n, back.data(), kUnit, 4096);
    ASSERT_TRUE(got);
    if (*got < kUnit) {
      EXPECT_EQ(z.prefix_done(), *got);
    }
    const std::size_t used = z.memory_bytes();
    EXPECT_GE(used, kWarm) << "round " << round;
    ASSERT_TRUE(z.release_memory());
    EXPECT_LT(z.memory_bytes(), used / 4) << "round " << round;
    EXPECT_EQ(z.prefix_done(), 0u);  // nothing to continue after a release
    EXPECT_FALSE(z.decompress_more(kUnit));
    ASSERT_TRUE(z.decompress(out.data(), *n, back.data(), kUnit));
    EXPECT_EQ(std::memcmp(back.data(), src.data(), kUnit), 0);
  }
}

TEST(CodecRelease, CodecsWithoutContextsHaveNothingToGive) {
  for (const char* name : {"lz4", "lzo", "lzo-rle"}) {
    CodecSpec spec;
    spec.name = name;
    auto c = make_codec(spec);
    ASSERT_TRUE(c) << name;
    EXPECT_FALSE((*c)->release_memory()) << name;
  }
}

// One unit through a stream: compress into its buffer, decode into its cache.
void use(Stream& s, const std::vector<unsigned char>& unit, std::uint64_t key) {
  auto n = s.codec->compress(unit.data(), kUnit, s.unit_cbuf, 2 * kUnit);
  ASSERT_TRUE(n);
  Stream::CachedUnit* e = s.cache_take(key);
  ASSERT_TRUE(s.codec->decompress(s.unit_cbuf, *n, e->data, kUnit));
  e->unit = key;
  e->version = 1;
  e->ready = kUnit;
  ASSERT_EQ(std::memcmp(e->data, unit.data(), kUnit), 0);
}

TEST(StreamRelease, IdleStreamsGoBackAndComeBack) {
  CodecSpec spec;
  spec.name = "zstd";
  StreamPool p;
  ASSERT_TRUE(p.init(spec, 2, kUnit, /*warm=*/false));
  EXPECT_LT(p.memory_bytes(), 2 * kCold);
  const auto unit = text(kUnit, 7);
  Stream& s = p.get();
  use(s, unit, 5);
  StreamPool::put(s);
  EXPECT_GE(p.memory_bytes(), kWarm);
  // Taken in this period: kept by the first sweep, given back by the next.
  EXPECT_TRUE(p.sweep(false));
  EXPECT_GE(p.memory_bytes(), kWarm);
  EXPECT_EQ(p.releases(), 0u);
  EXPECT_FALSE(p.sweep(false));  // nothing holds memory after it
  EXPECT_EQ(p.releases(), 1u);
  EXPECT_LT(p.memory_bytes(), 2 * kCold);
  EXPECT_FALSE(p.sweep(true));  // nothing to give
  EXPECT_EQ(p.releases(), 1u);
  // The cache went with the pages: nothing found, the stream works as new.
  Stream& t = p.get();
  EXPECT_EQ(t.cache_find(5, 1), nullptr);
  EXPECT_EQ(t.resumable, nullptr);
  use(t, unit, 6);
  StreamPool::put(t);
  EXPECT_GE(p.memory_bytes(), kWarm);
  EXPECT_FALSE(p.sweep(true));  // all: at once, used or not
  EXPECT_EQ(p.releases(), 2u);
  EXPECT_LT(p.memory_bytes(), 2 * kCold);
}

TEST(StreamRelease, ABusyStreamIsNeverReleased) {
  CodecSpec spec;
  spec.name = "zstd";
  StreamPool p;
  ASSERT_TRUE(p.init(spec, 2, kUnit, /*warm=*/false));
  const auto unit = text(kUnit, 9);
  std::atomic<int> phase{0};
  std::thread holder([&] {
    Stream& s = p.get();
    use(s, unit, 1);
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
    EXPECT_EQ(s.cache_find(1, 1) != nullptr, true);  // untouched while held
    StreamPool::put(s);
  });
  while (phase.load() != 1) std::this_thread::yield();
  EXPECT_TRUE(p.sweep(true));  // busy: may still hold memory
  phase.store(2);
  holder.join();
  EXPECT_EQ(p.releases(), 0u);  // (releases() waits for each stream's mutex)
  EXPECT_GE(p.memory_bytes(), kWarm);
  EXPECT_FALSE(p.sweep(true));
  EXPECT_EQ(p.releases(), 1u);
}

// A 4 KiB store (no unit buffers) whose codec keeps only what it was built with has
// nothing to give: never swept, no timer; with zstd it is.
TEST(StreamRelease, NothingToGiveNoSweeps) {
  for (const char* name : {"lz4", "lzo-rle", "zstd"}) {
    CodecSpec spec;
    spec.name = name;
    StreamPool p;
    StreamTimer timer;
    ASSERT_TRUE(p.init(spec, 1, 0, /*warm=*/false, &timer));
    Stream& s = p.get();
    StreamPool::put(s);
    const bool zstd = std::string(name) == "zstd";
    EXPECT_FALSE(p.sweep(true)) << name;
    EXPECT_EQ(p.releases(), zstd ? 1u : 0u) << name;
  }
}

TEST(StreamRelease, AWarmPoolKeepsItsStreams) {
  CodecSpec spec;
  spec.name = "zstd";
  StreamPool p;
  ASSERT_TRUE(p.init(spec, 2, kUnit, /*warm=*/true));
  const std::size_t warm = p.memory_bytes();
  EXPECT_GE(warm, 2 * kWarm);
  EXPECT_FALSE(p.sweep(true));
  EXPECT_FALSE(p.sweep(false));
  EXPECT_EQ(p.releases(), 0u);
  EXPECT_GE(p.memory_bytes(), warm);
}

std::unique_ptr<Store> zstd_store(const StoreOptions& o, const char* unit = "32K") {
  auto st = std::move(Store::create("zram0", o).value());
  set_attr(*st, "comp_algorithm", "zstd");
  set_attr(*st, "unit_size", unit);
  if (o.swap) set_attr(*st, "mem_limit", "8M");
  set_attr(*st, "disksize", "16M");
  return st;
}

void expect_blocks(Store& st, std::uint64_t first, const std::vector<unsigned char>& want) {
  std::vector<unsigned char> got(want.size());
  ASSERT_TRUE(st.read_blocks(first, want.size() / kBlockSize, got.data()));
  EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size()), 0) << "block " << first;
}

TEST(StoreStreamRelease, TheLastUserClosingGivesTheStreamsBack) {
  for (const char* unit : {"4K", "32K"}) {
    SCOPED_TRACE(unit);
    StoreOptions o;
    o.stream_idle_ms = 0;  // no timer: only the close
    auto st = zstd_store(o, unit);
    const std::uint64_t fresh = st->memory().streams;
    EXPECT_LT(fresh, st->streams() * kCold);
    ASSERT_TRUE(st->open_user());
    ASSERT_TRUE(st->open_user());
    const auto data = text(4 * kUnit, 3);
    ASSERT_TRUE(st->write_blocks(0, data.size() / kBlockSize, data.data()));
    expect_blocks(*st, 0, data);
    const std::uint64_t used = st->memory().streams;
    EXPECT_GT(used, fresh + (std::uint64_t{64} << 10));
    st->close_user();  // one left: kept
    EXPECT_EQ(st->memory().streams, used);
    st->close_user();  // the last
    EXPECT_LT(st->memory().streams, st->streams() * kCold);
    expect_blocks(*st, 0, data);  // made anew, data intact
    const auto more = text(2 * kUnit, 11);
    ASSERT_TRUE(st->write_blocks(64, more.size() / kBlockSize, more.data()));
    expect_blocks(*st, 64, more);
    expect_blocks(*st, 0, data);
    EXPECT_GT(st->memory().streams, fresh + (std::uint64_t{64} << 10));
    // The memory breakdown's line is the store's figure.
    auto lines = memory_breakdown();
    ASSERT_TRUE(lines);
    bool found = false;
    for (const MemoryLine& m : *lines) {
      if (m.name == "zram0.streams") {
        found = true;
        EXPECT_GT(m.bytes, fresh + (std::uint64_t{64} << 10));
      }
    }
    EXPECT_TRUE(found);
  }
}

TEST(StoreStreamRelease, IdleStreamsGoBackAfterThePeriodWhileUsersStay) {
  StoreOptions o;
  o.stream_idle_ms = 20;
  auto st = zstd_store(o);
  ASSERT_TRUE(st->open_user());
  const auto data = text(4 * kUnit, 5);
  for (int round = 0; round < 2; round++) {  // the timer is armed again by the next use
    ASSERT_TRUE(st->write_blocks(0, data.size() / kBlockSize, data.data()));
    const auto t0 = std::chrono::steady_clock::now();
    while (st->memory().streams >= st->streams() * kCold &&
           std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_LT(st->memory().streams, st->streams() * kCold) << "round " << round;
    expect_blocks(*st, 0, data);
  }
  st->close_user();
}

TEST(StoreStreamRelease, ASwapStoreKeepsItsStreamsWarm) {
  StoreOptions o;
  o.swap = true;
  o.stream_idle_ms = 1;
  auto st = zstd_store(o);
  const std::uint64_t warm = st->memory().streams;
  EXPECT_GE(warm, st->streams() * kWarm);
  ASSERT_TRUE(st->open_user());
  const auto data = text(4 * kUnit, 8);
  ASSERT_TRUE(st->write_blocks(0, data.size() / kBlockSize, data.data()));
  st->close_user();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GE(st->memory().streams, warm);
  expect_blocks(*st, 0, data);
}

// Users come and go (each last close releases every stream not in use) and the timer
// sweeps every millisecond while writers and readers use the streams: every read is what
// its thread last wrote there. Under TSan in the tsan suite.
TEST(StoreStreamRelease, ReleasesRaceWritersAndReaders) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE(seed_trace(seed));
  StoreOptions o;
  o.stream_idle_ms = 1;
  auto st = zstd_store(o);
  constexpr unsigned kThreads = 3, kUnitsEach = 4, kBlocksPerUnit = kUnit / kBlockSize;
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop.load()) {
      if (st->open_user()) st->close_user();
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> workers;
  std::atomic<unsigned> bad{0};
  for (unsigned t = 0; t < kThreads; t++) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      std::vector<std::vector<unsigned char>> model(kUnitsEach);
      std::vector<unsigned char> got(kUnit);
      for (int i = 0; i < 150; i++) {
        const unsigned u = static_cast<unsigned>(rng() % kUnitsEach);
        const std::uint64_t first = (t * kUnitsEach + u) * kBlocksPerUnit;
        if (model[u].empty() || rng() % 2) {
          const std::vector<unsigned char> fresh = text(kUnit, rng());
          if (rng() % 3 == 0) {  // a partial write: one block of the unit
            const unsigned b = static_cast<unsigned>(rng() % kBlocksPerUnit);
            if (!st->write(first + b, fresh.data() + b * kBlockSize)) bad++;
            if (model[u].empty()) model[u].assign(kUnit, 0);  // never written: zeros
            std::memcpy(model[u].data() + b * kBlockSize, fresh.data() + b * kBlockSize,
                        kBlockSize);  // the rest is what was there
            if (!st->read_blocks(first, kBlocksPerUnit, got.data()) ||
                std::memcmp(got.data(), model[u].data(), kUnit) != 0) {
              bad++;
            }
            continue;
          }
          model[u] = fresh;
          if (!st->write_blocks(first, kBlocksPerUnit, model[u].data())) bad++;
        } else if (rng() % 2) {
          if (!st->read_blocks(first, kBlocksPerUnit, got.data()) ||
              std::memcmp(got.data(), model[u].data(), kUnit) != 0) {
            bad++;
          }
        } else {  // one block: the decoded-unit cache's path
          const unsigned b = static_cast<unsigned>(rng() % kBlocksPerUnit);
          if (!st->read(first + b, got.data()) ||
              std::memcmp(got.data(), model[u].data() + b * kBlockSize, kBlockSize) != 0) {
            bad++;
          }
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  stop.store(true);
  churn.join();
  EXPECT_EQ(bad.load(), 0u);
  std::uint64_t releases = 0;
  for (const StreamPool& p : impl(st.get())->streams_) releases += p.releases();
  EXPECT_GT(releases, 0u);  // the race did release streams
  st->check_invariants();
}

}  // namespace
}  // namespace uzram::testing

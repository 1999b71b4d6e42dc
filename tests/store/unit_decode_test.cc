// Partial decoding of units (docs/units.md#partial-decoding): zstd's compress_pieces,
// decompress_prefix and decompress_more against corrupt and cut input, the store's block
// reads that decode a prefix and go on, interleaved with everything else that uses a
// stream's gather buffer and codec (a seeded reference model), units small enough to be
// read in place, and several sequential readers sharing the streams' caches.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/codec.h"
#include "store/unit_test_util.h"
#include "testing/seed.h"
#include "util/random.h"

namespace uzram::testing {
namespace {

std::unique_ptr<Codec> codec(const char* name) {
  CodecSpec spec;
  spec.name = name;
  auto c = make_codec(spec);
  EXPECT_TRUE(c);
  return c ? std::move(c).value() : nullptr;
}

// A unit of mixed blocks: text, random, half random, a repeated word.
std::vector<unsigned char> mixed_unit(std::size_t unit, std::uint64_t seed) {
  std::vector<unsigned char> v(unit);
  for (std::size_t k = 0; k < unit / kBlockSize; k++) {
    make_block(v.data() + k * kBlockSize, static_cast<int>((k * 7 + seed) % 4), seed + k);
  }
  return v;
}

TEST(ZstdPieces, PrefixesDecodeWhatIsAskedAndGoOn) {
  auto c = codec("zstd");
  ASSERT_TRUE(c);
  for (const auto& [unit, piece] : {std::pair<std::size_t, std::size_t>{32768, 8192},
                                    {65536, 16384},
                                    {16384, 8192},
                                    {32768, 4096}}) {
    SCOPED_TRACE(std::to_string(unit) + "/" + std::to_string(piece));
    const auto data = mixed_unit(unit, unit + piece);
    std::vector<unsigned char> z(2 * unit), out(unit);
    auto n = c->compress_pieces(data.data(), unit, z.data(), z.size(), piece);
    ASSERT_TRUE(n);
    ASSERT_TRUE(c->decompress(z.data(), *n, out.data(), unit));  // one stream as ever
    EXPECT_EQ(out, data);
    EXPECT_EQ(c->prefix_done(), 0u);
    for (std::size_t need = kBlockSize; need <= unit; need += kBlockSize) {
      std::fill(out.begin(), out.end(), 0);
      auto r = c->decompress_prefix(z.data(), *n, out.data(), unit, need);
      ASSERT_TRUE(r);
      // Pieces up to need's: whole pieces, or all of it.
      EXPECT_EQ(*r, (need + piece - 1) / piece * piece) << need;
      EXPECT_EQ(0, std::memcmp(out.data(), data.data(), *r));
      EXPECT_EQ(c->prefix_done(), *r < unit ? *r : 0u);
      if (*r < unit) {
        auto more = c->decompress_more(*r + 1);  // the next piece only
        ASSERT_TRUE(more);
        EXPECT_EQ(*more, *r + piece);
        if (*more < unit) more = c->decompress_more(unit);
        ASSERT_TRUE(more);
        EXPECT_EQ(*more, unit);
        EXPECT_EQ(out, data);
      }
      EXPECT_EQ(c->prefix_done(), 0u);
      EXPECT_FALSE(c->decompress_more(unit));  // nothing left to go on with
    }
    // Another decompression in between: nothing to go on with.
    ASSERT_TRUE(c->decompress_prefix(z.data(), *n, out.data(), unit, kBlockSize));
    EXPECT_GT(c->prefix_done(), 0u);
    std::vector<unsigned char> other(unit);
    ASSERT_TRUE(c->decompress(z.data(), *n, other.data(), unit));
    EXPECT_EQ(c->prefix_done(), 0u);
    EXPECT_FALSE(c->decompress_more(unit));
    // A unit compressed whole is one piece: its prefix is all of it.
    auto whole = c->compress(data.data(), unit, z.data(), z.size());
    ASSERT_TRUE(whole);
    auto r = c->decompress_prefix(z.data(), *whole, out.data(), unit, kBlockSize);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, unit);
    EXPECT_EQ(out, data);
  }
}

// Cut and corrupted input: errors or wrong bytes, never a crash or a write past dst (the
// sanitizer builds check), never a success that claims less than asked.
TEST(ZstdPieces, CutAndCorruptInput) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE(seed_trace(seed));
  Random rng(seed);
  auto c = codec("zstd");
  ASSERT_TRUE(c);
  constexpr std::size_t kUnit = 32768, kPiece = 8192;
  const auto data = mixed_unit(kUnit, 5);
  std::vector<unsigned char> z(2 * kUnit);
  auto n = c->compress_pieces(data.data(), kUnit, z.data(), z.size(), kPiece);
  ASSERT_TRUE(n);
  for (std::size_t cut = 0; cut < *n; cut += 1 + cut / 8) {
    auto out = std::make_unique<unsigned char[]>(kUnit);
    auto r = c->decompress_prefix(z.data(), cut, out.get(), kUnit, kUnit);
    EXPECT_FALSE(r) << cut;  // the whole unit cannot come from less than all the input
    r = c->decompress_prefix(z.data(), cut, out.get(), kUnit, kBlockSize);
    if (r) {
      EXPECT_GE(*r, kBlockSize);
      EXPECT_EQ(0, std::memcmp(out.get(), data.data(), *r));  // what came out is right
      EXPECT_FALSE(c->decompress_more(kUnit));
    }
  }
  for (int i = 0; i < 300; i++) {
    std::vector<unsigned char> bad(z.begin(), z.begin() + static_cast<std::ptrdiff_t>(*n));
    for (int f = 0; f < 1 + i % 4; f++) bad[rng.uniform(bad.size())] ^= 1u << rng.uniform(8);
    auto out = std::make_unique<unsigned char[]>(kUnit);
    const std::size_t need = (1 + rng.uniform(kUnit / kBlockSize)) * kBlockSize;
    auto r = c->decompress_prefix(bad.data(), bad.size(), out.get(), kUnit, need);
    if (r) {
      EXPECT_GE(*r, need);
      EXPECT_LE(*r, kUnit);
      if (auto m = c->decompress_more(kUnit); m) {
        EXPECT_EQ(*m, kUnit);
      }
    }
  }
}

TEST(CodecPieces, OtherAlgorithmsDecodeWhole) {
  for (const char* name : {"lz4", "lzo-rle", "deflate"}) {
    SCOPED_TRACE(name);
    auto c = codec(name);
    ASSERT_TRUE(c);
    const auto data = mixed_unit(32768, 9);
    std::vector<unsigned char> z(65536), out(32768);
    auto n = c->compress_pieces(data.data(), data.size(), z.data(), z.size(), 8192);
    ASSERT_TRUE(n);
    auto r = c->decompress_prefix(z.data(), *n, out.data(), out.size(), kBlockSize);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, out.size());
    EXPECT_EQ(out, data);
    EXPECT_EQ(c->prefix_done(), 0u);
    EXPECT_FALSE(c->decompress_more(out.size()));
  }
}

// Block reads decode a prefix and go on; everything else a stream does in between
// (whole-unit reads through its gather buffer, other units' prefixes, rewrites, partial
// writes) must leave every block read right. One thread pinned: one stream's cache and
// codec see it all. A reference model of the disk checks every read.
TEST(UnitDecodeTest, BlockReadsAgainstAModel) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE(seed_trace(seed));
  Random rng(seed);
  PinToOneCpu pin;
  for (const char* unit : {"32K", "64K"}) {
    SCOPED_TRACE(unit);
    auto st = unit_store("zstd", unit, "1M");
    const unsigned n = static_cast<unsigned>(std::stoul(unit)) / 4;
    constexpr unsigned kUnits = 4;
    std::vector<unsigned char> model;
    for (unsigned u = 0; u < kUnits; u++) {
      auto d = mixed_unit(std::size_t{n} * kBlockSize, u * 31 + 1);
      model.insert(model.end(), d.begin(), d.end());
    }
    ASSERT_TRUE(st->write_blocks(0, kUnits * n, model.data()));
    set_attr(*st, "unit_policy", "rmw");  // partial writes keep units
    std::vector<unsigned char> b(kBlockSize), whole(std::size_t{n} * kBlockSize);
    for (int step = 0; step < 3000; step++) {
      const unsigned u = static_cast<unsigned>(rng.uniform(kUnits));
      const std::uint64_t first = std::uint64_t{u} * n;
      const unsigned k = static_cast<unsigned>(rng.uniform(n));
      unsigned char* m = model.data() + (first + k) * kBlockSize;
      switch (rng.uniform(10)) {
        case 0: {  // a whole unit read: through the gather buffer
          ASSERT_TRUE(st->read_blocks(first, n, whole.data()));
          ASSERT_EQ(0, std::memcmp(whole.data(), model.data() + first * kBlockSize, whole.size()))
              << step;
          break;
        }
        case 1: {  // a rewrite: a new version
          auto d = mixed_unit(whole.size(), rng.next());
          ASSERT_TRUE(st->write_blocks(first, n, d.data()));
          std::memcpy(model.data() + first * kBlockSize, d.data(), d.size());
          break;
        }
        case 2: {  // a partial write (rmw)
          make_block(b.data(), static_cast<int>(rng.uniform(4)), rng.next());
          ASSERT_TRUE(st->write(first + k, b.data()));
          std::memcpy(m, b.data(), kBlockSize);
          break;
        }
        default: {  // block reads, often running on through the unit
          const unsigned run = rng.one_in(2) ? 1 : static_cast<unsigned>(rng.uniform(n - k)) + 1;
          for (unsigned j = 0; j < run; j++) {
            ASSERT_TRUE(st->read(first + k + j, b.data()));
            ASSERT_EQ(0, std::memcmp(b.data(), m + std::size_t{j} * kBlockSize, kBlockSize))
                << "step " << step << " unit " << u << " block " << k + j;
          }
        }
      }
    }
    st->check_invariants();
    const UnitStat s = st->unit_stat();
    EXPECT_GT(s.cache_hits, 0u);
    EXPECT_LT(s.cache_hits, s.partial_reads);
  }
}

// A unit that compresses below a frame is read in place (not gathered): its block reads
// decode it whole, since its bytes are not the stream's after read_end.
TEST(UnitDecodeTest, SmallUnitsReadInPlace) {
  PinToOneCpu pin;
  auto st = unit_store("zstd", "32K");
  std::vector<unsigned char> data(32768);
  for (std::size_t i = 0; i < data.size(); i++) {
    data[i] = static_cast<unsigned char>(i / 8 % 3 + i / 4096);  // no block is one word
  }
  ASSERT_TRUE(st->write_blocks(0, 8, data.data()));
  EXPECT_EQ(st->unit_stat().units, 1u);
  EXPECT_LT(st->mm_stat().compr_data_size, 4096u);
  std::vector<unsigned char> b(kBlockSize);
  for (unsigned k : {5u, 0u, 7u, 6u}) {
    ASSERT_TRUE(st->read(k, b.data()));
    EXPECT_EQ(0, std::memcmp(b.data(), data.data() + std::size_t{k} * kBlockSize, kBlockSize));
  }
  EXPECT_EQ(st->unit_stat().cache_hits, 3u);  // decoded whole by the first read
}

// Four sequential readers of disjoint regions, one block each in turn, on one thread: each
// unit is decoded at most twice (its first piece, then the rest when another reader used
// the codec in between), and a reader's next unit replaces its last one instead of another
// reader's. Decoding by CPU with LRU entries, the four evicted each other's units.
TEST(UnitDecodeTest, SequentialReadersShareTheStreams) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "one stream: 2 entries";
  PinToOneCpu pin;
  auto st = unit_store("zstd", "32K", "4M");
  constexpr unsigned kN = 8, kReaders = 4, kUnitsEach = 8;
  const auto data = blocks_of(kReaders * kUnitsEach * kN, 2, 3);
  ASSERT_TRUE(st->write_blocks(0, kReaders * kUnitsEach * kN, data.data()));
  std::vector<unsigned char> b(kBlockSize);
  for (unsigned i = 0; i < kUnitsEach * kN; i++) {
    for (unsigned r = 0; r < kReaders; r++) {
      const std::uint64_t block = std::uint64_t{r} * kUnitsEach * kN + i;
      ASSERT_TRUE(st->read(block, b.data()));
      ASSERT_EQ(0, std::memcmp(b.data(), data.data() + block * kBlockSize, kBlockSize));
    }
  }
  const UnitStat s = st->unit_stat();
  EXPECT_EQ(s.partial_reads, kReaders * kUnitsEach * kN);
  EXPECT_GE(s.cache_hits, s.partial_reads - 2 * kReaders * kUnitsEach);
}

}  // namespace
}  // namespace uzram::testing

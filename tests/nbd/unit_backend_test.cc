// tests/nbd/unit_backend_test.cc - StoreBackend over stores with compression units
// (unit_size 16K/32K/64K, and 4K for comparison): byte-granular reads, writes, trims and
// write-zeroes against a reference model, the preferred block size, and the unit stripe
// that keeps a partial write from straddling a whole-unit write of the same unit.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "nbd/store_backend.h"
#include "testing/seed.h"
#include "uzram/store.h"

namespace uzram::nbd {
namespace {

constexpr std::size_t kBlock = 4096;

std::unique_ptr<Store> make_store(std::uint64_t bytes, const char* unit, const char* algo = "lz4") {
  auto s = Store::create("nbd-unit-test");
  EXPECT_TRUE(s.has_value());
  auto st = std::move(s).value();
  EXPECT_TRUE(st->write_attr("comp_algorithm", algo).has_value());
  EXPECT_TRUE(st->write_attr("unit_size", unit).has_value());
  EXPECT_TRUE(st->write_attr("disksize", std::to_string(bytes)).has_value());
  return st;
}

// Compressible but not same-filled data: runs of a byte with a counter mixed in.
void fill(std::mt19937_64& rng, unsigned char* p, std::size_t n) {
  const auto base = static_cast<unsigned char>(rng());
  for (std::size_t i = 0; i < n; i++) {
    p[i] = static_cast<unsigned char>(base + (i / 64) % 7 + (i % 512 == 0 ? rng() : 0));
  }
}

TEST(UnitBackendTest, PreferredBlockSizeIsTheUnit) {
  for (const auto& [name, bytes] :
       {std::pair{"4K", 4096u}, {"16K", 16384u}, {"32K", 32768u}, {"64K", 65536u}}) {
    auto st = make_store(1 << 20, name);
    StoreBackend be(*st);
    EXPECT_EQ(be.preferred_block_size(), bytes) << name;
  }
}

// Random byte-granular requests of every shape (inside a block, across blocks, whole
// units, across units, unaligned buffers) against a byte-array model, on every unit size.
// The disk is not a multiple of the unit: its tail is blocks outside any unit.
TEST(UnitBackendTest, RandomRequestsMatchTheModel) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  for (const char* unit : {"4K", "16K", "32K", "64K"}) {
    SCOPED_TRACE(unit);
    constexpr std::uint64_t kBytes = (64 * 16 + 3) * kBlock;  // 64 units of 64 K + 3 blocks
    auto st = make_store(kBytes, unit);
    StoreBackend be(*st);
    const std::uint64_t u = st->unit_size();
    std::vector<unsigned char> model(kBytes, 0), buf(4 * 65536 + 16), out(4 * 65536 + 16);
    std::mt19937_64 rng(seed);
    for (int op = 0; op < 1500; op++) {
      std::uint64_t off, len;
      switch (rng() % 4) {
        case 0:  // unit-aligned, whole units
          off = rng() % (kBytes / u) * u;
          len = std::min<std::uint64_t>((1 + rng() % 4) * u, kBytes - off);
          break;
        case 1:  // block-aligned
          off = rng() % (kBytes / kBlock) * kBlock;
          len = std::min<std::uint64_t>((1 + rng() % 24) * kBlock, kBytes - off);
          break;
        default:  // any bytes
          off = rng() % kBytes;
          len = 1 + rng() % std::min<std::uint64_t>(3 * 65536, kBytes - off);
      }
      const std::size_t shift = rng() % 3 == 0 ? rng() % 8 : 0;  // unaligned buffers too
      unsigned char* p = buf.data() + shift;
      const auto n = static_cast<std::uint32_t>(len);
      switch (rng() % 6) {
        case 0:
        case 1:
        case 2:
          fill(rng, p, n);
          ASSERT_EQ(be.write(off, n, p), 0u) << op;
          std::memcpy(model.data() + off, p, n);
          break;
        case 3: {  // trim: whole blocks only become zeros
          ASSERT_EQ(be.trim(off, n), 0u) << op;
          const std::uint64_t first = (off + kBlock - 1) / kBlock * kBlock;
          const std::uint64_t end = (off + len) / kBlock * kBlock;
          if (first < end) std::fill(model.begin() + first, model.begin() + end, 0);
          break;
        }
        default:
          ASSERT_EQ(be.zero(off, n, rng() % 2 == 0), 0u) << op;
          std::fill(model.begin() + off, model.begin() + off + len, 0);
      }
      // Read back a random range and, now and then, the whole disk.
      const std::uint64_t roff = rng() % kBytes;
      const auto rlen = static_cast<std::uint32_t>(
          1 + rng() % std::min<std::uint64_t>(out.size() - 8, kBytes - roff));
      unsigned char* q = out.data() + (rng() % 2 ? 0 : 3);
      ASSERT_EQ(be.read(roff, rlen, q), 0u) << op;
      ASSERT_EQ(std::memcmp(q, model.data() + roff, rlen), 0) << "op " << op << " at " << roff;
    }
    std::vector<unsigned char> all(kBytes);
    ASSERT_EQ(be.read(0, static_cast<std::uint32_t>(kBytes), all.data()), 0u);
    ASSERT_EQ(all, model);
    st->check_invariants();
  }
}

// One thread writes whole units (every byte W) while others patch a few bytes of the
// same units (P) at random places: afterwards every byte is W or P, never the old O,
// which a partial read-modify-write straddling the whole-unit write would bring back.
// The same with NO_HOLE write-zeroes of whole units in place of the writes.
TEST(UnitBackendTest, PartialWriteNeverStraddlesAWholeUnitWrite) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  for (const bool zeros : {false, true}) {
    constexpr std::uint64_t kUnits = 16;
    constexpr std::uint64_t kUnit = 32768;
    auto st = make_store(kUnits * kUnit, "32K");
    StoreBackend be(*st);
    const unsigned char kOld = 0x11, kWhole = zeros ? 0 : 0x22, kPatch = 0x33;
    for (int round = 0; round < 10; round++) {
      std::vector<unsigned char> old(kUnits * kUnit, kOld);
      ASSERT_EQ(be.write(0, static_cast<std::uint32_t>(old.size()), old.data()), 0u);
      std::atomic<bool> go{false};
      std::vector<std::thread> patchers;
      for (int t = 0; t < 2; t++) {
        patchers.emplace_back([&, t] {
          std::mt19937_64 rng(seed + static_cast<std::uint64_t>(round * 2 + t));
          std::vector<unsigned char> p(64, kPatch);
          while (!go.load()) std::this_thread::yield();
          for (int i = 0; i < 300; i++) {
            const std::uint64_t off = rng() % (kUnits * kUnit - 64);
            ASSERT_EQ(be.write(off, static_cast<std::uint32_t>(1 + rng() % 64), p.data()), 0u);
          }
        });
      }
      std::vector<unsigned char> whole(kUnit, kWhole);
      go = true;
      for (std::uint64_t k = 0; k < kUnits; k++) {
        const std::uint32_t e =
            zeros ? be.zero(k * kUnit, kUnit, true) : be.write(k * kUnit, kUnit, whole.data());
        ASSERT_EQ(e, 0u);
      }
      for (std::thread& t : patchers) t.join();
      std::vector<unsigned char> all(kUnits * kUnit);
      ASSERT_EQ(be.read(0, static_cast<std::uint32_t>(all.size()), all.data()), 0u);
      for (std::size_t i = 0; i < all.size(); i++) {
        ASSERT_TRUE(all[i] == kWhole || all[i] == kPatch)
            << "round " << round << " byte " << i << " is " << int(all[i]);
      }
      st->check_invariants();
    }
  }
}

}  // namespace
}  // namespace uzram::nbd

// Every built-in algorithm at every unit size (16K, 32K, 64K): whole units of compressible,
// incompressible (stored raw) and mixed data, read whole and block by block, then partial
// writes (rmw and split) and reads again. Checks the codecs' bounds at unit sizes (lzo
// compresses in 48 KiB chunks; zstd and deflate need their worst-case output room).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "store/codec.h"
#include "store/unit_test_util.h"

namespace uzram::testing {
namespace {

class UnitCodecTest : public ::testing::TestWithParam<std::tuple<std::string, unsigned>> {};

TEST_P(UnitCodecTest, RoundTrips) {
  const auto& [algo, unit_kib] = GetParam();
  const unsigned n = unit_kib / 4;
  const std::string unit = std::to_string(unit_kib) + "K";
  auto st = unit_store(algo.c_str(), unit.c_str(), "2M");
  // Units of: text (compresses), random (raw), half random (mixed), then a mix per block.
  std::vector<unsigned char> data;
  for (int kind : {2, 0, 3}) {
    auto u = blocks_of(n, kind, 1000u * static_cast<unsigned>(kind) + unit_kib);
    data.insert(data.end(), u.begin(), u.end());
  }
  for (unsigned k = 0; k < n; k++) {
    auto b = blocks_of(1, static_cast<int>(k % 4), 77 + k);
    data.insert(data.end(), b.begin(), b.end());
  }
  const unsigned units = 4, blocks = units * n;
  ASSERT_TRUE(st->write_blocks(0, blocks, data.data()));
  EXPECT_EQ(st->unit_stat().units, units);
  EXPECT_EQ(st->mm_stat().huge_pages, n);  // the random unit only
  std::vector<unsigned char> out(data.size());
  ASSERT_TRUE(st->read_blocks(0, blocks, out.data()));
  EXPECT_EQ(out, data);
  for (unsigned i = 0; i < blocks; i++) {
    ASSERT_TRUE(st->read(i, out.data() + std::size_t{i} * kBlockSize));
  }
  EXPECT_EQ(out, data);
  // Partial writes: a block into each unit by rmw, then by split.
  for (const char* policy : {"rmw", "split"}) {
    set_attr(*st, "unit_policy", policy);
    for (unsigned u = 0; u < units; u++) {
      auto b = blocks_of(1, 2, 5000u + u);
      const std::uint64_t i = std::uint64_t{u} * n + (u + 1) % n;
      ASSERT_TRUE(st->write(i, b.data()));
      std::memcpy(data.data() + i * kBlockSize, b.data(), kBlockSize);
    }
    ASSERT_TRUE(st->read_blocks(0, blocks, out.data()));
    EXPECT_EQ(out, data) << policy;
    st->check_invariants();
  }
  EXPECT_EQ(st->unit_stat().units, 0u);
  EXPECT_EQ(st->unit_stat().splits, units);
  EXPECT_EQ(st->io_stat().failed_writes + st->io_stat().failed_reads, 0u);
}

std::vector<std::tuple<std::string, unsigned>> params() {
  std::vector<std::tuple<std::string, unsigned>> v;
  for (const std::string& a : codec_names()) {
    for (unsigned kib : {16u, 32u, 64u}) v.emplace_back(a, kib);
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(All, UnitCodecTest, ::testing::ValuesIn(params()), [](const auto& p) {
  std::string name = std::get<0>(p.param);
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  return name + "_" + std::to_string(std::get<1>(p.param)) + "K";
});

}  // namespace
}  // namespace uzram::testing

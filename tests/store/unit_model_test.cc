// Randomized test of unit stores (unit_size 16K/32K/64K, and 4K as the control) against a
// reference model (unit_model.h, unit_run.h): whole-unit, multi-unit, unaligned and
// single-block writes and reads, discards of whole and partial units and of byte ranges,
// free notifications, same-filled and incompressible units, compaction, idle marking,
// writeback (plain and compressed) and writeback_compact, recompression, mem_limit hits
// (old contents stay) and reset. Every read is compared with the model; check_invariants
// runs after every step; mm_stat and unit_stat are checked against the model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "store/pp_test_helpers.h"
#include "store/unit_run.h"
#include "testing/seed.h"

namespace uzram::testing {
namespace {

class UnitModelTest : public ::testing::TestWithParam<UnitConfig> {};

TEST_P(UnitModelTest, MatchesReferenceModel) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE(seed_trace(seed));
  TempFile backing;
  ASSERT_EQ(truncate(backing.path().c_str(), 320 * kBlockSize), 0);  // fills up now and then
  UnitRun run(GetParam(), seed, backing.path());
  ASSERT_NO_FATAL_FAILURE(run.setup());
  ASSERT_NO_FATAL_FAILURE(run.probe());
  for (int i = 0; i < (kUnitTestSanitized ? 500 : 1500); i++) {
    ASSERT_NO_FATAL_FAILURE(run.step(i));
  }
  EXPECT_GT(run.limit_hits(), 0u) << "no write ever met mem_limit";
  EXPECT_GT(run.wb_writes(), 0u) << "nothing was ever written back";
  if (run.units_built()) {
    EXPECT_GT(run.units_seen(), 0u) << "no unit was ever stored";
  }
}

std::string config_name(const ::testing::TestParamInfo<UnitConfig>& info) {
  std::string s = std::string(info.param.unit) + "_" + info.param.algo +
                  (info.param.compressed_wb ? "_cwb" : "");
  for (char& ch : s) {
    if (ch == '-') ch = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    Units, UnitModelTest,
    ::testing::Values(UnitConfig{"4K", "lz4", false}, UnitConfig{"4K", "zstd", true},
                      UnitConfig{"16K", "zstd", true}, UnitConfig{"16K", "lzo-rle", false},
                      UnitConfig{"32K", "lz4", true}, UnitConfig{"32K", "zstd", false},
                      UnitConfig{"32K", "deflate", true}, UnitConfig{"64K", "zstd", false},
                      UnitConfig{"64K", "lz4", true}),
    config_name);

}  // namespace
}  // namespace uzram::testing

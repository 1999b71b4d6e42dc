// store/unit_run_pp.cc - a randomized unit-store run's post-processing, mem_limit
// episodes, resets and statistics checks (unit_run.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "store/pp_test_helpers.h"
#include "store/unit_run.h"

namespace uzram::testing {

// Post-processing never changes what reads return. Writeback splits the units it selects
// (docs/units.md#post-processing); nothing else splits or re-encodes one in part.
void UnitRun::post_process() {
  const std::uint64_t b = rng_.uniform(kBlocks);
  const std::uint64_t hi = std::min(kBlocks - 1, b + rng_.uniform(3 * n_));
  const std::string range = std::to_string(b) + "-" + std::to_string(hi);
  const std::string ops[][2] = {{"compact", "1"},
                                {"idle", "all"},
                                {"idle", "all"},
                                {"idle", "3600"},
                                {"writeback", "type=idle"},
                                {"writeback", "type=huge"},
                                {"writeback", "type=huge_idle"},
                                {"writeback", "type=incompressible"},
                                {"writeback", "page_index=" + std::to_string(b)},
                                {"writeback", "page_indexes=" + range},
                                {"writeback", "type=idle page_indexes=" + range},
                                {"writeback_compact", "1"},
                                {"writeback_compact", "threshold=90"},
                                {"recompress", "type=huge"},
                                {"recompress", "type=idle"},
                                {"recompress", "type=huge_idle max_pages=" + std::to_string(n_)},
                                {"recompress", "threshold=1500"},
                                {"recompress", "max_pages=1000"}};
  const auto& op = ops[rng_.uniform(std::size(ops))];
  const UnitStat before = st_->unit_stat();
  const std::uint64_t bd_before = st_->bd_stat().bd_count;
  std::string msg;
  auto r = st_->write_attr(op[0], op[1], &msg);
  const bool wb = op[0] == "writeback";
  // The backing file holds fewer blocks than the disk: writeback may find it full.
  ASSERT_TRUE(r || (wb && r.error() == Errc::no_memory))
      << where() << ": " << op[0] << " " << op[1] << ": " << msg;
  const UnitDelta d = unit_delta(before, st_->unit_stat());
  EXPECT_EQ(d.rmw + d.split_writes + d.whole + d.partial, 0) << where() << ": " << op[0];
  splits_seen_ += static_cast<std::uint64_t>(std::max<std::int64_t>(d.splits, 0));
  if (!wb) {
    EXPECT_EQ(d.splits, 0) << where() << ": " << op[0] << " " << op[1] << " split a unit";
    return;
  }
  const std::uint64_t units = m_.count(UnitState::unit), unknown = m_.count(UnitState::unknown);
  EXPECT_LE(static_cast<std::uint64_t>(d.splits), units + unknown) << where();
  if (d.splits > 0 && st_->bd_stat().bd_count == bd_before) {
    ADD_FAILURE() << where() << ": writeback split units but wrote nothing back";
  }
  if (d.splits == 0) return;
  const bool all = unknown == 0 && static_cast<std::uint64_t>(d.splits) == units;
  for (std::uint64_t u = 0; u < m_.units(); u++) {
    if (m_.state(u) == UnitState::unit) m_.set_state(u, all ? UnitState::none : UnitState::unknown);
  }
}

// mem_limit at the pool's size now: writes that need a new zspage fail, and the blocks
// they were to replace keep their old contents.
void UnitRun::mem_limit_episode() {
  const std::uint64_t used = st_->mm_stat().mem_used_total;
  write_attr_ok(*st_, "mem_limit", std::to_string(std::max<std::uint64_t>(used, kBlockSize)));
  for (std::uint64_t k = rng_.range(1, 4); k > 0; k--) {
    switch (rng_.uniform(3)) {
      case 0: ASSERT_NO_FATAL_FAILURE(write_units(true, true)); break;
      case 1: ASSERT_NO_FATAL_FAILURE(write_range(true, true)); break;
      default: ASSERT_NO_FATAL_FAILURE(write_one(true, true)); break;
    }
    st_->check_invariants();
  }
  write_attr_ok(*st_, "mem_limit", "0");
}

void UnitRun::reset() {
  wb_writes_ += st_->bd_stat().bd_writes;
  write_attr_ok(*st_, "reset", "1");
  EXPECT_EQ(st_->unit_size(), kBlockSize) << "reset restores unit_size 4K";
  const UnitStat us = st_->unit_stat();
  EXPECT_EQ(us.units + us.whole_reads + us.partial_reads + us.cache_hits + us.rmw_writes +
                us.split_writes + us.splits,
            0u)
      << where() << ": unit_stat after reset";
  ASSERT_NO_FATAL_FAILURE(setup());
}

void UnitRun::check_stats() {
  const MmStat mm = st_->mm_stat();
  const UnitStat us = st_->unit_stat();
  const std::uint64_t stored = m_.stored_blocks();
  EXPECT_EQ(mm.orig_data_size, stored * kBlockSize) << where();
  if (n_ == 1) {
    EXPECT_EQ(mm.same_pages, m_.stored_same()) << where();
  } else {
    EXPECT_LE(mm.same_pages, m_.stored_same()) << where();
  }
  // A raw unit counts its blocks in huge_pages: at most every block of a unit range that
  // still holds something, and the stored blocks outside units.
  std::uint64_t footprint = 0;
  for (std::uint64_t b = 0; b < kBlocks; b++) {
    const std::uint64_t u = m_.unit_of(b);
    footprint += u < m_.units() ? m_.unit_stored(u) > 0 : m_.stored(b);
  }
  EXPECT_LE(mm.huge_pages, footprint) << where();
  EXPECT_LE(mm.compr_data_size, mm.mem_used_total) << where();
  EXPECT_LE(st_->bd_stat().bd_count, stored) << where();
  EXPECT_LE(us.cache_hits, us.partial_reads) << where();
  EXPECT_LE(us.split_writes, us.splits) << where();
  if (n_ == 1) {
    EXPECT_EQ(us.units + us.whole_reads + us.partial_reads + us.cache_hits + us.rmw_writes +
                  us.split_writes + us.splits,
              0u)
        << where() << ": unit_stat of a 4K store";
  } else if (units_built_) {
    const std::uint64_t lo = m_.count(UnitState::unit);
    const std::uint64_t hi = lo + m_.count(UnitState::unknown);
    EXPECT_GE(us.units, lo) << where() << ": unit objects missing";
    EXPECT_LE(us.units, hi) << where() << ": unit objects the model does not know";
  }
  const UnitDelta d = unit_delta(last_, us);
  EXPECT_TRUE(d.whole >= 0 && d.partial >= 0 && d.hits >= 0 && d.rmw >= 0 && d.split_writes >= 0 &&
              d.splits >= 0)
      << where() << ": a unit_stat counter went backwards";
  last_ = us;
}

}  // namespace uzram::testing

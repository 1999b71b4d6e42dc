// The slot-table summary (store/slot_summary.h): its ranges against a reference model, and
// a 1 TiB disk holding a few MiB, where reset, destruction, discard of the whole disk,
// block_state, idle and reads of never-written blocks must cost what is stored, not what is
// addressable. Measured in page faults of the calling thread (a walk of the whole 4 GiB
// slot table takes at least one per table page: 1048576), which does not depend on how busy
// the machine is, plus a generous time bound.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "store/store_impl.h"
#include "store/store_test_util.h"
#include "testing/seed.h"

namespace uzram {
namespace {

using testing::make_block;

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_minflt;
}

// The runs for_each_range must report, from the set of marked pages.
std::vector<std::pair<std::uint64_t, std::uint64_t>> expected_runs(
    const std::set<std::uint64_t>& pages, std::uint64_t lo, std::uint64_t hi) {
  constexpr std::uint64_t k = SlotSummary::kSlotsPerPage;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  for (std::uint64_t p : pages) {
    std::uint64_t a = std::max(p * k, lo), b = std::min((p + 1) * k, hi);
    if (a >= b) continue;
    if (!out.empty() && out.back().second == a) {
      out.back().second = b;
    } else {
      out.emplace_back(a, b);
    }
  }
  return out;
}

TEST(SlotSummaryTest, RangesMatchAReferenceModel) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  Random rng(seed);
  for (int round = 0; round < 50; round++) {
    const std::uint64_t nslots = 1 + rng.uniform(300000);
    SlotSummary sum;
    ASSERT_TRUE(sum.init(nslots));
    std::set<std::uint64_t> pages;
    const std::uint64_t notes = rng.uniform(200);
    for (std::uint64_t i = 0; i < notes; i++) {
      // Clustered and scattered: runs of adjacent pages, and words left empty.
      const std::uint64_t idx =
          rng.one_in(2) ? rng.uniform(nslots) : std::min(nslots - 1, rng.uniform(4096));
      sum.note(idx);
      pages.insert(idx / SlotSummary::kSlotsPerPage);
      EXPECT_TRUE(sum.may_hold(idx));
    }
    EXPECT_EQ(sum.pages_marked(), pages.size());
    for (int q = 0; q < 20; q++) {
      std::uint64_t lo = rng.uniform(nslots + 1), hi = rng.uniform(nslots + 1);
      if (lo > hi) std::swap(lo, hi);
      if (q == 0) lo = 0, hi = nslots;
      std::vector<std::pair<std::uint64_t, std::uint64_t>> got;
      sum.for_each_range(lo, hi, [&](std::uint64_t a, std::uint64_t b) {
        got.emplace_back(a, b);
        return true;
      });
      ASSERT_EQ(got, expected_runs(pages, lo, hi))
          << "nslots " << nslots << " [" << lo << ", " << hi << ")";
      // Stopping early: only the first run.
      int calls = 0;
      sum.for_each_range(lo, hi, [&](std::uint64_t, std::uint64_t) { return ++calls < 1; });
      EXPECT_EQ(calls, got.empty() ? 0 : 1);
    }
    for (std::uint64_t i = 0; i < 100; i++) {
      const std::uint64_t idx = rng.uniform(nslots);
      EXPECT_EQ(sum.may_hold(idx), pages.count(idx / SlotSummary::kSlotsPerPage) == 1) << idx;
    }
  }
}

TEST(HugeDiskTest, ResetAndWalksCostWhatIsStored) {
  constexpr std::uint64_t kBlocks = std::uint64_t{1} << 28;  // 1 TiB: a 4 GiB slot table
  constexpr std::uint64_t kStored = 1024;
  constexpr std::uint64_t kStride = kBlocks / kStored;  // every block on its own page
  constexpr long kFaultBound = 100000;                  // a whole-table walk: >= 1048576
  auto st = testing::new_store("lz4", "1T");
  StoreImpl* si = impl(st.get());
  unsigned char in[kBlockSize], out[kBlockSize];
  const auto fill = [&] {
    for (std::uint64_t i = 0; i < kStored; i++) {
      make_block(in, 2, i);
      ASSERT_TRUE(st->write(i * kStride + i % 7, in));
    }
  };
  fill();
  EXPECT_EQ(si->summary_.pages_marked(), kStored);
  EXPECT_EQ(st->mm_stat().orig_data_size, kStored * kBlockSize);

  long f0 = minor_faults();
  for (std::uint64_t i = 0; i < 20000; i++) {  // never written: zeros, table untouched
    ASSERT_TRUE(st->read(i * (kBlocks / 20000) + 3, out));
    ASSERT_EQ(out[0] | out[kBlockSize - 1], 0);
  }
  for (std::uint64_t i = 0; i < kStored; i++) {
    ASSERT_TRUE(st->read(i * kStride + i % 7, out));
    make_block(in, 2, i);
    ASSERT_EQ(std::memcmp(in, out, kBlockSize), 0) << i;
    EXPECT_FALSE(st->is_unallocated(i * kStride + i % 7));
    EXPECT_TRUE(st->is_unallocated(i * kStride + 100));
  }
  const std::string bs = st->read_attr("block_state").value();
  EXPECT_EQ(static_cast<std::uint64_t>(std::count(bs.begin(), bs.end(), '\n')), kStored);
  ASSERT_TRUE(st->write_attr("idle", "all"));
  st->slot_free_notify(kBlocks - 5);  // never written
  EXPECT_LT(minor_faults() - f0, kFaultBound) << "reads and walks touched the slot table";

  f0 = minor_faults();
  ASSERT_TRUE(st->discard(0, kBlocks * kBlockSize));  // mkfs does this
  EXPECT_LT(minor_faults() - f0, kFaultBound) << "discard walked the slot table";
  EXPECT_EQ(st->mm_stat().orig_data_size, 0u);
  EXPECT_EQ(st->io_stat().notify_free, kBlocks + 1);  // each discarded block, as the kernel
  EXPECT_EQ(st->pool()->stats().objs_used, 0u);

  fill();
  f0 = minor_faults();
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(st->write_attr("reset", "1"));
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(minor_faults() - f0, kFaultBound) << "reset walked the slot table";
  EXPECT_LT(secs, 20.0);  // release: milliseconds (docs/benchmarks.md); generous for ASan/TSan
  EXPECT_EQ(st->read_attr("initstate").value(), "0\n");

  ASSERT_TRUE(st->write_attr("comp_algorithm", "lz4"));
  ASSERT_TRUE(st->write_attr("disksize", "1T"));
  fill();
  f0 = minor_faults();
  st.reset();  // destruction resets too
  EXPECT_LT(minor_faults() - f0, kFaultBound) << "destruction walked the slot table";
}

TEST(HugeDiskTest, DisksizeBeyondWhatCanBeAddressed) {
  auto st = std::move(Store::create().value());
  std::string msg;
  EXPECT_EQ(st->write_attr("disksize", "18446744073709551615", &msg).error(),
            Errc::invalid_argument);
  EXPECT_NE(msg.find("more than uzram can address"), std::string::npos) << msg;
  EXPECT_EQ(st->write_attr("disksize", "1023P", &msg).error(), Errc::no_memory);  // 4 PiB of table
  EXPECT_NE(msg.find("cannot map the slot table"), std::string::npos) << msg;
  EXPECT_EQ(st->read_attr("initstate").value(), "0\n");
  ASSERT_TRUE(st->write_attr("disksize", "1M"));
}

}  // namespace
}  // namespace uzram

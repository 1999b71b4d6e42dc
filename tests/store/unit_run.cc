// store/unit_run.cc - the operations of a randomized unit-store run (unit_run.h) and
// their checks against the model.
#include "store/unit_run.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "store/pp_test_helpers.h"

namespace uzram::testing {

using Touched = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

UnitRun::UnitRun(const UnitConfig& c, std::uint64_t seed, std::string backing)
    : c_(c),
      backing_(std::move(backing)),
      n_(parse_size(c.unit).value() / kBlockSize),
      m_(kBlocks, n_),
      rng_(seed) {}

void UnitRun::setup() {
  if (!st_) st_ = std::move(Store::create("zram-unit").value());
  write_attr_ok(*st_, "unit_size", c_.unit);
  write_attr_ok(*st_, "comp_algorithm", c_.algo);
  const std::string recomp = std::string(c_.algo) == "zstd" ? "deflate" : "zstd";
  write_attr_ok(*st_, "recomp_algorithm", "algo=" + recomp + " priority=1");
  write_attr_ok(*st_, "backing_dev", backing_);
  if (c_.compressed_wb) write_attr_ok(*st_, "compressed_writeback", "1");
  write_attr_ok(*st_, "disksize", std::to_string(kBlocks * kBlockSize));
  ASSERT_EQ(st_->unit_size(), n_ * kBlockSize);
  m_.reset();
  last_ = st_->unit_stat();
}

void UnitRun::probe() {
  if (n_ == 1) return;
  std::vector<unsigned char> buf(n_ * kBlockSize);
  unit_data(rng_, buf.data(), n_, 2);
  units_built_ = true;  // assumed for the write's checks, then tested
  ASSERT_NO_FATAL_FAILURE(write(0, n_, buf.data(), false));
  units_built_ = st_->unit_stat().units == 1;
  ASSERT_TRUE(units_built_) << "a whole compressible unit was not stored as a unit";
}

std::uint64_t UnitRun::wb_writes() const { return wb_writes_ + st_->bd_stat().bd_writes; }

void UnitRun::step(int i) {
  step_ = i;
  const std::uint64_t op = rng_.uniform(100);
  if (op < 18) {
    write_units();
  } else if (op < 30) {
    write_range();
  } else if (op < 38) {
    write_one();
  } else if (op < 58) {
    read_random();
  } else if (op < 68) {
    discard_random();
  } else if (op < 74) {
    free_notify();
  } else if (op < 90) {
    post_process();
  } else if (op < 96) {
    mem_limit_episode();
  } else if (op < 99 || !rng_.one_in(3)) {
    read(0, kBlocks, false);  // the whole disk
  } else {
    reset();
  }
  if (::testing::Test::HasFatalFailure()) return;
  st_->check_invariants();
  check_stats();
}

void UnitRun::random_range(std::uint64_t max_count, std::uint64_t* index, std::uint64_t* count) {
  *index = rng_.uniform(kBlocks);
  *count = rng_.range(1, std::min(max_count, kBlocks - *index));
}

void UnitRun::fill(std::vector<unsigned char>& buf, std::uint64_t count, bool fresh) {
  static const unsigned kFresh[] = {0, 2, 3};
  buf.resize(count * kBlockSize);
  for (std::uint64_t b = 0; b < count;) {
    const std::uint64_t k = std::min(count - b, rng_.range(1, n_));
    unit_data(rng_, &buf[b * kBlockSize], k,
              fresh ? kFresh[rng_.uniform(3)] : static_cast<unsigned>(rng_.uniform(5)));
    b += k;
  }
}

void UnitRun::classify(std::uint64_t index, std::uint64_t count, std::vector<std::uint64_t>* whole,
                       std::vector<std::uint64_t>* part) const {
  for (std::uint64_t u = index / n_; n_ > 1 && u < m_.units() && u * n_ < index + count; u++) {
    const bool in = u * n_ >= index && (u + 1) * n_ <= index + count;
    (in ? whole : part)->push_back(u);
  }
}

UnitState UnitRun::written_state(std::uint64_t u) const {
  return m_.unit_all_same(u) ? UnitState::none : UnitState::unit;
}

void UnitRun::partial_units(const std::vector<std::uint64_t>& part, const UnitStat& before,
                            const Touched& touched) {
  const UnitDelta d = unit_delta(before, st_->unit_stat());
  std::int64_t lo = 0, hi = 0;
  for (std::uint64_t u : part) {
    // (A discard of every member left frees the unit, as free notify does: no re-encoding.)
    if (m_.state(u) == UnitState::unit && touched[u].second > 0 && m_.unit_stored(u) > 0) lo++;
    if (m_.state(u) != UnitState::none) hi += static_cast<std::int64_t>(touched[u].first);
  }
  std::string units;  // for the messages: unit(state, blocks touched, stored among them)
  for (std::uint64_t u : part) {
    units += " " + std::to_string(u) + "(" + std::to_string(static_cast<int>(m_.state(u))) + "," +
             std::to_string(touched[u].first) + "," + std::to_string(touched[u].second) + ")";
  }
  if (units_built_) {
    EXPECT_GE(d.rmw + d.split_writes, lo) << where() << ": partial writes not counted:" << units;
    EXPECT_LE(d.rmw + d.split_writes, hi) << where() << ": partial writes over-counted:" << units;
  }
  EXPECT_LE(d.split_writes, d.splits) << where();
  for (std::uint64_t u : part) {
    if (m_.state(u) != UnitState::unit) continue;
    // A discard that found only holes of a unit leaves it as it was, whatever the others of
    // the same call went through.
    if (touched[u].second == 0) continue;
    if (d.split_writes == 0) {  // every unit touched was re-encoded in place
      m_.set_state(u, m_.unit_all_same(u) ? UnitState::unknown : UnitState::unit);
    } else if (d.rmw == 0) {  // every one was split into blocks
      m_.set_state(u, UnitState::none);
    } else {
      m_.set_state(u, UnitState::unknown);
    }
  }
}

void UnitRun::write(std::uint64_t index, std::uint64_t count, const unsigned char* data,
                    bool single, bool may_fail) {
  op_ = single ? "write" : "write_blocks";
  std::vector<std::uint64_t> whole, part;
  classify(index, count, &whole, &part);
  const UnitStat before = st_->unit_stat();
  Touched touched(m_.units() + 1);
  for (std::uint64_t b = index; b < index + count; b++) {
    auto& t = touched[m_.unit_of(b)];
    t.first++;
    t.second += 1;  // a write into a hole of a unit is a partial write too
  }
  auto r = single ? st_->write(index, data) : st_->write_blocks(index, count, data);
  if (!r && may_fail && (r.error() == Errc::limit_reached || r.error() == Errc::no_memory)) {
    limit_hits_++;
    return resolve_failed(index, count, data, whole, part);
  }
  ASSERT_TRUE(r) << where() << ": write " << index << "+" << count << ": " << r.error().message();
  for (std::uint64_t b = 0; b < count; b++) m_.write(index + b, data + b * kBlockSize);
  for (std::uint64_t u : whole) m_.set_state(u, written_state(u));
  partial_units(part, before, touched);
  m_.settle();
}

// Every block of the failed write holds its old or its new contents (write_blocks is not
// atomic), and a unit written whole holds one or the other in all its blocks.
void UnitRun::resolve_failed(std::uint64_t index, std::uint64_t count, const unsigned char* data,
                             const std::vector<std::uint64_t>& whole,
                             const std::vector<std::uint64_t>& part) {
  std::vector<unsigned char> got(count * kBlockSize);
  auto r = st_->read_blocks(index, count, got.data());
  ASSERT_TRUE(r) << where() << ": read after a failed write: " << r.error().message();
  std::vector<bool> is_new(count);
  for (std::uint64_t b = 0; b < count; b++) {
    const unsigned char* g = &got[b * kBlockSize];
    is_new[b] = std::memcmp(g, data + b * kBlockSize, kBlockSize) == 0;
    ASSERT_TRUE(is_new[b] || std::memcmp(g, m_.data(index + b), kBlockSize) == 0)
        << where() << ": block " << index + b << " holds neither its old nor its new contents "
        << "after a failed write of " << index << "+" << count;
  }
  for (std::uint64_t u : whole) {
    // (Block by block, as a store without units writes, a unit may be left in part.)
    for (std::uint64_t b = u * n_; units_built_ && b < (u + 1) * n_; b++) {
      ASSERT_EQ(is_new[b - index], is_new[u * n_ - index])
          << where() << ": unit " << u << " written in part by a failed write";
    }
  }
  for (std::uint64_t b = 0; b < count; b++) {
    if (is_new[b]) m_.write(index + b, data + b * kBlockSize);
  }
  for (std::uint64_t u : whole) {
    if (is_new[u * n_ - index] && is_new[(u + 1) * n_ - 1 - index]) {
      m_.set_state(u, written_state(u));
    } else if (m_.state(u) == UnitState::unit && is_new[(u + 1) * n_ - 1 - index]) {
      m_.set_state(u, UnitState::unknown);
    }
  }
  for (std::uint64_t u : part) {
    if (m_.state(u) == UnitState::unit) m_.set_state(u, UnitState::unknown);
  }
  m_.settle();
}

void UnitRun::write_units(bool fresh, bool may_fail) {
  if (n_ == 1) return write_range(fresh, may_fail);
  const std::uint64_t u = rng_.uniform(m_.units());
  const std::uint64_t k = rng_.range(1, std::min<std::uint64_t>(3, m_.units() - u));
  std::vector<unsigned char> buf(k * n_ * kBlockSize);
  static const unsigned kFresh[] = {0, 2, 3};
  for (std::uint64_t i = 0; i < k; i++) {
    const unsigned kind = fresh ? kFresh[rng_.uniform(3)] : static_cast<unsigned>(rng_.uniform(5));
    unit_data(rng_, &buf[i * n_ * kBlockSize], n_, kind);
  }
  ASSERT_NO_FATAL_FAILURE(write(u * n_, k * n_, buf.data(), false, may_fail));
  units_seen_ = std::max(units_seen_, st_->unit_stat().units);
}

void UnitRun::write_range(bool fresh, bool may_fail) {
  std::uint64_t index, count;
  random_range(3 * n_ + 1, &index, &count);
  fill(buf_, count, fresh);
  ASSERT_NO_FATAL_FAILURE(write(index, count, buf_.data(), false, may_fail));
}

void UnitRun::write_one(bool fresh, bool may_fail) {
  fill(buf_, 1, fresh);
  ASSERT_NO_FATAL_FAILURE(write(rng_.uniform(kBlocks), 1, buf_.data(), true, may_fail));
}

void UnitRun::read(std::uint64_t index, std::uint64_t count, bool single) {
  op_ = single ? "read" : "read_blocks";
  std::vector<std::uint64_t> whole, part;
  classify(index, count, &whole, &part);
  const UnitStat before = st_->unit_stat();
  std::vector<unsigned char> got(count * kBlockSize, 0xa5);
  auto r = single ? st_->read(index, got.data()) : st_->read_blocks(index, count, got.data());
  ASSERT_TRUE(r) << where() << ": read " << index << "+" << count << ": " << r.error().message();
  const std::int64_t bad = m_.mismatch(index, count, got.data());
  ASSERT_EQ(bad, -1) << where() << ": block " << bad << " differs (read " << index << "+" << count
                     << ", units of " << n_ << " blocks)";
  const UnitDelta d = unit_delta(before, st_->unit_stat());
  std::int64_t whole_lo = 0, whole_hi = 0, part_lo = 0, part_hi = 0;
  for (std::uint64_t u : whole) {
    whole_lo += m_.state(u) == UnitState::unit;
    whole_hi += m_.state(u) != UnitState::none;
  }
  for (std::uint64_t u : part) {
    const std::uint64_t end = std::min(index + count, (u + 1) * n_);
    for (std::uint64_t b = std::max(index, u * n_); b < end; b++) {
      part_lo += m_.state(u) == UnitState::unit && m_.stored(b);
      part_hi += m_.state(u) != UnitState::none;
    }
  }
  if (units_built_ || n_ == 1) {
    EXPECT_GE(d.whole, whole_lo) << where() << ": whole-unit reads not counted";
    EXPECT_LE(d.whole, whole_hi) << where() << ": whole-unit reads over-counted";
    EXPECT_GE(d.partial, part_lo) << where() << ": partial reads not counted";
    EXPECT_LE(d.partial, part_hi) << where() << ": partial reads over-counted";
  }
  EXPECT_LE(d.hits, d.partial) << where();
  EXPECT_EQ(d.rmw + d.split_writes + d.splits, 0) << where() << ": a read changed units";
}

void UnitRun::read_random() {
  std::uint64_t index, count;
  switch (rng_.uniform(3)) {
    case 0:  // whole units
      if (n_ > 1) {
        const std::uint64_t u = rng_.uniform(m_.units());
        const std::uint64_t k = rng_.range(1, std::min<std::uint64_t>(3, m_.units() - u));
        return read(u * n_, k * n_, false);
      }
      [[fallthrough]];
    case 1: random_range(3 * n_ + 1, &index, &count); return read(index, count, false);
    default:  // single blocks, often of one unit (the decoded-unit cache)
      index = rng_.uniform(kBlocks);
      for (std::uint64_t k = rng_.range(1, 4); k > 0 && index < kBlocks; k--, index++) {
        ASSERT_NO_FATAL_FAILURE(read(index, 1, true));
      }
  }
}

// Discards [offset, offset + len) bytes: the whole blocks inside go.
void UnitRun::discard(std::uint64_t offset, std::uint64_t len) {
  op_ = "discard";
  const std::uint64_t first = (offset + kBlockSize - 1) / kBlockSize;
  const std::uint64_t end = (offset + len) / kBlockSize;
  const UnitStat before = st_->unit_stat();
  auto r = st_->discard(offset, len);
  ASSERT_TRUE(r) << where() << ": discard " << offset << "+" << len << ": " << r.error().message();
  if (first >= end) {
    EXPECT_EQ(unit_delta(before, st_->unit_stat()).splits, 0) << where();
    return;
  }
  std::vector<std::uint64_t> whole, part;
  classify(first, end - first, &whole, &part);
  Touched touched(m_.units() + 1);
  for (std::uint64_t b = first; b < end; b++) {
    auto& t = touched[m_.unit_of(b)];
    t.first++;
    t.second += m_.stored(b);
    m_.clear(b);
  }
  for (std::uint64_t u : whole) m_.set_state(u, UnitState::none);
  partial_units(part, before, touched);
  m_.settle();
}

void UnitRun::discard_random() {
  const std::uint64_t unit = n_ * kBlockSize, disk = kBlocks * kBlockSize;
  switch (rng_.uniform(3)) {
    case 0: {  // whole units (whole blocks at 4K)
      const std::uint64_t u = rng_.uniform(disk / unit);
      return discard(u * unit, rng_.range(1, std::min<std::uint64_t>(3, disk / unit - u)) * unit);
    }
    case 1: {  // whole blocks, anywhere
      std::uint64_t index, count;
      random_range(2 * n_ + 1, &index, &count);
      return discard(index * kBlockSize, count * kBlockSize);
    }
    default: {  // bytes: the partial blocks at either end stay
      const std::uint64_t offset = rng_.uniform(disk);
      return discard(offset, rng_.range(0, std::min(disk - offset, 3 * unit)));
    }
  }
}

void UnitRun::free_notify() {
  op_ = "slot_free_notify";
  std::uint64_t index = rng_.uniform(kBlocks), count = 1;
  if (n_ > 1 && rng_.one_in(3) && m_.unit_of(index) < m_.units()) {
    index = index / n_ * n_;  // every block of a unit: the last one frees the object
    count = n_;
  }
  const UnitStat before = st_->unit_stat();
  for (std::uint64_t b = index; b < index + count; b++) {
    const std::uint64_t missed = st_->miss_free();
    st_->slot_free_notify(b);
    if (st_->miss_free() == missed) m_.clear(b);  // the lock was free: the block went
  }
  m_.settle();
  const UnitDelta d = unit_delta(before, st_->unit_stat());
  EXPECT_EQ(d.rmw + d.split_writes + d.splits, 0) << where() << ": free notify re-encoded";
}

}  // namespace uzram::testing

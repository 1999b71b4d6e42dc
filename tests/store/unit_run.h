// store/unit_run.h - one randomized run of a store against the unit model (unit_model.h):
// each step is one operation (writes, reads, discards, free notifications,
// post-processing, a mem_limit episode, reset), checked against the model; the store's
// invariants and its mm_stat / unit_stat are checked after every step. unit_run.cc.
#ifndef UZRAM_TESTS_STORE_UNIT_RUN_H_
#define UZRAM_TESTS_STORE_UNIT_RUN_H_

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "store/unit_model.h"
#include "util/random.h"
#include "uzram/store.h"

namespace uzram::testing {

struct UnitConfig {
  const char* unit;    // unit_size
  const char* algo;    // comp_algorithm
  bool compressed_wb;  // compressed_writeback
};

inline std::ostream& operator<<(std::ostream& os, const UnitConfig& c) {
  return os << c.unit << "/" << c.algo << (c.compressed_wb ? "/cwb" : "");
}

// Counter deltas of unit_stat between two readings (negative if one went backwards).
struct UnitDelta {
  std::int64_t whole, partial, hits, rmw, split_writes, splits;
};
inline UnitDelta unit_delta(const UnitStat& a, const UnitStat& b) {
  auto d = [](std::uint64_t x, std::uint64_t y) { return static_cast<std::int64_t>(y - x); };
  return {d(a.whole_reads, b.whole_reads),   d(a.partial_reads, b.partial_reads),
          d(a.cache_hits, b.cache_hits),     d(a.rmw_writes, b.rmw_writes),
          d(a.split_writes, b.split_writes), d(a.splits, b.splits)};
}

class UnitRun {
 public:
  static constexpr std::uint64_t kBlocks = 515;  // 2 MiB and a tail of 3 blocks

  UnitRun(const UnitConfig& c, std::uint64_t seed, std::string backing);
  // Configures the store (unit_size first) and initialises it; the model starts empty.
  void setup();
  // Checks that a whole compressible unit is stored as one object (a unit store).
  void probe();
  // One random operation, checked. Fatal failures end the step (HasFatalFailure).
  void step(int i);

  std::uint64_t limit_hits() const { return limit_hits_; }
  std::uint64_t wb_writes() const;
  std::uint64_t units_seen() const { return units_seen_; }
  std::uint64_t splits_seen() const { return splits_seen_; }
  bool units_built() const { return units_built_; }

 private:
  std::string where() const { return "step " + std::to_string(step_) + " (" + op_ + ")"; }
  void random_range(std::uint64_t max_count, std::uint64_t* index, std::uint64_t* count);
  // count blocks of data; `fresh`: no kind whose bytes could equal a block's old ones.
  void fill(std::vector<unsigned char>& buf, std::uint64_t count, bool fresh);
  // The units that [index, index + count) covers whole, and those it touches in part.
  void classify(std::uint64_t index, std::uint64_t count, std::vector<std::uint64_t>* whole,
                std::vector<std::uint64_t>* part) const;
  // A whole unit's state after it was written: an object unless every block is same-filled.
  UnitState written_state(std::uint64_t u) const;
  // The partial-write counters' bounds for the units of `part` (touched[u]: blocks
  // touched, and how many of them were stored), and the units' states after the
  // operation, from the counters' deltas.
  void partial_units(const std::vector<std::uint64_t>& part, const UnitStat& before,
                     const std::vector<std::pair<std::uint64_t, std::uint64_t>>& touched);
  // write_blocks (or write, `single`); with `may_fail`, a mem_limit refusal is resolved
  // block by block from what reads back (old or new contents, whole units all one way).
  void write(std::uint64_t index, std::uint64_t count, const unsigned char* data, bool single,
             bool may_fail = false);
  void resolve_failed(std::uint64_t index, std::uint64_t count, const unsigned char* data,
                      const std::vector<std::uint64_t>& whole,
                      const std::vector<std::uint64_t>& part);
  void write_units(bool fresh = false, bool may_fail = false);
  void write_range(bool fresh = false, bool may_fail = false);
  void write_one(bool fresh = false, bool may_fail = false);
  void read(std::uint64_t index, std::uint64_t count, bool single);
  void read_random();
  void discard(std::uint64_t offset, std::uint64_t len);
  void discard_random();
  void free_notify();
  void post_process();
  void mem_limit_episode();
  void reset();
  void check_stats();

  const UnitConfig c_;
  const std::string backing_;
  const std::uint64_t n_;  // blocks per unit
  UnitModel m_;
  Random rng_;
  std::unique_ptr<Store> st_;
  std::vector<unsigned char> buf_;
  UnitStat last_{};
  bool units_built_ = false;
  int step_ = 0;
  const char* op_ = "";  // the step's operation, for messages
  std::uint64_t limit_hits_ = 0, wb_writes_ = 0, units_seen_ = 0, splits_seen_ = 0;
};

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_STORE_UNIT_RUN_H_

// bench/micro/read_scaling.h - types shared by the uzram-read-scaling driver
// (read_scaling.cc: the workload) and its report (read_scaling_report.cc: percentiles,
// table, JSON, target checks).
#ifndef UZRAM_BENCH_MICRO_READ_SCALING_H_
#define UZRAM_BENCH_MICRO_READ_SCALING_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace uzram::bench {

struct Options {
  std::vector<unsigned> threads;  // reader thread counts, in run order
  double seconds = 2.0;           // measured time per (mode, threads) run
  std::size_t objects = 65536;    // objects the readers read (the pool holds twice as many)
  std::size_t size = 1536;        // object size in bytes
  unsigned sample_every = 16;     // time every Nth read (power of two)
  std::uint64_t seed = 42;
  double churn_fraction = 0.25;  // of the inactive half, freed + reallocated per cycle
  bool bg_compact = true;        // "+bg" modes run the compactor thread (--bg compact,migrate)
  bool bg_migrate = true;        // ... and the migrator thread
  std::size_t frame_cache = 64;  // PoolOptions::frame_cache (freed frames kept resident)
  std::vector<std::string> modes;
  bool json = false;
  std::string json_path;  // empty: JSON to stdout
};

// One mode: where the readers read from and what runs beside them.
struct ModeSpec {
  std::string name;
  bool pool = false;        // false: bare memcpy from a plain buffer (the ceiling)
  bool kernel = false;      // TranslationMode::kernel_rwlock instead of ::validated
  bool background = false;  // compactor (churn + compact()) and migrator threads
};

struct RunResult {
  std::string mode;
  unsigned threads = 0;
  double seconds = 0;
  std::uint64_t ops = 0;
  double mops = 0;
  double speedup = 0;  // vs this mode's 1-thread run (0 if none)
  std::uint64_t samples = 0, p50 = 0, p99 = 0, p999 = 0, max_ns = 0;  // read latency, ns
  std::uint64_t errors = 0;  // reads whose first 8 bytes did not match the object's tag
  // Background activity during the run (deltas of PoolStats, plus driver counters).
  std::uint64_t hold[32] = {};  // compaction step exclusive-lock hold time, log2 ns buckets
  std::uint64_t compactions = 0, pages_compacted = 0, compact_busy = 0;
  std::uint64_t migrations = 0, migrate_busy = 0, churn_cycles = 0;
};

Options parse_options(int argc, char** argv);
[[noreturn]] void usage(const char* why);
std::vector<ModeSpec> mode_specs(const Options& o);

// Percentile of a log2 histogram: the bucket index b holding the q-quantile (its range is
// [2^b, 2^(b+1)) ns), or -1 when empty. q = 1.0 gives the highest non-empty bucket.
int hist_quantile_bucket(const std::uint64_t (&h)[32], double q);
// Sorts `v` and fills r.p50/p99/p999/max_ns/samples.
void latency_percentiles(std::vector<std::uint32_t>& v, RunResult& r);
void print_table(std::FILE* out, const std::vector<ModeSpec>& modes,
                 const std::vector<RunResult>& runs);
void print_targets(std::FILE* out, const std::vector<RunResult>& runs);
void write_json(std::FILE* out, const Options& o, const std::vector<RunResult>& runs);

}  // namespace uzram::bench

#endif  // UZRAM_BENCH_MICRO_READ_SCALING_H_

// bench/macro/report.h - turns the children's results into uzram-bench's outputs: the
// readable tables, the --json object, the timeline data file, and the target verdicts.
#ifndef UZRAM_BENCH_MACRO_REPORT_H_
#define UZRAM_BENCH_MACRO_REPORT_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "json.h"
#include "kernel_layout.h"

namespace uzram::bench {

struct RunInfo {
  std::string model;  // ObjectSource::description()
  bool corpus = false;
  std::uint64_t objects = 0, churn = 0, seed = 0, repeat = 1;
  std::string cpu;
  unsigned cpus = 0;
  LayoutTotals kernel;       // kernel layout of the fill sizes
  std::string layout_check;  // empty, or why class_table(8) differs from the kernel facts
};

// One backend's runs (--repeat: one child per repetition, backends interleaved).
struct BackendRun {
  std::string name;  // "uzram", "uzram-rwlock", "glibc", "jemalloc", "mimalloc"
  bool ok = false;
  std::string error;  // when !ok
  // The first repetition's JSON (backends.cc), with every phase's "ns" replaced by the
  // median over the repetitions; memory figures are the first repetition's. Read it
  // through JsonView: a child's output may lack any key.
  Json result;
  std::vector<Json> reps;  // every repetition's JSON, as the child printed it
};

// Folds `rep` (a later repetition) into `into`; call finish_repeats once all are in.
void add_repeat(BackendRun& into, const Json& rep);
void finish_repeats(BackendRun& run);

struct Target {
  std::string what;
  int met;  // 1 met, 0 missed, -1 not measured (a backend failed)
  std::string detail;
};

std::vector<Target> evaluate_targets(const RunInfo& info, const std::vector<BackendRun>& runs);
void print_report(std::FILE* out, const RunInfo& info, const std::vector<BackendRun>& runs);
std::string json_report(const RunInfo& info, const std::vector<BackendRun>& runs);
// A header row "op phase payload <backend>...", then one row per sample: op, phase, live
// payload MiB and used MiB per backend ('?' where missing; uzram-rwlock left out). A second
// data block (gnuplot index 1) has one row per phase: start_op end_op name (compactions have
// start == end). False on an I/O error.
bool write_timeline(const std::string& path, const RunInfo& info,
                    const std::vector<BackendRun>& runs);

}  // namespace uzram::bench

#endif  // UZRAM_BENCH_MACRO_REPORT_H_

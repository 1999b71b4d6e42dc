// bench/micro/read_scaling_report.cc - uzram-read-scaling's output: latency percentiles,
// the results table, the compaction hold-time summary, the target checks and JSON.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include <sys/sysinfo.h>

#include "read_scaling.h"

namespace uzram::bench {
namespace {

using ull = unsigned long long;

const RunResult* find(const std::vector<RunResult>& runs, const std::string& mode, unsigned t) {
  for (const auto& r : runs) {
    if (r.mode == mode && r.threads == t) return &r;
  }
  return nullptr;
}

// Per mode: the hold histogram summed over all of the mode's runs.
std::map<std::string, std::vector<std::uint64_t>> hold_by_mode(const std::vector<RunResult>& runs) {
  std::map<std::string, std::vector<std::uint64_t>> m;
  for (const auto& r : runs) {
    auto& h = m[r.mode];
    h.resize(32);
    for (int b = 0; b < 32; b++) h[b] += r.hold[b];
  }
  return m;
}

int quantile_of(const std::vector<std::uint64_t>& v, double q) {
  std::uint64_t h[32];
  std::copy(v.begin(), v.end(), h);
  return hist_quantile_bucket(h, q);
}

// "[lo, hi) us" for bucket b.
std::string bucket_range(int b) {
  if (b < 0) return "-";
  char s[64];
  std::snprintf(s, sizeof s, "[%.1f, %.1f) us", std::ldexp(1.0, b) / 1e3,
                std::ldexp(1.0, b + 1) / 1e3);
  return s;
}

std::string cpu_model() {
  std::FILE* f = std::fopen("/proc/cpuinfo", "r");
  std::string model = "unknown";
  if (!f) return model;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "model name", 10) != 0) continue;
    const char* colon = std::strchr(line, ':');
    if (colon) model = colon + 2;
    while (!model.empty() && (model.back() == '\n' || model.back() == '"' || model.back() == '\\'))
      model.pop_back();
    break;
  }
  std::fclose(f);
  return model;
}

unsigned max_threads(const std::vector<RunResult>& runs) {
  unsigned t = 0;
  for (const auto& r : runs) t = std::max(t, r.threads);
  return t;
}

}  // namespace

int hist_quantile_bucket(const std::uint64_t (&h)[32], double q) {
  std::uint64_t total = 0;
  for (auto c : h) total += c;
  if (total == 0) return -1;
  const auto want = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
  std::uint64_t cum = 0;
  for (int b = 0; b < 32; b++) {
    cum += h[b];
    if (cum >= std::max<std::uint64_t>(want, 1)) return b;
  }
  return 31;
}

void latency_percentiles(std::vector<std::uint32_t>& v, RunResult& r) {
  r.samples = v.size();
  if (v.empty()) return;
  auto at = [&](double q) -> std::uint64_t {
    const auto k =
        std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
  };
  r.p50 = at(0.50);
  r.p99 = at(0.99);
  r.p999 = at(0.999);
  r.max_ns = *std::max_element(v.begin(), v.end());
}

void print_table(std::FILE* out, const std::vector<ModeSpec>& modes,
                 const std::vector<RunResult>& runs) {
  std::fprintf(out, "\n%-18s %4s %9s %8s %8s %8s %9s %10s %9s %8s %8s %6s\n", "mode", "thr",
               "Mops/s", "speedup", "p50 ns", "p99 ns", "p99.9 ns", "max ns", "compact", "pages",
               "migr", "errors");
  for (const auto& r : runs) {
    std::fprintf(out, "%-18s %4u %9.2f %7.2fx %8llu %8llu %9llu %10llu %9llu %8llu %8llu %6llu\n",
                 r.mode.c_str(), r.threads, r.mops, r.speedup, ull(r.p50), ull(r.p99), ull(r.p999),
                 ull(r.max_ns), ull(r.compactions), ull(r.pages_compacted), ull(r.migrations),
                 ull(r.errors));
  }
  std::fprintf(
      out,
      "\ncompaction step hold time (exclusive lock: pool lock in kernel_rwlock mode, class lock "
      "in validated mode), all runs of a mode; log2 buckets [2^i, 2^(i+1)) ns\n");
  std::fprintf(out, "%-18s %10s %22s %22s %22s\n", "mode", "steps", "p50", "p99", "max");
  const auto hold = hold_by_mode(runs);
  for (const auto& m : modes) {
    if (!m.background) continue;
    const auto& h = hold.at(m.name);
    std::uint64_t steps = 0;
    for (auto c : h) steps += c;
    std::fprintf(out, "%-18s %10llu %22s %22s %22s\n", m.name.c_str(), ull(steps),
                 bucket_range(quantile_of(h, 0.50)).c_str(),
                 bucket_range(quantile_of(h, 0.99)).c_str(),
                 bucket_range(quantile_of(h, 1.0)).c_str());
  }
}

// The project's targets (docs/benchmarks.md), evaluated on what this run measured. Scaling
// verdicts need 16 reader threads on at least 16 CPUs; "+bg" runs add two threads.
void print_targets(std::FILE* out, const std::vector<RunResult>& runs) {
  const unsigned tmax = max_threads(runs);
  const auto ncpu = static_cast<unsigned>(get_nprocs());
  std::fprintf(out,
               "\ntargets (%u CPUs online; largest reader thread count: %u; the scaling targets "
               "are for 16):\n",
               ncpu, tmax);
  auto scaling = [&](bool ok) {
    return tmax < 16     ? "(fewer than 16 threads: not comparable)"
           : tmax > ncpu ? "(more threads than CPUs: not comparable)"
           : ok          ? "MET"
                         : "MISSED";
  };
  for (const char* base : {"validated", "kernel_rwlock"}) {
    for (const auto& r : runs) {
      if (r.mode != base) continue;
      const RunResult* bg = find(runs, std::string(base) + "+bg", r.threads);
      if (!bg || r.p99 == 0) continue;
      const double ratio = static_cast<double>(bg->p99) / static_cast<double>(r.p99);
      std::fprintf(out, "  read p99 with compaction <= 2x without  %-14s T=%-3u %6.2fx  %s%s\n",
                   base, r.threads, ratio, ratio <= 2.0 ? "MET" : "MISSED",
                   r.threads + 2 > ncpu ? " (readers + 2 bg threads > CPUs)" : "");
    }
  }
  for (const char* m : {"validated", "validated+bg"}) {
    const RunResult* r = find(runs, m, tmax);
    if (r && r->speedup > 0) {
      std::fprintf(out, "  speedup T=%u vs T=1 >= 10x             %-14s %6.2fx  %s\n", tmax, m,
                   r->speedup, scaling(r->speedup >= 10));
    }
    const std::string k = std::string(m) == "validated" ? "kernel_rwlock" : "kernel_rwlock+bg";
    const RunResult* kr = find(runs, k, tmax);
    if (r && kr && kr->mops > 0) {
      const double x = r->mops / kr->mops;
      std::fprintf(out, "  %-14s / %-16s T=%-3u >= 5x    %6.2fx  %s\n", m, k.c_str(), tmax, x,
                   scaling(x >= 5));
    }
  }
  for (const auto& entry : hold_by_mode(runs)) {
    const int b = quantile_of(entry.second, 0.99);
    if (b < 0) continue;
    const double lo = std::ldexp(1.0, b), hi = std::ldexp(1.0, b + 1);
    std::fprintf(out, "  compaction hold p99 <= 100 us            %-16s %s  %s\n",
                 entry.first.c_str(), bucket_range(b).c_str(),
                 hi <= 1e5  ? "MET"
                 : lo > 1e5 ? "MISSED"
                            : "UNDECIDED (bucket spans 100 us)");
  }
}

void write_json(std::FILE* f, const Options& o, const std::vector<RunResult>& runs) {
  std::fprintf(f,
               "{\n  \"benchmark\": \"uzram-read-scaling\",\n  \"host\": {\"nprocs\": %d, \"cpu\": "
               "\"%s\"},\n",
               get_nprocs(), cpu_model().c_str());
  std::fprintf(
      f,
      "  \"config\": {\"seconds\": %g, \"objects\": %zu, "
      "\"pool_objects\": %zu, \"size\": %zu, \"sample_every\": %u, \"seed\": %llu, \"churn\": %g, "
      "\"bg_compact\": %s, \"bg_migrate\": %s, \"frame_cache\": %zu, \"threads\": [",
      o.seconds, o.objects, 2 * o.objects, o.size, o.sample_every, ull(o.seed), o.churn_fraction,
      o.bg_compact ? "true" : "false", o.bg_migrate ? "true" : "false", o.frame_cache);
  for (std::size_t i = 0; i < o.threads.size(); i++)
    std::fprintf(f, "%s%u", i ? ", " : "", o.threads[i]);
  std::fprintf(f, "]},\n  \"runs\": [\n");
  for (std::size_t i = 0; i < runs.size(); i++) {
    const RunResult& r = runs[i];
    std::fprintf(
        f,
        "    {\"mode\": \"%s\", \"threads\": %u, \"seconds\": %.4f, \"ops\": %llu, \"mops\": %.4f, "
        "\"speedup\": %.4f, \"samples\": %llu, \"p50_ns\": %llu, \"p99_ns\": %llu, \"p999_ns\": "
        "%llu, "
        "\"max_ns\": %llu, \"errors\": %llu, \"compactions\": %llu, \"pages_compacted\": %llu, "
        "\"compact_busy\": %llu, \"migrations\": %llu, \"migrate_busy\": %llu, \"churn_cycles\": "
        "%llu, "
        "\"compact_hold_ns_log2\": [",
        r.mode.c_str(), r.threads, r.seconds, ull(r.ops), r.mops, r.speedup, ull(r.samples),
        ull(r.p50), ull(r.p99), ull(r.p999), ull(r.max_ns), ull(r.errors), ull(r.compactions),
        ull(r.pages_compacted), ull(r.compact_busy), ull(r.migrations), ull(r.migrate_busy),
        ull(r.churn_cycles));
    for (int b = 0; b < 32; b++) std::fprintf(f, "%s%llu", b ? ", " : "", ull(r.hold[b]));
    std::fprintf(f, "]}%s\n", i + 1 < runs.size() ? "," : "");
  }
  std::fprintf(f, "  ],\n  \"compact_hold\": {");
  bool first = true;
  for (const auto& entry : hold_by_mode(runs)) {
    const std::string& mode = entry.first;
    const std::vector<std::uint64_t>& h = entry.second;
    std::uint64_t steps = 0;
    for (auto c : h) steps += c;
    if (!steps) continue;
    auto lo = [&h](double q) { return std::ldexp(1.0, quantile_of(h, q)); };
    std::fprintf(
        f,
        "%s\n    \"%s\": {\"steps\": %llu, \"p50_bucket_lo_ns\": %.0f, \"p99_bucket_lo_ns\": %.0f, "
        "\"max_bucket_lo_ns\": %.0f, \"note\": \"bucket i is [2^i, 2^(i+1)) ns\"}",
        first ? "" : ",", mode.c_str(), ull(steps), lo(0.5), lo(0.99), lo(1.0));
    first = false;
  }
  std::fprintf(f, "\n  }\n}\n");
}

}  // namespace uzram::bench

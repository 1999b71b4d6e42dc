// uzram-store-bench's unit modes (docs/units.md, docs/benchmarks.md "Compression units:
// the store"): --units compares stores of several unit sizes on the same pages (fill with
// write_blocks in runs of 64 pages, read with read_blocks; memory after the fill);
// --partial measures the partial-write policies on random 4 KiB writes and reads and on
// sequential 4 KiB rewrites of a store filled with whole units.
#include "store_bench_units.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "uzram/store.h"

namespace uzram_bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kPage = 4096, kRun = 64;  // pages per write_blocks / read_blocks call

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The calling thread's CPU time: what a pass costs, whatever else the machine runs (the
// shared VMs of docs/benchmarks.md swing wall-clock rates by 2x).
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::unique_ptr<uzram::Store> make_store(const std::string& algo, std::size_t unit,
                                         std::size_t pages, const std::string& policy) {
  auto st = std::move(uzram::Store::create().value());
  std::string msg;
  const auto set = [&](const char* name, const std::string& v) {
    if (!st->write_attr(name, v, &msg)) {
      std::fprintf(stderr, "uzram-store-bench: %s=%s: %s\n", name, v.c_str(), msg.c_str());
      std::exit(2);
    }
  };
  set("comp_algorithm", algo);
  set("unit_size", std::to_string(unit));
  if (!policy.empty()) set("unit_policy", policy);
  set("disksize", std::to_string(pages * kPage));
  return st;
}

void fill(uzram::Store& st, const std::vector<unsigned char>& pages, std::size_t n) {
  for (std::size_t a = 0; a < n; a += kRun) {
    if (!st.write_blocks(a, std::min(kRun, n - a), &pages[a * kPage])) std::abort();
  }
}

void verify(uzram::Store& st, const std::vector<unsigned char>& want, std::size_t n) {
  std::vector<unsigned char> out(kRun * kPage);
  for (std::size_t a = 0; a < n; a += kRun) {
    const std::size_t c = std::min(kRun, n - a);
    if (!st.read_blocks(a, c, out.data()) ||
        std::memcmp(out.data(), &want[a * kPage], c * kPage) != 0) {
      std::fprintf(stderr, "uzram-store-bench: blocks from %zu read back wrong\n", a);
      std::exit(2);
    }
  }
}

}  // namespace

void run_units(const std::vector<unsigned char>& pages, const std::vector<std::string>& algos,
               const std::vector<std::size_t>& units, int repeat) {
  const std::size_t n = pages.size() / kPage;
  const double mb = static_cast<double>(n * kPage) / 1e6;
  std::printf("%-6s %5s %11s %11s %11s %11s %10s %10s %9s %8s %8s\n", "algo", "unit", "write",
              "read", "write-cpu", "read-cpu", "compr", "mem_used", "overhead", "w/4K", "r/4K");
  for (const std::string& algo : algos) {
    double base_w = 0, base_r = 0;
    for (std::size_t unit : units) {
      double bw = 1e30, br = 1e30, cw = 1e30, cr = 1e30;
      uzram::MmStat m{};
      for (int r = 0; r < repeat; r++) {
        auto st = make_store(algo, unit, n, "");
        auto t0 = Clock::now();
        double c0 = cpu_seconds();
        fill(*st, pages, n);
        bw = std::min(bw, seconds_since(t0));
        cw = std::min(cw, cpu_seconds() - c0);
        m = st->mm_stat();
        std::vector<unsigned char> out(kRun * kPage);
        t0 = Clock::now();
        c0 = cpu_seconds();
        for (std::size_t a = 0; a < n; a += kRun) {
          if (!st->read_blocks(a, std::min(kRun, n - a), out.data())) std::abort();
        }
        br = std::min(br, seconds_since(t0));
        cr = std::min(cr, cpu_seconds() - c0);
        verify(*st, pages, n);
      }
      if (unit == units.front()) base_w = cw, base_r = cr;  // ratios of CPU time
      const double over =
          100.0 * (static_cast<double>(m.mem_used_total) - static_cast<double>(m.compr_data_size)) /
          static_cast<double>(m.compr_data_size);
      std::printf(
          "%-6s %4zuK %6.0f MB/s %6.0f MB/s %6.0f MB/s %6.0f MB/s %7.2f MB %7.2f MB %8.2f%% "
          "%7.2fx %7.2fx\n",
          algo.c_str(), unit >> 10, mb / bw, mb / br, mb / cw, mb / cr, m.compr_data_size / 1e6,
          m.mem_used_total / 1e6, over, base_w / cw, base_r / cr);
    }
  }
}

// Per (unit, policy): a fill with whole units (untimed), then `ops` random 4 KiB writes of
// other corpus pages (timed: IOPS), `ops` random 4 KiB reads (IOPS), the memory after;
// then, on a fresh fill, every block rewritten in order with 4 KiB writes (MB/s, memory).
void run_partial(const std::vector<unsigned char>& pages, const std::string& algo,
                 const std::vector<std::size_t>& units, const std::vector<std::string>& policies,
                 std::size_t ops, std::uint64_t seed) {
  const std::size_t n = pages.size() / kPage;
  // Rates per second of the thread's CPU time (wall-clock in brackets for the random ones).
  std::printf("%-6s %5s %-14s %16s %16s %9s %7s %11s %9s %9s %9s %6s\n", "algo", "unit", "policy",
              "rnd-w/cpu-s", "rnd-r/cpu-s", "mem-rnd", "rmw", "split", "seq-MB/cs", "mem-seq",
              "mem-fill", "units");
  for (std::size_t unit : units) {
    const std::vector<std::string> pol = unit == kPage ? std::vector<std::string>{""} : policies;
    for (const std::string& p : pol) {
      std::vector<unsigned char> want(pages);
      auto st = make_store(algo, unit, n, p);
      fill(*st, pages, n);
      const double mem_fill = st->mm_stat().mem_used_total / 1e6;
      std::mt19937_64 rng(seed);
      auto t0 = Clock::now();
      double c0 = cpu_seconds();
      for (std::size_t i = 0; i < ops; i++) {
        const std::size_t b = rng() % n, src = rng() % n;
        if (!st->write(b, &pages[src * kPage])) std::abort();
        std::memcpy(&want[b * kPage], &pages[src * kPage], kPage);
      }
      const double tw = seconds_since(t0), cw = cpu_seconds() - c0;
      std::vector<unsigned char> out(kPage);
      t0 = Clock::now();
      c0 = cpu_seconds();
      for (std::size_t i = 0; i < ops; i++) {
        if (!st->read(rng() % n, out.data())) std::abort();
      }
      const double tr = seconds_since(t0), cr = cpu_seconds() - c0;
      verify(*st, want, n);
      const uzram::UnitStat us = st->unit_stat();
      const double mem_rnd = st->mm_stat().mem_used_total / 1e6;
      // Sequential rewrite, 4 KiB at a time, of a fresh fill (the next pages of the corpus).
      st = make_store(algo, unit, n, p);
      fill(*st, pages, n);
      c0 = cpu_seconds();
      for (std::size_t b = 0; b < n; b++) {
        if (!st->write(b, &pages[((b + n / 2) % n) * kPage])) std::abort();
      }
      const double ts = cpu_seconds() - c0;
      for (std::size_t b = 0; b < n; b++) {
        std::memcpy(&want[b * kPage], &pages[((b + n / 2) % n) * kPage], kPage);
      }
      verify(*st, want, n);
      std::printf(
          "%-6s %4zuK %-14s %7.0f (%6.0f) %7.0f (%6.0f) %6.2f MB %7llu %5llu/%-5llu %9.0f "
          "%6.2f MB %6.2f MB %6llu\n",
          algo.c_str(), unit >> 10, p.empty() ? "-" : p.c_str(), ops / cw, ops / tw, ops / cr,
          ops / tr, mem_rnd, static_cast<unsigned long long>(us.rmw_writes),
          static_cast<unsigned long long>(us.split_writes),
          static_cast<unsigned long long>(us.splits), n * kPage / 1e6 / ts,
          st->mm_stat().mem_used_total / 1e6, mem_fill,
          static_cast<unsigned long long>(st->unit_stat().units));
    }
  }
}

}  // namespace uzram_bench

// uzram-auto-compact-bench: what the automatic compaction policy (PoolOptions::
// auto_compact_frames; not in the kernel) buys. One seeded sequence - fill N lognormal
// objects (mean 1.5 KiB), then free 75 % of them in random order while allocating a new
// object for every 4 freed - run with the policy off, inline, and on the background
// thread. Reports, over the free phase, the mean and worst of used / live payload
// (used = total_pages * 4096), and ns per operation.
//
//   uzram-auto-compact-bench [--objects N] [--threshold FRAMES] [--seed S]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "util/random.h"
#include "uzram/pool.h"

namespace {

struct Row {
  const char* name;
  double mean_ratio, worst_ratio, end_ratio, ns_per_op;
  unsigned long long compacted;
};

Row run(const char* name, std::size_t n, std::size_t threshold, bool background,
        std::uint64_t seed) {
  uzram::PoolOptions o;
  o.auto_compact_frames = threshold;
  o.background_compact = background;
  auto pool = std::move(uzram::Pool::create(o).value());
  uzram::Random rng(seed);
  const double mu = std::log(1536.0) - 0.45 * 0.45 / 2;
  auto size = [&] {
    const double x = std::exp(mu + 0.45 * rng.normal());
    return static_cast<std::size_t>(x < 1 ? 1 : x > 4096 ? 4096 : x);
  };
  static unsigned char buf[4096];
  std::vector<uzram::Handle> hs;
  std::vector<std::size_t> sz;
  double live = 0;
  for (std::size_t i = 0; i < n; i++) {
    const std::size_t s = size();
    hs.push_back(pool->alloc(s).value());
    pool->write(hs.back(), buf, s);
    sz.push_back(s);
    live += static_cast<double>(s);
  }
  double sum = 0, worst = 0;
  unsigned samples = 0;
  std::size_t ops = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t k = 0; k < n * 3 / 4; k++) {
    const std::size_t i = rng.uniform(hs.size());
    pool->free(hs[i]);
    live -= static_cast<double>(sz[i]);
    hs[i] = hs.back();
    sz[i] = sz.back();
    hs.pop_back();
    sz.pop_back();
    ops++;
    if (k % 4 == 3) {
      const std::size_t s = size();
      hs.push_back(pool->alloc(s).value());
      pool->write(hs.back(), buf, s);
      sz.push_back(s);
      live += static_cast<double>(s);
      ops++;
    }
    if (k % 1024 == 0) {
      const double r = static_cast<double>(pool->total_pages()) * 4096 / live;
      sum += r;
      worst = r > worst ? r : worst;
      samples++;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  pool->flush_deferred();
  const double end = static_cast<double>(pool->total_pages()) * 4096 / live;
  Row row{name, sum / samples, worst, end, secs * 1e9 / static_cast<double>(ops), 0};
  row.compacted = static_cast<unsigned long long>(pool->stats().pages_compacted);
  for (uzram::Handle h : hs) pool->free(h);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 400000, threshold = 64;
  std::uint64_t seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--objects")
      n = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--threshold")
      threshold = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--seed")
      seed = std::strtoull(argv[i + 1], nullptr, 10);
    else {
      std::fprintf(
          stderr,
          "usage: uzram-auto-compact-bench [--objects N] [--threshold FRAMES] [--seed S]\n");
      return 1;
    }
  }
  const Row rows[] = {run("off (kernel)", n, 0, false, seed),
                      run("inline", n, threshold, false, seed),
                      run("background", n, threshold, true, seed)};
  std::printf("%zu objects, threshold %zu frames, seed %llu; used = total_pages x 4096\n", n,
              threshold, static_cast<unsigned long long>(seed));
  std::printf("%-14s %12s %12s %12s %10s %12s\n", "policy", "mean used/live", "worst", "at end",
              "ns/op", "compacted");
  for (const Row& r : rows) {
    std::printf("%-14s %12.3f %12.3f %12.3f %10.0f %12llu\n", r.name, r.mean_ratio, r.worst_ratio,
                r.end_ratio, r.ns_per_op, r.compacted);
  }
  return 0;
}

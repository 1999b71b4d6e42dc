// bench/micro/free_path.cc - uzram-free-path: what each dependent miss of Pool::free
// costs (docs/benchmarks.md#the-free-path). Fills N lognormal objects, evicts the caches,
// warms some of what a free touches, then frees everything in fill order and reports ns
// per free:
//   cold      nothing warm;
//   entry     the handle entries (object_size() reads only the entry);
//   +desc     entries and zspage descriptors (read_begin/read_end; for the ~25 % of
//             objects that straddle a frame this copies the object, warming its frames);
//   +frame    entries, descriptors and each object's first line (the free-list word).
// The differences are the cost of each miss. Each variant runs --rounds times; the best
// round counts. --batch frees with free_batch() instead of free(); --random frees (and
// warms) in a random order instead of fill order, which defeats the hardware prefetcher.
//   uzram-free-path [--objects N] [--rounds R] [--batch] [--random] [--seed S]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "util/random.h"
#include "uzram/pool.h"

namespace {

using uzram::Handle;
using uzram::Pool;

double now_ns() {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count());
}

volatile unsigned char g_sink;

void evict(std::vector<unsigned char>& junk) {
  for (std::size_t i = 0; i < junk.size(); i += 64) junk[i]++;
  g_sink = junk[junk.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 65536;
  int rounds = 5;
  bool batch = false;
  bool random_order = false;
  std::uint64_t seed = 1;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--batch") {
      batch = true;
    } else if (a == "--random") {
      random_order = true;
    } else if (i + 1 < argc && a == "--objects") {
      n = std::strtoull(argv[++i], nullptr, 0);
    } else if (i + 1 < argc && a == "--rounds") {
      rounds = std::atoi(argv[++i]);
    } else if (i + 1 < argc && a == "--seed") {
      seed = std::strtoull(argv[++i], nullptr, 0);
    } else {
      std::fprintf(
          stderr,
          "usage: uzram-free-path [--objects N] [--rounds R] [--batch] [--random] [--seed S]\n");
      return 2;
    }
  }
  uzram::Random rng(seed);
  std::vector<std::uint32_t> sizes(n);
  const double mu = std::log(1536.0) - 0.45 * 0.45 / 2;
  for (auto& s : sizes) {
    const double u1 = (static_cast<double>(rng.next() >> 11) + 1) / 9007199254740993.0;
    const double u2 = static_cast<double>(rng.next() >> 11) / 9007199254740992.0;
    const double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
    s = static_cast<std::uint32_t>(std::fmin(4096, std::fmax(1, std::exp(mu + 0.45 * z))));
  }
  auto created = Pool::create({});
  if (!created) return 1;
  std::unique_ptr<Pool> pool = std::move(created).value();
  std::vector<unsigned char> junk(std::size_t{64} << 20), src(4096, 0x5a), local(4096);
  std::vector<Handle> hs(n), order(n);
  std::vector<std::size_t> perm(n);
  for (std::size_t i = 0; i < n; i++) perm[i] = i;
  if (random_order) {
    for (std::size_t i = n - 1; i > 0; i--) std::swap(perm[i], perm[rng.uniform(i + 1)]);
  }
  const char* names[] = {"cold", "entry", "+desc", "+frame"};
  double best[4] = {1e300, 1e300, 1e300, 1e300};
  for (int r = 0; r < rounds; r++) {
    for (int v = 0; v < 4; v++) {
      for (std::size_t i = 0; i < n; i++) {
        hs[i] = *pool->alloc(sizes[i]);
        pool->write(hs[i], src.data(), sizes[i]);
      }
      for (std::size_t i = 0; i < n; i++) order[i] = hs[perm[i]];
      evict(junk);
      unsigned acc = 0;
      for (std::size_t i = 0; i < n && v >= 1; i++)
        acc += static_cast<unsigned>(pool->object_size(order[i]));
      for (std::size_t i = 0; i < n && v >= 2; i++) {
        const void* p = pool->read_begin(order[i], local.data());
        if (v == 3) acc += *static_cast<const unsigned char*>(p);
        pool->read_end(order[i], p);
      }
      g_sink = static_cast<unsigned char>(acc);
      const double t0 = now_ns();
      if (batch) {
        pool->free_batch(order.data(), n);
      } else {
        for (std::size_t i = 0; i < n; i++) pool->free(order[i]);
      }
      const double t = (now_ns() - t0) / static_cast<double>(n);
      if (t < best[v]) best[v] = t;
    }
  }
  std::printf(
      "uzram-free-path: %zu lognormal objects, %s, %s order, best of %d rounds, ns per free\n", n,
      batch ? "free_batch" : "free", random_order ? "random" : "fill", rounds);
  for (int v = 0; v < 4; v++) std::printf("  %-7s %7.1f\n", names[v], best[v]);
  std::printf(
      "  entry miss %.1f, descriptor miss ~%.1f, frame-line miss ~%.1f (the +desc "
      "variant warms the frames of straddling objects too)\n",
      best[0] - best[1], best[1] - best[2], best[2] - best[3]);
  return 0;
}

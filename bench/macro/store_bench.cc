// uzram-store-bench: in-process write and read of a page corpus through uzram::Store,
// against the bare codec on the same pages, with 1..N threads (docs/benchmarks.md,
// "Store throughput"). Same-filled pages are left out of the corpus: the store stores them
// without compressing, which would flatter it.
//
//   uzram-store-bench CORPUS [--algos lz4,zstd] [--threads 1,2] [--repeat 3] [--mib 64]
//                    [--rewrite 1]
// --rewrite 1 times a second write pass over blocks already written (untimed first pass):
// the steady state of a busy device, where new objects reuse freed frames, instead of a
// fill of fresh memory (which pays the kernel's page zeroing and charging).
// Compression units (docs/units.md), one thread, instead of the table above:
//   --units 4K,32K        stores of these unit sizes (the first is the ratios' baseline):
//                         write_blocks/read_blocks in runs of 64 pages, memory after
//   --partial rmw,split,split_after=4 [--ops N] [--seed N]  with --units: random 4 KiB
//                         writes and reads and a sequential 4 KiB rewrite per unit_policy
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "store/codec.h"
#include "store/same_filled.h"
#include "store_bench_units.h"
#include "uzram/store.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t a = 0;
  while (a <= s.size()) {
    std::size_t b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

bool same_filled(const unsigned char* p) {
  alignas(8) unsigned char b[4096];
  std::memcpy(b, p, 4096);
  std::uint64_t word;
  return uzram::same_filled(b, &word);
}

std::size_t unit_bytes(const std::string& s) {
  const std::size_t v = std::strtoul(s.c_str(), nullptr, 10);
  return s.find_first_of("kK") != std::string::npos ? v << 10 : v;
}

// Runs fn(thread, first, end) over [0, n) in chunks of 64 pages that the threads take in
// turn from a shared cursor, so that a thread given the corpus's harder pages does not
// finish last (the corpus is binaries, then text, then process memory); returns seconds.
template <typename F>
double run(unsigned threads, std::size_t n, F fn) {
  constexpr std::size_t kChunk = 64;
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> ts;
  const auto t0 = Clock::now();
  for (unsigned t = 0; t < threads; t++) {
    ts.emplace_back([&, t] {
      // relaxed: the cursor only hands out disjoint ranges; join() orders the results.
      for (std::size_t a; (a = next.fetch_add(kChunk, std::memory_order_relaxed)) < n;) {
        fn(t, a, std::min(n, a + kChunk));
      }
    });
  }
  for (auto& t : ts) t.join();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "uzram-store-bench: %s\nusage: uzram-store-bench CORPUS [--algos lz4,zstd] "
               "[--threads 1,2] [--repeat N] [--mib N] [--rewrite 1]\n"
               "       [--units 4K,32K [--partial rmw,split,split_after=N] [--ops N] "
               "[--seed N]]\n",
               why);
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage("missing CORPUS");
  std::string corpus = argv[1], algos = "lz4,zstd", threads_s = "1,2";
  int repeat = 3;
  std::size_t mib = 64;
  bool rewrite = false;
  std::string units_s, partial_s;
  std::size_t ops = 20000;
  std::uint64_t seed = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--algos")
      algos = v;
    else if (a == "--threads")
      threads_s = v;
    else if (a == "--repeat")
      repeat = std::atoi(v.c_str());
    else if (a == "--mib")
      mib = std::strtoul(v.c_str(), nullptr, 10);
    else if (a == "--rewrite")
      rewrite = v == "1";
    else if (a == "--units")
      units_s = v;
    else if (a == "--partial")
      partial_s = v;
    else if (a == "--ops")
      ops = std::strtoul(v.c_str(), nullptr, 10);
    else if (a == "--seed")
      seed = std::strtoull(v.c_str(), nullptr, 10);
    else
      usage(("unknown option " + a).c_str());
  }
  std::FILE* f = std::fopen(corpus.c_str(), "rb");
  if (!f) usage(("cannot open " + corpus).c_str());
  std::vector<unsigned char> pages;
  std::vector<unsigned char> page(4096);
  while (pages.size() < mib << 20 && std::fread(page.data(), 1, 4096, f) == 4096) {
    if (!same_filled(page.data())) pages.insert(pages.end(), page.begin(), page.end());
  }
  std::fclose(f);
  const std::size_t n = pages.size() / 4096;
  if (n == 0) usage("no usable pages in the corpus");
  const double mb = static_cast<double>(n) * 4096 / 1e6;
  std::printf("corpus %s: %zu pages (same-filled pages left out)\n\n", corpus.c_str(), n);
  if (!units_s.empty()) {
    std::vector<std::size_t> units;
    for (const std::string& u : split(units_s)) units.push_back(unit_bytes(u));
    if (partial_s.empty()) {
      uzram_bench::run_units(pages, split(algos), units, repeat);
    } else {
      uzram_bench::run_partial(pages, split(algos).front(), units, split(partial_s), ops, seed);
    }
    return 0;
  }
  std::printf("%-6s %3s %12s %12s %8s %12s %12s %8s\n", "algo", "thr", "codec-comp", "store-write",
              "ratio", "codec-dec", "store-read", "ratio");
  for (const std::string& algo : split(algos)) {
    for (const std::string& ts : split(threads_s)) {
      const unsigned threads = static_cast<unsigned>(std::atoi(ts.c_str()));
      double best[4] = {1e30, 1e30, 1e30, 1e30};  // codec comp, store write, codec dec, store read
      for (int r = 0; r < repeat; r++) {
        // Bare codec: one codec per thread; compress every page, then decompress it.
        std::vector<std::vector<unsigned char>> comp(n);
        uzram::CodecSpec spec;
        spec.name = algo;
        std::vector<std::unique_ptr<uzram::Codec>> codecs;
        for (unsigned t = 0; t < threads; t++) codecs.push_back(uzram::make_codec(spec).value());
        best[0] =
            std::min(best[0], run(threads, n, [&](unsigned t, std::size_t a, std::size_t b) {
                       unsigned char buf[8192];
                       for (std::size_t i = a; i < b; i++) {
                         const std::size_t len =
                             codecs[t]->compress(&pages[i * 4096], 4096, buf, sizeof buf).value();
                         comp[i].assign(buf, buf + len);
                       }
                     }));
        best[2] = std::min(
            best[2], run(threads, n, [&](unsigned t, std::size_t a, std::size_t b) {
              unsigned char out[4096];
              for (std::size_t i = a; i < b; i++) {
                if (comp[i].size() >= 3625) {  // the store keeps these raw: a copy, not a decode
                  std::memcpy(out, &pages[i * 4096], 4096);
                  continue;
                }
                (void)codecs[t]->decompress(comp[i].data(), comp[i].size(), out, 4096);
              }
            }));
        // The store: same pages, same threads.
        auto st = std::move(uzram::Store::create().value());
        (void)st->write_attr("comp_algorithm", algo);
        (void)st->write_attr("disksize", std::to_string(n * 4096));
        auto write_all = [&](unsigned, std::size_t a, std::size_t b) {
          for (std::size_t i = a; i < b; i++) {
            if (!st->write(i, &pages[i * 4096])) std::abort();
          }
        };
        if (rewrite) run(threads, n, write_all);  // untimed first pass
        best[1] = std::min(best[1], run(threads, n, write_all));
        best[3] = std::min(best[3], run(threads, n, [&](unsigned, std::size_t a, std::size_t b) {
                             unsigned char out[4096];
                             for (std::size_t i = a; i < b; i++) {
                               if (!st->read(i, out)) std::abort();
                             }
                           }));
        unsigned char check[4096];  // verified outside the timed loops
        for (std::size_t i = 0; i < n; i++) {
          if (!st->read(i, check) || std::memcmp(check, &pages[i * 4096], 4096) != 0) {
            std::fprintf(stderr, "uzram-store-bench: block %zu read back wrong\n", i);
            return 2;
          }
        }
      }
      std::printf("%-6s %3u %9.0f MB/s %7.0f MB/s %7.0f%% %7.0f MB/s %7.0f MB/s %7.0f%%\n",
                  algo.c_str(), threads, mb / best[0], mb / best[1], 100 * best[0] / best[1],
                  mb / best[2], mb / best[3], 100 * best[2] / best[3]);
    }
  }
  return 0;
}

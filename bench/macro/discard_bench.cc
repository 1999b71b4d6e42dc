// uzram-discard-bench: discard of a filled store, one call for the whole range against one
// call per block (docs/benchmarks.md#discard-and-trim). Only the public Store API, so the
// same source builds against an older commit for a before/after comparison in one run.
//
//   uzram-discard-bench CORPUS [--mib 1024] [--algo lz4] [--rounds 3] [--modes whole,blocks]
//
// Each round: create a store of --mib MiB, write every block from the corpus (its 4 KiB
// pages in order, repeated as needed; same-filled pages included, as a device gets them),
// then time the discard of the whole device: `whole` = Store::discard(0, size), `blocks`
// = Store::discard(i * 4096, 4096) for every block. The store is then checked empty (no
// pool object left) and reset. Modes alternate within a round; the best round counts.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "uzram/pool.h"
#include "uzram/store.h"

namespace {

using Clock = std::chrono::steady_clock;

int usage() {
  std::fprintf(stderr,
               "usage: uzram-discard-bench CORPUS [--mib 1024] [--algo lz4] [--rounds 3] "
               "[--modes whole,blocks]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string corpus_path = argv[1];
  std::uint64_t mib = 1024;
  std::string algo = "lz4";
  int rounds = 3;
  std::string modes = "whole,blocks";
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--mib") {
      mib = std::strtoull(v.c_str(), nullptr, 0);
    } else if (a == "--algo") {
      algo = v;
    } else if (a == "--rounds") {
      rounds = std::atoi(v.c_str());
    } else if (a == "--modes") {
      modes = v;
    } else {
      return usage();
    }
  }
  std::FILE* f = std::fopen(corpus_path.c_str(), "rb");
  if (!f) {
    std::perror(corpus_path.c_str());
    return 1;
  }
  std::vector<unsigned char> corpus;
  unsigned char page[4096];
  while (std::fread(page, 1, sizeof page, f) == sizeof page)
    corpus.insert(corpus.end(), page, page + 4096);
  std::fclose(f);
  const std::size_t pages = corpus.size() / 4096;
  if (pages == 0 || mib == 0) return usage();
  const std::uint64_t blocks = mib << 8;
  std::vector<std::string> mode_list;
  for (std::size_t a = 0; a <= modes.size();) {
    const std::size_t b = std::min(modes.find(',', a), modes.size());
    if (b > a) mode_list.push_back(modes.substr(a, b - a));
    a = b + 1;
  }
  std::printf(
      "uzram-discard-bench: %llu MiB (%llu blocks) of %s (%zu pages, repeated), %s, %d rounds\n",
      static_cast<unsigned long long>(mib), static_cast<unsigned long long>(blocks),
      corpus_path.c_str(), pages, algo.c_str(), rounds);
  std::vector<double> best(mode_list.size(), 1e300);
  for (int r = 0; r < rounds; r++) {
    for (std::size_t m = 0; m < mode_list.size(); m++) {
      auto created = uzram::Store::create("discard-bench");
      if (!created) return 1;
      std::unique_ptr<uzram::Store> st = std::move(created).value();
      if (!st->write_attr("comp_algorithm", algo) ||
          !st->write_attr("disksize", std::to_string(blocks * 4096))) {
        std::fprintf(stderr, "cannot configure the store (%s)\n", algo.c_str());
        return 1;
      }
      for (std::uint64_t i = 0; i < blocks; i++) {
        if (!st->write(i, &corpus[(i % pages) * 4096])) {
          std::fprintf(stderr, "write of block %llu failed\n", static_cast<unsigned long long>(i));
          return 1;
        }
      }
      const uzram::MmStat mm = st->mm_stat();
      const auto t0 = Clock::now();
      if (mode_list[m] == "whole") {
        if (!st->discard(0, blocks * 4096)) return 1;
      } else if (mode_list[m] == "blocks") {
        for (std::uint64_t i = 0; i < blocks; i++) {
          if (!st->discard(i * 4096, 4096)) return 1;
        }
      } else {
        return usage();
      }
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      const uzram::MmStat after = st->mm_stat();
      if (after.orig_data_size != 0 || st->pool()->stats().objs_used != 0) {
        std::fprintf(stderr, "discard left data behind\n");
        return 1;
      }
      // The frames the discard emptied are idle now (the decay returns them later, off the
      // discard path); time returning them all at once, to show what that costs.
      const auto t1 = Clock::now();
      const std::size_t idle = const_cast<uzram::Pool*>(st->pool())->release_idle_frames();
      const double rs = std::chrono::duration<double>(Clock::now() - t1).count();
      std::printf(
          "round %d %-6s %8.1f ms  %6.1f ns/block  (stored %.0f MiB in %.0f MiB of pool; "
          "then returning %zu idle frames: %.1f ms)\n",
          r, mode_list[m].c_str(), s * 1e3, s * 1e9 / static_cast<double>(blocks),
          static_cast<double>(mm.orig_data_size) / 1048576.0,
          static_cast<double>(mm.mem_used_total) / 1048576.0, idle, rs * 1e3);
      std::fflush(stdout);
      if (s < best[m]) best[m] = s;
    }
  }
  for (std::size_t m = 0; m < mode_list.size(); m++) {
    std::printf("best %-6s %8.1f ms  %6.1f ns/block\n", mode_list[m].c_str(), best[m] * 1e3,
                best[m] * 1e9 / static_cast<double>(blocks));
  }
  if (mode_list.size() == 2) {
    std::printf("ratio %s / %s: %.2fx faster\n", mode_list[1].c_str(), mode_list[0].c_str(),
                best[1] / best[0]);
  }
  return 0;
}

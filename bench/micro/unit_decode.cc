// bench/micro/unit_decode.cc - uzram-unit-decode: what a 4 KiB read of a unit costs to
// decode with the unit compressed in pieces (docs/units.md#partial-decoding). For a page
// corpus cut into units of --unit KiB, zstd at --level, per piece size (0: the unit in one
// piece, as before pieces): the compressed bytes of all units; then, over --reads random
// units, the thread CPU time of a whole decompress() and of a decompress_prefix() up to a
// random block (what a block read of a unit not in the cache decodes), and the bytes that
// prefix decoded on average. Pieces are measured in turn, twice (a shared machine).
//   uzram-unit-decode CORPUS [--unit KIB] [--level N] [--reads N] [PIECE_KIB...]
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "store/codec.h"
#include "util/random.h"

namespace {

double cpu_now() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

int usage() {
  std::fprintf(stderr,
               "usage: uzram-unit-decode CORPUS [--unit KIB] [--level N] [--reads N] "
               "[PIECE_KIB...]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  std::size_t unit = 32768, reads = 20000;
  int level = 3;
  std::vector<std::size_t> pieces;
  for (int i = 2; i < argc; i++) {
    const std::string a = argv[i];
    if ((a == "--unit" || a == "--level" || a == "--reads") && i + 1 < argc) {
      const long v = std::strtol(argv[++i], nullptr, 10);
      if (a == "--unit") unit = static_cast<std::size_t>(v) << 10;
      if (a == "--level") level = static_cast<int>(v);
      if (a == "--reads") reads = static_cast<std::size_t>(v);
    } else {
      pieces.push_back(static_cast<std::size_t>(std::strtol(argv[i], nullptr, 10)) << 10);
    }
  }
  if (pieces.empty()) pieces = {0, 8192, 16384};
  std::FILE* f = std::fopen(argv[1], "rb");
  if (!f || unit < 8192 || unit > 65536 || reads == 0) return usage();
  std::vector<unsigned char> img(std::size_t{256} << 20);
  img.resize(std::fread(img.data(), 1, img.size(), f));
  std::fclose(f);
  const std::size_t units = img.size() / unit;
  if (units == 0) return usage();
  uzram::CodecSpec spec;
  spec.name = "zstd";
  spec.has_level = true;
  spec.level = level;
  auto made = uzram::make_codec(spec);
  if (!made) return usage();
  auto codec = std::move(made).value();
  std::printf("%zu units of %zu KiB, zstd -%d, %zu random reads per figure\n", units, unit >> 10,
              level, reads);
  std::printf("%-10s %14s %16s %18s %14s\n", "piece", "compressed", "whole us/unit",
              "prefix us/read", "prefix bytes");
  std::vector<unsigned char> out(unit);
  for (int round = 0; round < 2; round++) {
    for (std::size_t piece : pieces) {
      std::vector<std::vector<unsigned char>> comp(units);
      std::size_t total = 0;
      for (std::size_t u = 0; u < units; u++) {
        std::vector<unsigned char> buf(2 * unit);
        auto n = codec->compress_pieces(img.data() + u * unit, unit, buf.data(), buf.size(), piece);
        if (!n) return 1;
        buf.resize(*n);
        total += *n;
        comp[u] = std::move(buf);
      }
      uzram::Random rng(1);
      const double t0 = cpu_now();
      for (std::size_t i = 0; i < reads; i++) {
        const auto& c = comp[rng.uniform(units)];
        if (!codec->decompress(c.data(), c.size(), out.data(), unit)) return 1;
      }
      const double t1 = cpu_now();
      std::size_t decoded = 0;
      for (std::size_t i = 0; i < reads; i++) {
        const auto& c = comp[rng.uniform(units)];
        const std::size_t need = (1 + rng.uniform(unit / 4096)) * 4096;
        auto r = codec->decompress_prefix(c.data(), c.size(), out.data(), unit, need);
        if (!r) return 1;
        decoded += *r;
      }
      const double t2 = cpu_now();
      std::printf("%-10s %14zu %16.1f %18.1f %14.0f\n",
                  piece ? (std::to_string(piece >> 10) + " KiB").c_str() : "whole", total,
                  (t1 - t0) / static_cast<double>(reads) * 1e6,
                  (t2 - t1) / static_cast<double>(reads) * 1e6,
                  static_cast<double>(decoded) / static_cast<double>(reads));
    }
  }
  return 0;
}

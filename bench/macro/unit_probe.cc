// uzram-unit-probe: what compressing a page corpus in units of 4, 16, 32 or 64 KiB gains
// (docs/units.md, docs/benchmarks.md#compression-units-baseline-and-probe): per unit size
// and codec level,
// the bytes a store would keep, compress and decompress speed, and what one 4 KiB read
// out of a unit costs (a whole-unit decompression).
//
//   uzram-unit-probe CORPUS [--units 4,16,32,64] [--algos lz4,zstd] [--levels 1-9]
//                    [--passes N] [--pool-model] [--dump-sizes DIR]
//
// A unit made of one repeated 8-byte word is left out (the store keeps it as a word in
// its slot). A unit that compresses to at least 3625/4096 of its size is counted raw (the
// store's rule: zram's huge threshold at chain 8, scaled to the unit). "stored" = the
// compressed bytes with raw units at their full size, plus nothing for same-filled units;
// "vs 4K" compares it with the 4 KiB row of the same codec and level. MB/s = 10^6 bytes of
// unit data per second, the fastest of --passes passes (default 3) over all units.
// "us/4K read" = the mean time to decompress one unit, i.e. the cost of serving a 4 KiB
// read from it without a cache. Every unit is round-tripped and compared once.
// --pool-model adds, per row, the frames a pool filled with exactly these objects would
// hold, for two layouts of the objects above 4 KiB
// (docs/units.md#pool-objects-larger-than-a-frame): uzram's runs of
// whole frames plus a small-class tail (pool/geometry.h, split_large), and a class family
// on a 16-byte grid with chains of up to K frames chosen by least tail waste, merged like
// the small classes (the kernel RFC's shape with Senozhatsky's constant step), for K = 8,
// 16, 24, and the frames of a real uzram::Pool filled with them ("built pool": checks the
// model against the implementation; it comes in below the runs + tails column, which does
// not model tails spilled into larger classes, docs/units.md#tails-in-a-larger-class).
// Objects of up to 4 KiB use the small classes at chain 8 in both. Every class's
// last zspage is counted whole (a fresh fill, no frees): the cost of having many classes.
// --dump-sizes DIR writes each row's compressed unit sizes, one a line (same-filled units
// left out, raw ones as the unit size), to DIR/ALGO[-LEVEL]-UNITK.sizes: the input of
// pool geometry studies (docs/units.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "pool/geometry.h"
#include "store/codec.h"
#include "store/same_filled.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

using Bytes = std::vector<unsigned char>;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kPage = 4096;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "uzram-unit-probe: %s\n", what.c_str());
  std::exit(2);
}

// The store's test (store/same_filled.h): a unit whose every 4 KiB block is one repeated
// word (each its own) is stored as metadata only. `p` is 8-byte aligned.
bool same_filled(const unsigned char* p, std::size_t len) {
  std::uint64_t words[16];
  return uzram::same_filled_blocks(p, len / kPage, words);
}

std::vector<unsigned> parse_list(const std::string& s) {
  std::vector<unsigned> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto dash = item.find('-');
    if (dash == std::string::npos) {
      out.push_back(static_cast<unsigned>(std::stoul(item)));
    } else {
      const unsigned lo = static_cast<unsigned>(std::stoul(item.substr(0, dash)));
      const unsigned hi = static_cast<unsigned>(std::stoul(item.substr(dash + 1)));
      for (unsigned v = lo; v <= hi; v++) out.push_back(v);
    }
  }
  return out;
}

// Frames holding `count` objects of a class with (pages, objs) per zspage.
std::size_t zspage_frames(std::size_t count, unsigned pages, unsigned objs) {
  return (count + objs - 1) / objs * pages;
}

// The pool model (see --pool-model): frames for the objects `sizes`.
struct PoolModel {
  std::size_t runs_tails = 0;
  std::size_t family[3] = {};  // K = 8, 16, 24
};

// The class family's (pages, objs) for size s > 4096 with chains of up to k_max frames:
// the least tail waste (k * 4096 - objs * s) over k = ceil(s / 4096) .. k_max, first wins;
// multiples of 4096 take exactly their frames.
std::pair<unsigned, unsigned> family_class(std::size_t s, unsigned k_max) {
  const auto lo = static_cast<unsigned>((s + kPage - 1) / kPage);
  if (s % kPage == 0) return {lo, 1};
  unsigned best_k = lo;
  std::size_t best_w = SIZE_MAX;
  for (unsigned k = lo; k <= std::max(lo, k_max); k++) {
    const std::size_t n = k * kPage / s;
    const std::size_t w = k * kPage - n * s;
    if (w < best_w) {
      best_w = w;
      best_k = k;
    }
  }
  return {best_k, static_cast<unsigned>(best_k * kPage / s)};
}

// The frames a real uzram::Pool (chain 8, max_object_size = the unit) holds after
// allocating exactly these objects: checks the model's runs + tails column against the
// built pool (large objects, docs/units.md). 0 when the pool cannot be made.
std::size_t real_pool_frames(const std::vector<std::size_t>& sizes, std::size_t unit) {
  uzram::PoolOptions o;
  o.max_object_size = std::max(unit, kPage);
  auto created = uzram::Pool::create(o);
  if (!created) return 0;
  uzram::Pool& pool = **created;
  std::vector<uzram::Handle> hs;
  hs.reserve(sizes.size());
  for (const std::size_t x : sizes) {
    auto h = pool.alloc(x);
    if (!h) break;
    hs.push_back(*h);
  }
  const std::size_t frames = hs.size() == sizes.size() ? pool.total_pages() : 0;
  pool.free_batch(hs.data(), hs.size());
  return frames;
}

PoolModel pool_model(const std::vector<std::size_t>& sizes) {
  const Geometry g(8);
  PoolModel m;
  std::map<unsigned, std::size_t> small;  // real small class -> objects (runs + tails)
  std::size_t run_frames = 0;
  std::map<std::pair<unsigned, unsigned>, std::size_t> fam[3];
  std::map<unsigned, std::size_t> fam_small;
  const unsigned kmax[3] = {8, 16, 24};
  for (const std::size_t x : sizes) {
    if (x <= kPage) {
      small[g.class_of_slot(Geometry::slot_for(x))]++;
      fam_small[g.class_of_slot(Geometry::slot_for(x))]++;
      continue;
    }
    const LargeSplit sp = split_large(x, g.max_tail());
    run_frames += sp.frames;
    if (sp.tail) small[g.class_of_slot(Geometry::slot_for(sp.tail))]++;
    // The family merges 16-byte slots with equal (pages, objs): same frames per object.
    const std::size_t slot = kPage + (x - kPage + 15) / 16 * 16;
    for (int i = 0; i < 3; i++) fam[i][family_class(slot, kmax[i])]++;
  }
  m.runs_tails = run_frames;
  for (const auto& [c, n] : small) {
    m.runs_tails += zspage_frames(n, g.info(c).pages_per_zspage, g.info(c).objs_per_zspage);
  }
  std::size_t small_frames = 0;
  for (const auto& [c, n] : fam_small) {
    small_frames += zspage_frames(n, g.info(c).pages_per_zspage, g.info(c).objs_per_zspage);
  }
  for (int i = 0; i < 3; i++) {
    m.family[i] = small_frames;
    for (const auto& [c, n] : fam[i]) m.family[i] += zspage_frames(n, c.first, c.second);
  }
  return m;
}

struct Result_ {
  std::size_t stored = 0;  // compressed bytes, raw units counted whole
  std::size_t units = 0;   // units compressed (same-filled ones left out)
  std::size_t raw = 0;     // units stored raw
  double cmbs = 0, dmbs = 0, us_per_unit = 0;
  std::vector<std::size_t> sizes;  // stored size of each unit (raw ones: the unit size)
};

Result_ measure(const CodecSpec& spec, const Bytes& corpus, std::size_t unit, unsigned passes,
                const std::string& dump) {
  auto made = make_codec(spec);
  if (!made) die(spec.name + ": " + made.error().message());
  Codec& c = **made;
  std::vector<const unsigned char*> units;
  for (std::size_t off = 0; off + unit <= corpus.size(); off += unit) {
    if (!same_filled(corpus.data() + off, unit)) units.push_back(corpus.data() + off);
  }
  Result_ r;
  r.units = units.size();
  const std::size_t threshold = unit * 3625 / 4096;
  std::vector<Bytes> comp(units.size());
  Bytes dst(2 * unit), out(unit);
  double best_c = 1e30, best_d = 1e30;
  for (unsigned pass = 0; pass < passes; pass++) {
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < units.size(); i++) {
      auto n = c.compress(units[i], unit, dst.data(), dst.size());
      if (!n || *n == 0) die(spec.name + ": compress failed");
      if (pass == 0) comp[i].assign(dst.begin(), dst.begin() + static_cast<std::ptrdiff_t>(*n));
    }
    best_c = std::min(best_c, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::FILE* sizes = dump.empty() ? nullptr : std::fopen(dump.c_str(), "w");
  if (!dump.empty() && sizes == nullptr) die("cannot write " + dump);
  for (std::size_t i = 0; i < units.size(); i++) {
    const bool raw = comp[i].size() >= threshold;
    r.raw += raw ? 1 : 0;
    r.stored += raw ? unit : comp[i].size();
    r.sizes.push_back(raw ? unit : comp[i].size());
    if (sizes) std::fprintf(sizes, "%zu\n", raw ? unit : comp[i].size());
    if (!c.decompress(comp[i].data(), comp[i].size(), out.data(), unit) ||
        std::memcmp(out.data(), units[i], unit) != 0) {
      die(spec.name + ": a unit does not round-trip");
    }
  }
  if (sizes) std::fclose(sizes);
  for (unsigned pass = 0; pass < passes; pass++) {
    bool ok = true;
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < units.size(); i++) {
      ok &= c.decompress(comp[i].data(), comp[i].size(), out.data(), unit).has_value();
    }
    best_d = std::min(best_d, std::chrono::duration<double>(Clock::now() - t0).count());
    if (!ok) die(spec.name + ": a timed decompression failed");
  }
  const double bytes = static_cast<double>(units.size() * unit);
  r.cmbs = bytes / best_c / 1e6;
  r.dmbs = bytes / best_d / 1e6;
  r.us_per_unit = best_d * 1e6 / static_cast<double>(std::max<std::size_t>(1, units.size()));
  return r;
}

int run(const char* path, const std::vector<unsigned>& units_k,
        const std::vector<std::string>& algos, const std::vector<unsigned>& levels, unsigned passes,
        const std::string& dump_dir, bool model) {
  std::ifstream in(path, std::ios::binary);
  if (!in) die(std::string("cannot read ") + path);
  Bytes corpus((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  corpus.resize(corpus.size() / (64 * 1024) * (64 * 1024));  // whole 64 KiB units for all
  if (corpus.empty()) die(std::string(path) + ": shorter than 64 KiB");
  std::printf("%s: %zu bytes (%zu pages), %u passes\n\n", path, corpus.size(),
              corpus.size() / kPage, passes);
  std::printf(
      "| codec | unit | stored bytes | vs 4K | ratio | raw units | compress MB/s "
      "| decompress MB/s | us/4K read |\n");
  std::printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  std::string models;
  for (const std::string& algo : algos) {
    std::vector<std::optional<int>> lv;
    if (algo == "zstd") {
      for (unsigned l : levels) lv.emplace_back(static_cast<int>(l));
    } else {
      lv.emplace_back(std::nullopt);
    }
    for (const auto& level : lv) {
      CodecSpec spec;
      spec.name = algo;
      if (level) {
        spec.has_level = true;
        spec.level = *level;
      }
      const std::string label = algo + (level ? " -" + std::to_string(*level) : "");
      double base = 0;
      for (unsigned k : units_k) {
        const std::string dump =
            dump_dir.empty() ? ""
                             : dump_dir + "/" + algo + (level ? "-" + std::to_string(*level) : "") +
                                   "-" + std::to_string(k) + "K.sizes";
        const Result_ r = measure(spec, corpus, std::size_t{k} * 1024, passes, dump);
        if (k == 4) base = static_cast<double>(r.stored);
        const double vs = base > 0 ? 100.0 * (static_cast<double>(r.stored) / base - 1) : 0;
        std::printf("| %s | %u K | %zu | %s%.1f %% | %.3f | %.1f %% | %.0f | %.0f | %.1f |\n",
                    label.c_str(), k, r.stored, vs > 0 ? "+" : "", vs,
                    static_cast<double>(corpus.size()) / static_cast<double>(r.stored),
                    100.0 * static_cast<double>(r.raw) /
                        static_cast<double>(std::max<std::size_t>(1, r.units)),
                    r.cmbs, r.dmbs, r.us_per_unit);
        std::fflush(stdout);
        if (model) {
          const PoolModel m = pool_model(r.sizes);
          const auto col = [&](std::size_t frames) {
            const double bytes = static_cast<double>(frames * kPage);
            char buf[64];
            std::snprintf(buf, sizeof buf, "%.2f (%+.2f %%)", bytes / 1048576.0,
                          100.0 * (bytes / static_cast<double>(r.stored) - 1));
            return std::string(buf);
          };
          models += "| " + label + " | " + std::to_string(k) + " K | " +
                    std::to_string(r.sizes.size()) + " | " +
                    std::to_string(static_cast<double>(r.stored) / 1048576.0).substr(0, 6) + " | " +
                    col(m.runs_tails) + " | " +
                    col(real_pool_frames(r.sizes, std::size_t{k} * 1024)) + " | " +
                    col(m.family[0]) + " | " + col(m.family[1]) + " | " + col(m.family[2]) + " |\n";
        }
      }
    }
  }
  if (model) {
    std::printf(
        "\nPool model: MiB of frames holding the stored objects (overhead over stored "
        "bytes; \"built pool\": a uzram::Pool filled with them)\n\n| codec | unit | objects "
        "| stored MiB | runs + tails | built pool | family K=8 | family K=16 | family K=24 "
        "|\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n%s",
        models.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace uzram

int main(int argc, char** argv) {
  const char* const usage =
      "usage: uzram-unit-probe CORPUS [--units 4,16,32,64] [--algos lz4,zstd] "
      "[--levels 1-9] [--passes N] [--pool-model] [--dump-sizes DIR]\n";
  const char* corpus = nullptr;
  std::string units = "4,16,32,64", algos = "lz4,zstd", levels = "1-9", dump;
  unsigned passes = 3;
  bool model = false;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage, stdout);
      return 0;
    }
    if (a == "--units" && i + 1 < argc) {
      units = argv[++i];
    } else if (a == "--algos" && i + 1 < argc) {
      algos = argv[++i];
    } else if (a == "--levels" && i + 1 < argc) {
      levels = argv[++i];
    } else if (a == "--pool-model") {
      model = true;
    } else if (a == "--dump-sizes" && i + 1 < argc) {
      dump = argv[++i];
    } else if (a == "--passes" && i + 1 < argc) {
      passes = static_cast<unsigned>(std::max(1L, std::atol(argv[++i])));
    } else if (a[0] != '-' && corpus == nullptr) {
      corpus = argv[i];
    } else {
      std::fputs(usage, stderr);
      return 2;
    }
  }
  if (corpus == nullptr) {
    std::fputs(usage, stderr);
    return 2;
  }
  std::vector<unsigned> unit_list, level_list;
  std::vector<std::string> algo_list;
  try {
    unit_list = uzram::parse_list(units);
    level_list = uzram::parse_list(levels);
  } catch (...) {
    std::fputs(usage, stderr);
    return 2;
  }
  for (unsigned u : unit_list) {
    if (u != 4 && u != 16 && u != 32 && u != 64) {
      std::fputs("uzram-unit-probe: --units takes 4, 16, 32, 64\n", stderr);
      return 2;
    }
  }
  std::stringstream in(algos);
  std::string item;
  while (std::getline(in, item, ',')) algo_list.push_back(item);
  return uzram::run(corpus, unit_list, algo_list, level_list, passes, dump, model);
}

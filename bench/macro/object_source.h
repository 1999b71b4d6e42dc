// bench/macro/object_source.h - where uzram-bench's objects come from: sizes and bytes.
//
// Two models of "compressed pages":
//   lognormal  sizes ~ exp(N(mu, sigma)) with the mean ~1.5 KiB and sigma 0.45, clamped to
//              1..4096; the bytes are slices of a random (incompressible) buffer.
//   corpus     a file of 4 KiB pages, each compressed with LZ4_compress_default; the
//              compressed bytes are the objects. As zram does, pages of one repeated
//              8-byte word are skipped (zram stores them as metadata only) and pages
//              that compress to >= the huge threshold are stored raw (4096 bytes).
// Both are drawn from a seeded uzram::Random, so every backend sees the same objects.
#ifndef UZRAM_BENCH_MACRO_OBJECT_SOURCE_H_
#define UZRAM_BENCH_MACRO_OBJECT_SOURCE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/random.h"

namespace uzram::bench {

struct Object {
  std::uint32_t size;
  const std::byte* data;
};

class ObjectSource {
 public:
  static constexpr double kLognormalMean = 1536.0;
  static constexpr double kLognormalSigma = 0.45;

  // The lognormal model.
  static ObjectSource lognormal();
  // The corpus model; false (with *error set) when the file cannot be used or lz4 is not
  // compiled in. `huge_threshold`: compressed sizes >= this are stored raw.
  static bool corpus(const std::string& path, std::size_t huge_threshold, ObjectSource* out,
                     std::string* error);
  static bool have_lz4() noexcept;

  Object draw(Random& rng) const noexcept;
  // One line describing the model, e.g. "lognormal(mean 1536, sigma 0.45)".
  const std::string& description() const noexcept { return description_; }
  bool is_corpus() const noexcept { return !pages_.empty(); }
  // Corpus statistics (0 for the lognormal model).
  std::size_t corpus_pages() const noexcept { return corpus_pages_; }
  std::size_t same_filled_pages() const noexcept { return same_filled_; }
  std::size_t raw_pages() const noexcept { return raw_pages_; }
  double compression_ratio() const noexcept { return ratio_; }

 private:
  struct Page {
    std::uint32_t offset;
    std::uint32_t size;
  };
  double mu_ = 0;
  std::vector<std::byte> bytes_;  // lognormal: random pattern; corpus: compressed pages
  std::vector<Page> pages_;       // corpus only: the objects, indexes into bytes_
  std::string description_;
  std::size_t corpus_pages_ = 0, same_filled_ = 0, raw_pages_ = 0;
  double ratio_ = 0;
};

}  // namespace uzram::bench

#endif  // UZRAM_BENCH_MACRO_OBJECT_SOURCE_H_

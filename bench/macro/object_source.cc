// bench/macro/object_source.cc - the lognormal and lz4-corpus object models.
#include "object_source.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "uzram/pool.h"

#if UZRAM_BENCH_HAVE_LZ4
#include <lz4.h>
#endif

namespace uzram::bench {

namespace {

// The random pattern lognormal objects are sliced from: small enough to stay in the L2/L3
// cache, like zram's per-CPU compression buffer.
constexpr std::size_t kPatternBytes = std::size_t{256} << 10;

bool same_filled(const std::byte* page) {
  std::uint64_t first, w;
  std::memcpy(&first, page, 8);
  for (std::size_t i = 8; i < kPageSize; i += 8) {
    std::memcpy(&w, page + i, 8);
    if (w != first) return false;
  }
  return true;
}

}  // namespace

ObjectSource ObjectSource::lognormal() {
  ObjectSource s;
  // E[exp(N(mu, sigma))] = exp(mu + sigma^2 / 2).
  s.mu_ = std::log(kLognormalMean) - kLognormalSigma * kLognormalSigma / 2;
  s.bytes_.resize(kPatternBytes + kPageSize);
  Random rng(0x5eed0b1ec7);
  for (std::size_t i = 0; i < s.bytes_.size(); i += 8) {
    const std::uint64_t w = rng.next();
    std::memcpy(&s.bytes_[i], &w, 8);
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "lognormal(mean %.0f B, sigma %.2f, clamped to 1..4096)",
                kLognormalMean, kLognormalSigma);
  s.description_ = buf;
  return s;
}

bool ObjectSource::have_lz4() noexcept { return UZRAM_BENCH_HAVE_LZ4 != 0; }

bool ObjectSource::corpus(const std::string& path, std::size_t huge_threshold, ObjectSource* out,
                          std::string* error) {
#if !UZRAM_BENCH_HAVE_LZ4
  (void)path;
  (void)huge_threshold;
  (void)out;
  *error = "uzram-bench was built without lz4 (install liblz4-dev and rebuild)";
  return false;
#else
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    *error = "cannot open corpus '" + path + "': " + std::strerror(errno);
    return false;
  }
  ObjectSource s;
  std::vector<std::byte> page(kPageSize);
  std::vector<char> dst(static_cast<std::size_t>(LZ4_compressBound(kPageSize)));
  std::uint64_t in_bytes = 0, stored_bytes = 0;
  while (std::fread(page.data(), 1, kPageSize, f) == kPageSize) {
    s.corpus_pages_++;
    if (same_filled(page.data())) {
      s.same_filled_++;
      continue;
    }
    const int n = LZ4_compress_default(reinterpret_cast<const char*>(page.data()), dst.data(),
                                       static_cast<int>(kPageSize), static_cast<int>(dst.size()));
    const std::size_t off = s.bytes_.size();
    if (n <= 0 || static_cast<std::size_t>(n) >= huge_threshold) {
      s.raw_pages_++;  // zram: comp_len >= huge_class_size -> store the page as is
      s.bytes_.insert(s.bytes_.end(), page.begin(), page.end());
      s.pages_.push_back({static_cast<std::uint32_t>(off), static_cast<std::uint32_t>(kPageSize)});
    } else {
      const auto* d = reinterpret_cast<const std::byte*>(dst.data());
      s.bytes_.insert(s.bytes_.end(), d, d + n);
      s.pages_.push_back({static_cast<std::uint32_t>(off), static_cast<std::uint32_t>(n)});
    }
    in_bytes += kPageSize;
    stored_bytes += s.pages_.back().size;
    if (s.bytes_.size() > (std::size_t{3} << 30)) break;  // offsets are 32-bit
  }
  std::fclose(f);
  if (s.pages_.empty()) {
    *error = "corpus '" + path + "' holds no usable 4 KiB pages";
    return false;
  }
  s.ratio_ = static_cast<double>(in_bytes) / static_cast<double>(stored_bytes);
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "corpus %s: %zu pages, %zu same-filled skipped, %zu stored raw (>= %zu B), "
                "lz4 ratio %.2f",
                path.c_str(), s.corpus_pages_, s.same_filled_, s.raw_pages_, huge_threshold,
                s.ratio_);
  s.description_ = buf;
  *out = std::move(s);
  return true;
#endif
}

Object ObjectSource::draw(Random& rng) const noexcept {
  if (!pages_.empty()) {
    const Page& p = pages_[rng.uniform(pages_.size())];
    return {p.size, bytes_.data() + p.offset};
  }
  const double x = std::exp(mu_ + kLognormalSigma * rng.normal());
  const auto size =
      static_cast<std::uint32_t>(std::clamp(std::lround(x), 1L, static_cast<long>(kPageSize)));
  const std::size_t off = rng.uniform(kPatternBytes / 64) * 64;
  return {size, bytes_.data() + off};
}

}  // namespace uzram::bench

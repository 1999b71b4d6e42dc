// uzram-codec-bench: every codec over a page corpus, one thread: compress and decompress
// speed, ratio, huge-page share and the ratio zram would get (the table of docs/codecs.md,
// "Measurement").
//
//   uzram-codec-bench CORPUS [--only lzo-rle,lz4]
//
// Same-filled pages are left out (zram stores those as a word in the slot, never
// compressing them). MB/s = 10^6 bytes of page data per second, the fastest of at least 5
// passes over all pages (and at least 1 s in all), which filters out other load; ratio =
// page bytes / compressed bytes; huge pages = compressed size >= 3625 B (huge_class_size
// with the default zspage chain of 8: zram stores them uncompressed); zram ratio = the
// ratio with huge pages counted as 4096 B. --only keeps the rows of those algorithms.
#include <unistd.h>
#include <zdict.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/codec.h"

namespace uzram {
namespace {

using Bytes = std::vector<unsigned char>;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kPage = 4096;
constexpr std::size_t kCap = 2 * kPage;  // zcomp's dst capacity
constexpr std::size_t kHugeClassSize = 3625;
constexpr double kMinSeconds = 1.0;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "uzram-codec-bench: %s\n", what.c_str());
  std::exit(2);
}

bool same_filled(const unsigned char* p) {
  std::uint64_t w0;
  std::memcpy(&w0, p, 8);
  for (std::size_t i = 8; i < kPage; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w != w0) return false;
  }
  return true;
}

// A temporary file holding `content`; removed by the destructor.
class TempFile {
 public:
  explicit TempFile(const Bytes& content) {
    char tmpl[] = "/tmp/uzram-codec-bench-XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd < 0) die("cannot create a temporary file");
    path_ = tmpl;
    std::size_t done = 0;
    while (done < content.size()) {
      const ssize_t w = write(fd, content.data() + done, content.size() - done);
      if (w <= 0) break;
      done += static_cast<std::size_t>(w);
    }
    close(fd);
    if (done != content.size()) die("cannot write " + path_);
  }
  ~TempFile() { unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

CodecSpec spec(const char* name, std::optional<int> level, int winbits = 0, std::string dict = {}) {
  CodecSpec s;
  s.name = name;
  if (level) {
    s.has_level = true;
    s.level = *level;
  }
  s.deflate_winbits = winbits;
  s.dict_path = std::move(dict);
  return s;
}

// The fastest of several passes (at least 5, and kMinSeconds in all), as MB/s of pages.
template <typename F>
double best_pass(std::size_t pages, F one_pass) {
  double best = 1e30, spent = 0;
  for (int pass = 0; pass < 5 || spent < kMinSeconds; ++pass) {
    const auto t0 = Clock::now();
    one_pass();
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, sec);
    spent += sec;
  }
  return static_cast<double>(pages * kPage) / best / 1e6;
}

struct Row {
  const char* label;
  CodecSpec spec;
};

// One table row; dies on a codec failure or a round trip that differs.
void measure(const Row& row, const Bytes& corpus, std::size_t pages) {
  auto made = make_codec(row.spec);
  if (!made) die(std::string(row.label) + ": " + made.error().message());
  Codec& c = **made;
  std::vector<Bytes> comp(pages);
  std::size_t total = 0, zram = 0, huge = 0;
  Bytes dst(kCap), out(kPage);
  for (std::size_t i = 0; i < pages; ++i) {
    const unsigned char* page = corpus.data() + i * kPage;
    auto n = c.compress(page, kPage, dst.data(), dst.size());
    if (!n || *n == 0) {
      die(std::string(row.label) + ": compress failed on page " + std::to_string(i));
    }
    comp[i].assign(dst.begin(), dst.begin() + static_cast<std::ptrdiff_t>(*n));
    total += *n;
    const bool is_huge = *n >= kHugeClassSize;
    huge += is_huge ? 1 : 0;
    zram += is_huge ? kPage : *n;
    if (!c.decompress(comp[i].data(), comp[i].size(), out.data(), kPage) ||
        std::memcmp(out.data(), page, kPage) != 0) {
      die(std::string(row.label) + ": page " + std::to_string(i) + " does not round-trip");
    }
  }
  bool ok = true;
  const double cmbs = best_pass(pages, [&] {
    for (std::size_t i = 0; i < pages; ++i) {
      ok &= c.compress(corpus.data() + i * kPage, kPage, dst.data(), dst.size()).has_value();
    }
  });
  const double dmbs = best_pass(pages, [&] {
    for (std::size_t i = 0; i < pages; ++i) {
      ok &= c.decompress(comp[i].data(), comp[i].size(), out.data(), kPage).has_value();
    }
  });
  if (!ok) die(std::string(row.label) + ": a timed pass failed");
  const double all = static_cast<double>(pages * kPage);
  std::printf("| %s | %.0f | %.0f | %.3f | %.1f %% | %.3f |\n", row.label, cmbs, dmbs,
              all / static_cast<double>(total),
              100.0 * static_cast<double>(huge) / static_cast<double>(pages),
              all / static_cast<double>(zram));
  std::fflush(stdout);
}

int run(const char* path, const std::string& only) {
  std::ifstream in(path, std::ios::binary);
  if (!in) die(std::string("cannot read ") + path);
  const Bytes file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Bytes corpus;
  std::size_t skipped = 0;
  for (std::size_t off = 0; off + kPage <= file.size(); off += kPage) {
    if (same_filled(file.data() + off)) {
      ++skipped;
    } else {
      corpus.insert(corpus.end(), file.begin() + static_cast<std::ptrdiff_t>(off),
                    file.begin() + static_cast<std::ptrdiff_t>(off + kPage));
    }
  }
  const std::size_t pages = corpus.size() / kPage;
  if (pages == 0) die(std::string(path) + ": no page that is not same-filled");

  // A zstd dictionary trained on every 16th page (the rows that use it say so).
  Bytes samples;
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < pages; i += 16) {
    samples.insert(samples.end(), corpus.begin() + static_cast<std::ptrdiff_t>(i * kPage),
                   corpus.begin() + static_cast<std::ptrdiff_t>((i + 1) * kPage));
    sizes.push_back(kPage);
  }
  Bytes zdict(64 * 1024);
  const std::size_t zn = ZDICT_trainFromBuffer(zdict.data(), zdict.size(), samples.data(),
                                               sizes.data(), static_cast<unsigned>(sizes.size()));
  if (ZDICT_isError(zn)) die(std::string("zstd dictionary: ") + ZDICT_getErrorName(zn));
  zdict.resize(zn);
  const TempFile dict_file(zdict);
  const std::string& dict = dict_file.path();

  const Row rows[] = {
      {"lzo-rle", spec("lzo-rle", std::nullopt)},
      {"lzo", spec("lzo", std::nullopt)},
      {"lz4 (acceleration 1)", spec("lz4", std::nullopt)},
      {"lz4 level=8 (acceleration)", spec("lz4", 8)},
      {"lz4hc (level 9)", spec("lz4hc", std::nullopt)},
      {"lz4hc level=12", spec("lz4hc", 12)},
      {"zstd level=-5", spec("zstd", -5)},
      {"zstd level=1", spec("zstd", 1)},
      {"zstd (level 3)", spec("zstd", std::nullopt)},
      {"zstd level=9", spec("zstd", 9)},
      {"deflate level=1", spec("deflate", 1)},
      {"deflate (level 6, winbits -11)", spec("deflate", std::nullopt)},
      {"deflate level=6 winbits=-11 (kernel default)", spec("deflate", std::nullopt, -11)},
      {"deflate level=9", spec("deflate", 9)},
      {"zstd (level 3), 64 KiB trained dict", spec("zstd", std::nullopt, 0, dict)},
      {"lz4 (acceleration 1), same file as raw dict", spec("lz4", std::nullopt, 0, dict)},
      {"lz4hc (level 9), same file as raw dict", spec("lz4hc", std::nullopt, 0, dict)},
  };
  std::printf("%zu pages measured (%zu same-filled pages left out) from %s\n\n", pages, skipped,
              path);
  std::printf("| codec | compress MB/s | decompress MB/s | ratio | huge pages | zram ratio |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  const std::string wanted = only.empty() ? "" : "," + only + ",";
  for (const Row& row : rows) {
    if (wanted.empty() || wanted.find("," + row.spec.name + ",") != std::string::npos) {
      measure(row, corpus, pages);
    }
  }
  return 0;
}

}  // namespace
}  // namespace uzram

int main(int argc, char** argv) {
  const char* const usage = "usage: uzram-codec-bench CORPUS [--only ALGO[,ALGO...]]\n";
  const char* corpus = nullptr;
  std::string only;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage, stdout);
      return 0;
    }
    if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
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
  return uzram::run(corpus, only);
}

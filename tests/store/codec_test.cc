// Codec tests: every codec round-trips every kind of page at several levels; dictionaries
// round-trip, carry no state between pages and improve the ratio on matching data; every
// make_codec() error path; corrupt input never crashes and fails with codec_failed; the
// lzo-rle bitstream against liblzo2 and against the format description. The
// throughput/ratio table of docs/codecs.md is bench/macro/codec_bench.cc.
#include <gtest/gtest.h>
#include <lzo/lzo1x.h>
#include <unistd.h>
#include <zdict.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/codec.h"
#include "store/codec_internal.h"
#include "sync/lock_order.h"
#include "sync/spin_lock.h"
#include "testing/seed.h"
#include "util/random.h"

namespace uzram {
namespace {

namespace lr = codec_internal::lzo_rle;
using testing::fill_random;
using testing::seed_trace;
using testing::test_seed;

using Bytes = std::vector<unsigned char>;

constexpr std::size_t kPage = 4096;
constexpr std::size_t kCap = 2 * kPage;  // zcomp's dst capacity

// ---- page generators ---------------------------------------------------------------------

Bytes zero_page() { return Bytes(kPage, 0); }

Bytes random_page(Random& rng, std::size_t n = kPage) {
  Bytes p(n);
  fill_random(rng, p.data(), n);
  return p;
}

const char* const kWords[] = {
    "the",    "page",   "memory", "kernel", "zram",     "swap",     "compress", "object",
    "handle", "class",  "zspage", "lock",   "free",     "allocate", "size",     "buffer",
    "stream", "device", "read",   "write",  "of",       "and",      "to",       "in",
    "a",      "is",     "that",   "for",    "with",     "on",       "as",       "by",
    "struct", "return", "int",    "void",   "unsigned", "static",   "const",    "if"};

// English-like text: words from a small vocabulary, punctuation, newlines.
Bytes text_page(Random& rng, std::size_t n = kPage) {
  Bytes p;
  p.reserve(n + 16);
  while (p.size() < n) {
    const char* w = kWords[rng.uniform(std::size(kWords))];
    p.insert(p.end(), w, w + std::strlen(w));
    const auto r = rng.uniform(16);
    p.push_back(r == 0 ? '\n' : r == 1 ? ',' : ' ');
  }
  p.resize(n);
  return p;
}

// Long zero runs (up to whole KiBs) between random or text stretches.
Bytes zero_runs_page(Random& rng) {
  Bytes p(kPage, 0);
  std::size_t i = rng.uniform(64);  // sometimes the page starts with zeros
  while (i < kPage) {
    const std::size_t data = std::min<std::size_t>(rng.range(1, 300), kPage - i);
    if (rng.one_in(2)) {
      fill_random(rng, p.data() + i, data);
    } else {
      auto t = text_page(rng, data);
      std::memcpy(p.data() + i, t.data(), data);
    }
    i += data + rng.range(4, rng.one_in(4) ? 2600 : 200);  // the zero gap
  }
  return p;
}

// Partially compressible: a random head, a repetitive tail (or the reverse).
Bytes partial_page(Random& rng) {
  Bytes p = text_page(rng);
  const std::size_t k = rng.range(256, 3840);
  if (rng.one_in(2)) {
    fill_random(rng, p.data(), k);
  } else {
    fill_random(rng, p.data() + kPage - k, k);
  }
  return p;
}

// An array of small little-endian integers: short zero runs everywhere.
Bytes int_array_page(Random& rng) {
  Bytes p(kPage, 0);
  for (std::size_t i = 0; i < kPage; i += 8) {
    const std::uint64_t v = rng.uniform(rng.one_in(8) ? 1u << 20 : 300);
    std::memcpy(p.data() + i, &v, 8);
  }
  return p;
}

// A short pattern repeated, with a few mutations.
Bytes pattern_page(Random& rng) {
  const std::size_t period = rng.range(1, 97);
  Bytes pat = random_page(rng, period);
  Bytes p(kPage);
  for (std::size_t i = 0; i < kPage; ++i) p[i] = pat[i % period];
  for (int k = 0; k < 8; ++k)
    p[rng.uniform(kPage)] ^= static_cast<unsigned char>(rng.range(1, 255));
  return p;
}

// Mostly zero with a few scattered non-zero bytes (including at both ends).
Bytes sparse_page(Random& rng) {
  Bytes p(kPage, 0);
  for (int k = 0; k < 20; ++k)
    p[rng.uniform(kPage)] = static_cast<unsigned char>(rng.range(1, 255));
  p[0] = 1;
  p[kPage - 1] = 2;
  return p;
}

Bytes same_filled_page(Random& rng) {
  return Bytes(kPage, static_cast<unsigned char>(rng.range(1, 255)));
}

// JSON-like records sharing their structure: what dictionaries are good at.
Bytes record_page(Random& rng) {
  static const char* const kKeys[] = {"\"user_id\":",
                                      "\"session\":",
                                      "\"timestamp\":",
                                      "\"status\":\"active\",",
                                      "\"region\":\"eu-west-1\",",
                                      "\"flags\":[\"swap\",\"zram\"],",
                                      "\"latency_us\":"};
  Bytes p;
  p.reserve(kPage + 256);
  while (p.size() < kPage) {
    p.push_back('{');
    for (const char* k : kKeys) {
      p.insert(p.end(), k, k + std::strlen(k));
      if (k[std::strlen(k) - 1] == ':') {
        const auto digits = std::to_string(rng.uniform(1000000007));
        p.insert(p.end(), digits.begin(), digits.end());
        p.push_back(',');
      }
    }
    p.push_back('}');
    p.push_back('\n');
  }
  p.resize(kPage);
  return p;
}

// Every kind, `per_kind` pages each, plus the zero page.
std::vector<Bytes> page_mix(Random& rng, int per_kind) {
  std::vector<Bytes> pages{zero_page()};
  for (int i = 0; i < per_kind; ++i) {
    pages.push_back(random_page(rng));
    pages.push_back(text_page(rng));
    pages.push_back(zero_runs_page(rng));
    pages.push_back(partial_page(rng));
    pages.push_back(int_array_page(rng));
    pages.push_back(pattern_page(rng));
    pages.push_back(sparse_page(rng));
    pages.push_back(same_filled_page(rng));
    pages.push_back(record_page(rng));
  }
  return pages;
}

// ---- helpers ------------------------------------------------------------------------------

struct Config {
  std::string label;  // test-name suffix
  std::string name;
  std::optional<int> level;
  int winbits = 0;
  bool compresses = true;  // false: a setting that hardly compresses (speed extremes)
};

CodecSpec spec_of(const Config& c) {
  CodecSpec s;
  s.name = c.name;
  if (c.level) {
    s.has_level = true;
    s.level = *c.level;
  }
  s.deflate_winbits = c.winbits;
  return s;
}

std::unique_ptr<Codec> must_make(const CodecSpec& spec) {
  auto r = make_codec(spec);
  EXPECT_TRUE(r.has_value()) << spec.name << ": " << r.error().message();
  if (!r) return nullptr;
  return std::move(*r);
}

// Compresses into an exactly kCap-sized heap buffer (so ASan sees any overflow) and
// returns the output in an exactly sized vector.
Bytes must_compress(Codec& c, const Bytes& page, std::size_t cap = kCap) {
  Bytes dst(cap);
  auto r = c.compress(page.data(), page.size(), dst.data(), dst.size());
  EXPECT_TRUE(r.has_value()) << c.name() << ": " << r.error().message();
  if (!r) return {};
  EXPECT_GT(*r, 0u);
  EXPECT_LE(*r, cap);
  dst.resize(*r);
  dst.shrink_to_fit();
  return dst;
}

Result<void> decompress_to(Codec& c, const Bytes& comp, Bytes& out) {
  return c.decompress(comp.data(), comp.size(), out.data(), out.size());
}

// Writes a temporary file; removed by the destructor.
class TempFile {
 public:
  explicit TempFile(const Bytes& content) {
    char tmpl[] = "/tmp/uzram-codec-test-XXXXXX";
    const int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    path_ = tmpl;
    std::size_t done = 0;
    while (done < content.size()) {
      const ssize_t w = write(fd, content.data() + done, content.size() - done);
      if (w <= 0) break;
      done += static_cast<std::size_t>(w);
    }
    EXPECT_EQ(done, content.size());
    close(fd);
  }
  ~TempFile() { unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---- names --------------------------------------------------------------------------------

TEST(CodecNames, KernelOrder) {
  const std::vector<std::string> expected{"lzo-rle", "lzo", "lz4", "lz4hc", "zstd", "deflate"};
  EXPECT_EQ(codec_names(), expected);
  for (const auto& n : expected) {
    EXPECT_TRUE(codec_known(n)) << n;
    CodecSpec s;
    s.name = n;
    auto c = must_make(s);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->name(), n);
  }
  for (const char* n : {"", "LZ4", "lz4 ", "842", "lzo_rle", "zstd\n", "none"}) {
    EXPECT_FALSE(codec_known(n)) << n;
  }
}

// ---- errors -------------------------------------------------------------------------------

Errc make_error(const CodecSpec& s) {
  auto r = make_codec(s);
  if (r) return Errc::ok;
  return static_cast<Errc>(r.error().value());
}

CodecSpec with_level(const char* name, int level) {
  CodecSpec s;
  s.name = name;
  s.has_level = true;
  s.level = level;
  return s;
}

TEST(CodecErrors, UnknownName) {
  for (const char* n : {"", "lz5", "LZO", "zstd:3", "deflate ", "lzo-rle2"}) {
    CodecSpec s;
    s.name = n;
    auto r = make_codec(s);
    ASSERT_FALSE(r.has_value()) << n;
    EXPECT_EQ(r.error(), Errc::unknown_codec);
    EXPECT_EQ(r.error(), std::errc::invalid_argument);
    EXPECT_EQ(r.error().message(), "unknown compression algorithm");
  }
}

TEST(CodecErrors, LevelOutOfRange) {
  struct Case {
    const char* name;
    int level;
  };
  const Case bad[] = {
      {"lz4", 0},
      {"lz4", -1},
      {"lz4", 65538},
      {"lz4hc", 0},
      {"lz4hc", -1},
      {"lz4hc", 13},
      {"zstd", ZSTD_maxCLevel() + 1},
      {"zstd", ZSTD_minCLevel() - 1},
      {"deflate", 0},
      {"deflate", -1},
      {"deflate", 10},
      {"lzo", 1},
      {"lzo", 0},
      {"lzo-rle", 1},
      {"lzo-rle", 0},
  };
  for (const auto& c : bad) {
    auto r = make_codec(with_level(c.name, c.level));
    ASSERT_FALSE(r.has_value()) << c.name << " level " << c.level;
    EXPECT_EQ(r.error(), Errc::bad_level) << c.name << " level " << c.level;
    EXPECT_EQ(r.error().message(), "compression level out of range");
  }
  const Case good[] = {{"lz4", 1},
                       {"lz4", 65537},
                       {"lz4hc", 1},
                       {"lz4hc", 12},
                       {"zstd", ZSTD_maxCLevel()},
                       {"zstd", ZSTD_minCLevel()},
                       {"zstd", 0},
                       {"deflate", 1},
                       {"deflate", 9}};
  for (const auto& c : good) {
    EXPECT_EQ(make_error(with_level(c.name, c.level)), Errc::ok) << c.name << " level " << c.level;
  }
}

TEST(CodecErrors, Dictionary) {
  const TempFile dict(Bytes(1000, 'x'));
  // Unreadable: missing file, a directory, an empty file, a device.
  const TempFile empty(Bytes{});
  for (const char* algo : {"lz4", "lz4hc", "zstd"}) {
    for (const std::string& path : {std::string("/nonexistent/uzram.dict"), std::string("/tmp"),
                                    empty.path(), std::string("/dev/zero")}) {
      CodecSpec s;
      s.name = algo;
      s.dict_path = path;
      auto r = make_codec(s);
      ASSERT_FALSE(r.has_value()) << algo << " " << path;
      EXPECT_EQ(r.error(), Errc::bad_dictionary) << algo << " " << path;
      EXPECT_EQ(r.error().message(), "bad compression dictionary");
    }
  }
  // Algorithms without dictionary support, even with a readable file.
  for (const char* algo : {"lzo", "lzo-rle", "deflate"}) {
    CodecSpec s;
    s.name = algo;
    s.dict_path = dict.path();
    EXPECT_EQ(make_error(s), Errc::bad_dictionary) << algo;
  }
  // A zstd dictionary header with garbage tables: refused by the library.
  Bytes bogus(4096);
  Random rng(test_seed());
  fill_random(rng, bogus.data(), bogus.size());
  const std::uint32_t magic = ZSTD_MAGIC_DICTIONARY;
  std::memcpy(bogus.data(), &magic, 4);
  const TempFile bad_zstd(bogus);
  CodecSpec z;
  z.name = "zstd";
  z.dict_path = bad_zstd.path();
  EXPECT_EQ(make_error(z), Errc::bad_dictionary);
  // The order of checks: the name first, then the level, then the dictionary.
  CodecSpec both = with_level("lzo", 3);
  both.dict_path = "/nonexistent";
  EXPECT_EQ(make_error(both), Errc::bad_level);
  both.name = "nope";
  EXPECT_EQ(make_error(both), Errc::unknown_codec);
}

TEST(CodecErrors, DeflateWinbits) {
  for (int wb : {-15, -11, -9, -8, 8, 9, 12, 15}) {
    CodecSpec s;
    s.name = "deflate";
    s.deflate_winbits = wb;
    EXPECT_EQ(make_error(s), Errc::ok) << wb;
  }
  for (int wb : {-16, -7, -1, 1, 7, 16, 31, 47}) {
    CodecSpec s;
    s.name = "deflate";
    s.deflate_winbits = wb;
    EXPECT_EQ(make_error(s), Errc::invalid_argument) << wb;
  }
  // Like the kernel, other algorithms ignore deflate.winbits.
  CodecSpec s;
  s.name = "lz4";
  s.deflate_winbits = 99;
  EXPECT_EQ(make_error(s), Errc::ok);
}

// Unset levels select the kernel's defaults: lz4 acceleration 1, lz4hc 9, zstd 3, deflate 6.
TEST(CodecDefaults, UnsetLevelIsTheKernelDefault) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  const auto pages = page_mix(rng, 2);
  const std::pair<const char*, int> defaults[] = {
      {"lz4", 1}, {"lz4hc", 9}, {"zstd", 3}, {"deflate", 6}};
  for (const auto& [name, level] : defaults) {
    CodecSpec unset;
    unset.name = name;
    auto a = must_make(unset);
    auto b = must_make(with_level(name, level));
    ASSERT_TRUE(a && b);
    for (const auto& p : pages) EXPECT_EQ(must_compress(*a, p), must_compress(*b, p)) << name;
  }
  // deflate: winbits 0 = -11 (raw, 2 KiB window: the kernel's default).
  CodecSpec d0;
  d0.name = "deflate";
  CodecSpec d15 = d0;
  d15.deflate_winbits = -11;
  auto a = must_make(d0);
  auto b = must_make(d15);
  ASSERT_TRUE(a && b);
  for (const auto& p : pages) EXPECT_EQ(must_compress(*a, p), must_compress(*b, p));
}

// ---- per-codec suite ----------------------------------------------------------------------

class CodecTest : public ::testing::TestWithParam<Config> {
 protected:
  void SetUp() override {
    codec_ = must_make(spec_of(GetParam()));
    other_ = must_make(spec_of(GetParam()));
    ASSERT_NE(codec_, nullptr);
    ASSERT_NE(other_, nullptr);
  }
  std::unique_ptr<Codec> codec_;
  std::unique_ptr<Codec> other_;  // a second stream: zram decompresses on any CPU's stream
};

TEST_P(CodecTest, RoundTripPageMix) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  const auto pages = page_mix(rng, 12);
  std::vector<Bytes> comp;
  comp.reserve(pages.size());
  for (const auto& p : pages) comp.push_back(must_compress(*codec_, p));
  // Decompress on the other stream, in reverse order: no state between pages.
  Bytes out(kPage);
  for (std::size_t i = pages.size(); i-- > 0;) {
    ASSERT_TRUE(decompress_to(*other_, comp[i], out)) << "page " << i;
    ASSERT_EQ(out, pages[i]) << "page " << i;
  }
  // And on the same stream, compressing again gives the same bytes.
  for (std::size_t i = 0; i < pages.size(); ++i) {
    ASSERT_TRUE(decompress_to(*codec_, comp[i], out)) << "page " << i;
    ASSERT_EQ(out, pages[i]) << "page " << i;
    ASSERT_EQ(must_compress(*codec_, pages[i]), comp[i]) << "page " << i;
  }
}

TEST_P(CodecTest, CompressibleKindsShrink) {
  if (!GetParam().compresses) GTEST_SKIP() << "this setting trades the ratio away";
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  EXPECT_LT(must_compress(*codec_, zero_page()).size(), 64u);
  EXPECT_LT(must_compress(*codec_, same_filled_page(rng)).size(), 64u);
  EXPECT_LT(must_compress(*codec_, text_page(rng)).size(), 3000u);
  EXPECT_LT(must_compress(*codec_, sparse_page(rng)).size(), 400u);
  EXPECT_LT(must_compress(*codec_, zero_runs_page(rng)).size(), kPage);
}

TEST_P(CodecTest, OtherSizes) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  for (std::size_t n : {64u, 100u, 1000u, 4095u, 4097u, 16384u, 65536u, 100000u}) {
    for (int kind = 0; kind < 3; ++kind) {
      Bytes p = kind == 0 ? random_page(rng, n) : kind == 1 ? text_page(rng, n) : Bytes(n, 0);
      Bytes comp = must_compress(*codec_, p, 2 * n);
      Bytes out(n);
      ASSERT_TRUE(decompress_to(*other_, comp, out)) << "n " << n << " kind " << kind;
      ASSERT_EQ(out, p) << "n " << n << " kind " << kind;
    }
  }
}

TEST_P(CodecTest, WrongLengthFails) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  for (const auto& p : {zero_page(), text_page(rng), random_page(rng), zero_runs_page(rng)}) {
    const Bytes comp = must_compress(*codec_, p);
    for (std::size_t len : {kPage - 1, kPage + 1, std::size_t{1}, 2 * kPage}) {
      Bytes out(len);
      auto r = decompress_to(*codec_, comp, out);
      ASSERT_FALSE(r.has_value()) << "dst_len " << len;
      EXPECT_EQ(r.error(), Errc::codec_failed);
    }
    // An empty or one-byte source is never a page.
    Bytes out(kPage);
    EXPECT_EQ(codec_->decompress(comp.data(), 0, out.data(), kPage).error(), Errc::codec_failed);
    EXPECT_EQ(codec_->decompress(comp.data(), 1, out.data(), kPage).error(), Errc::codec_failed);
  }
}

// Random data expands: the result may exceed 4096 bytes but stays within 2 * 4096; a
// smaller capacity fails cleanly without writing past it.
TEST_P(CodecTest, IncompressiblePage) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  for (int i = 0; i < 8; ++i) {
    const Bytes p = random_page(rng);
    const Bytes comp = must_compress(*codec_, p);
    ASSERT_FALSE(comp.empty());
    EXPECT_GE(comp.size(), kPage - 64);  // no real compression on random data
    Bytes out(kPage);
    ASSERT_TRUE(decompress_to(*codec_, comp, out));
    ASSERT_EQ(out, p);
    // Too small: an exactly sized buffer (ASan) and a canary behind the capacity.
    for (std::size_t cap : {std::size_t{0}, std::size_t{16}, kPage / 2, comp.size() - 1}) {
      Bytes small(cap);
      auto r = codec_->compress(p.data(), p.size(), small.data(), cap);
      ASSERT_FALSE(r.has_value()) << "cap " << cap;
      EXPECT_EQ(r.error(), Errc::codec_failed);
      Bytes guarded(cap + 64, 0xA5);
      (void)codec_->compress(p.data(), p.size(), guarded.data(), cap);
      for (std::size_t k = cap; k < guarded.size(); ++k)
        ASSERT_EQ(guarded[k], 0xA5) << "cap " << cap;
    }
  }
}

// A capacity equal to the compressed size is enough, one byte less is not.
TEST_P(CodecTest, TightCapacity) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  for (const auto& p : page_mix(rng, 1)) {
    const Bytes comp = must_compress(*codec_, p);
    ASSERT_EQ(must_compress(*codec_, p, comp.size()), comp);
    Bytes small(comp.size() - 1);
    auto r = codec_->compress(p.data(), p.size(), small.data(), small.size());
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), Errc::codec_failed);
  }
}

// Corrupt input: truncations always fail; flipped bytes and garbage either fail with
// codec_failed or decode to some page of the right length; nothing crashes or touches
// memory outside the buffers (ASan).
TEST_P(CodecTest, CorruptInput) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  std::vector<Bytes> pages{zero_page(),       text_page(rng),     zero_runs_page(rng),
                           partial_page(rng), pattern_page(rng),  random_page(rng),
                           record_page(rng),  int_array_page(rng)};
  auto check = [&](const Bytes& bad, const char* what) {
    Bytes out(kPage);
    auto r = decompress_to(*codec_, bad, out);
    if (!r) {
      EXPECT_EQ(r.error(), Errc::codec_failed) << what;
    }
    return r.has_value();
  };
  std::size_t flips = 0, flips_failed = 0;
  for (const auto& p : pages) {
    const Bytes comp = must_compress(*codec_, p);
    // Truncation at every length (sampled for long outputs).
    const std::size_t step = comp.size() > 400 ? comp.size() / 200 : 1;
    for (std::size_t len = 0; len < comp.size(); len += step) {
      Bytes cut(comp.begin(), comp.begin() + static_cast<std::ptrdiff_t>(len));
      ASSERT_FALSE(check(cut, "truncated")) << "length " << len << " of " << comp.size();
    }
    // Trailing bytes: never a valid page of this length.
    for (unsigned char extra : {0x00, 0x5a, 0xff}) {
      Bytes longer = comp;
      longer.push_back(extra);
      ASSERT_FALSE(check(longer, "extended")) << "trailing byte " << int{extra};
    }
    // One byte changed, at every position (sampled for long outputs).
    for (std::size_t pos = 0; pos < comp.size(); pos += step) {
      Bytes bad = comp;
      bad[pos] ^= static_cast<unsigned char>(rng.range(1, 255));
      ++flips;
      if (!check(bad, "flipped")) ++flips_failed;
    }
    // Several random bytes changed.
    for (int k = 0; k < 200; ++k) {
      Bytes bad = comp;
      const auto m = rng.range(2, 8);
      for (std::uint64_t j = 0; j < m; ++j)
        bad[rng.uniform(bad.size())] = static_cast<unsigned char>(rng.next());
      check(bad, "scrambled");
    }
    // A valid prefix followed by garbage.
    for (int k = 0; k < 50; ++k) {
      Bytes bad(comp.begin(), comp.begin() + static_cast<std::ptrdiff_t>(rng.uniform(comp.size())));
      const auto extra = rng.range(1, 64);
      for (std::uint64_t j = 0; j < extra; ++j)
        bad.push_back(static_cast<unsigned char>(rng.next()));
      check(bad, "prefix+garbage");
    }
  }
  // Pure garbage of every small length.
  for (int k = 0; k < 1000; ++k) {
    Bytes bad = random_page(rng, rng.uniform(k < 500 ? 40 : 600));
    check(bad, "garbage");
  }
  // Most single-byte changes are detected; some (a literal byte) legitimately decode.
  RecordProperty("flips", static_cast<int>(flips));
  RecordProperty("flips_failed", static_cast<int>(flips_failed));
  EXPECT_GT(flips_failed, 0u);
}

const Config kConfigs[] = {
    {"lzo_rle", "lzo-rle", std::nullopt},
    {"lzo", "lzo", std::nullopt},
    {"lz4", "lz4", std::nullopt},
    {"lz4_accel8", "lz4", 8},
    {"lz4_accel65537", "lz4", 65537, 0, false},
    {"lz4hc", "lz4hc", std::nullopt},
    {"lz4hc_1", "lz4hc", 1},
    {"lz4hc_4", "lz4hc", 4},
    {"lz4hc_12", "lz4hc", 12},
    {"zstd", "zstd", std::nullopt},
    {"zstd_min", "zstd", ZSTD_minCLevel(), 0, false},
    {"zstd_neg5", "zstd", -5},
    {"zstd_1", "zstd", 1},
    {"zstd_19", "zstd", 19},
    {"zstd_max", "zstd", ZSTD_maxCLevel()},
    {"deflate", "deflate", std::nullopt},
    {"deflate_1", "deflate", 1},
    {"deflate_9", "deflate", 9},
    {"deflate_wb_m11", "deflate", std::nullopt, -11},
    {"deflate_wb_m8", "deflate", 3, -8},
    {"deflate_wb_8", "deflate", 6, 8},
    {"deflate_wb_15", "deflate", 9, 15},
};

INSTANTIATE_TEST_SUITE_P(All, CodecTest, ::testing::ValuesIn(kConfigs),
                         [](const ::testing::TestParamInfo<Config>& param_info) {
                           return param_info.param.label;
                         });

// ---- dictionaries -------------------------------------------------------------------------

struct DictFixture {
  std::vector<Bytes> train;  // pages the dictionary is built from
  std::vector<Bytes> test;   // other pages of the same kind
};

DictFixture record_pages(Random& rng) {
  DictFixture f;
  for (int i = 0; i < 100; ++i) f.train.push_back(record_page(rng));
  for (int i = 0; i < 40; ++i) f.test.push_back(record_page(rng));
  return f;
}

Bytes raw_dictionary(const DictFixture& f, std::size_t pages) {
  Bytes d;
  for (std::size_t i = 0; i < pages && i < f.train.size(); ++i) {
    d.insert(d.end(), f.train[i].begin(), f.train[i].end());
  }
  return d;
}

Bytes trained_zstd_dictionary(const DictFixture& f) {
  Bytes samples;
  std::vector<std::size_t> sizes;
  for (const auto& p : f.train) {
    samples.insert(samples.end(), p.begin(), p.end());
    sizes.push_back(p.size());
  }
  Bytes dict(16 * 1024);
  const std::size_t n = ZDICT_trainFromBuffer(dict.data(), dict.size(), samples.data(),
                                              sizes.data(), static_cast<unsigned>(sizes.size()));
  EXPECT_FALSE(ZDICT_isError(n)) << ZDICT_getErrorName(n);
  if (ZDICT_isError(n)) return {};
  dict.resize(n);
  return dict;
}

// Round trip with a dictionary: compress on one stream, decompress on another (out of
// order), same bytes when compressed again; returns the total compressed size.
std::size_t dict_round_trip(const CodecSpec& spec, const std::vector<Bytes>& pages) {
  auto a = must_make(spec);
  auto b = must_make(spec);
  if (!a || !b) return 0;
  std::vector<Bytes> comp;
  std::size_t total = 0;
  for (const auto& p : pages) {
    comp.push_back(must_compress(*a, p));
    total += comp.back().size();
  }
  Bytes out(kPage);
  for (std::size_t i = pages.size(); i-- > 0;) {
    EXPECT_TRUE(decompress_to(*b, comp[i], out)) << spec.name << " page " << i;
    EXPECT_EQ(out, pages[i]) << spec.name << " page " << i;
    EXPECT_EQ(must_compress(*b, pages[i]), comp[i]) << spec.name << " page " << i;
  }
  return total;
}

TEST(CodecDictionary, ImprovesRatioOnMatchingData) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  const auto f = record_pages(rng);
  const TempFile raw(raw_dictionary(f, 8));
  const TempFile trained(trained_zstd_dictionary(f));
  struct Case {
    const char* name;
    std::optional<int> level;
    const TempFile* dict;
  };
  const Case cases[] = {{"zstd", std::nullopt, &trained}, {"zstd", 1, &trained},
                        {"zstd", 19, &trained},           {"zstd", std::nullopt, &raw},
                        {"lz4", std::nullopt, &raw},      {"lz4", 4, &raw},
                        {"lz4hc", std::nullopt, &raw},    {"lz4hc", 12, &raw}};
  for (const auto& c : cases) {
    CodecSpec plain;
    plain.name = c.name;
    if (c.level) {
      plain.has_level = true;
      plain.level = *c.level;
    }
    CodecSpec with = plain;
    with.dict_path = c.dict->path();
    const std::size_t without_dict = dict_round_trip(plain, f.test);
    const std::size_t with_dict = dict_round_trip(with, f.test);
    EXPECT_LT(with_dict * 10, without_dict * 9)
        << c.name << " level " << c.level.value_or(0) << " dict " << c.dict->path() << ": "
        << with_dict << " vs " << without_dict;
    // Unrelated pages still round-trip with the dictionary.
    dict_round_trip(with, page_mix(rng, 1));
  }
}

TEST(CodecDictionary, OddSizes) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  const auto f = record_pages(rng);
  // Tiny dictionaries, and one larger than lz4's 64 KiB window (only its tail counts).
  std::vector<Bytes> dicts{Bytes{'{', '"'}, Bytes(7, 'a'), raw_dictionary(f, 30)};
  for (const auto& d : dicts) {
    const TempFile file(d);
    for (const char* algo : {"lz4", "lz4hc", "zstd"}) {
      CodecSpec s;
      s.name = algo;
      s.dict_path = file.path();
      dict_round_trip(s, f.test);
      dict_round_trip(s, page_mix(rng, 1));
    }
  }
}

// Data compressed with a dictionary, decompressed without it (or with another one): an
// error or a wrong page, never a crash.
TEST(CodecDictionary, MismatchedDictionaryIsSafe) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  const auto f = record_pages(rng);
  const TempFile d1(raw_dictionary(f, 4));
  const TempFile d2(text_page(rng));
  for (const char* algo : {"lz4", "lz4hc", "zstd"}) {
    CodecSpec s1;
    s1.name = algo;
    s1.dict_path = d1.path();
    CodecSpec s2 = s1;
    s2.dict_path = d2.path();
    CodecSpec none = s1;
    none.dict_path.clear();
    auto c1 = must_make(s1);
    auto c2 = must_make(s2);
    auto c0 = must_make(none);
    ASSERT_TRUE(c1 && c2 && c0);
    for (const auto& p : f.test) {
      const Bytes comp = must_compress(*c1, p);
      Bytes out(kPage);
      for (Codec* c : {c2.get(), c0.get()}) {
        auto r = decompress_to(*c, comp, out);
        if (!r) {
          EXPECT_EQ(r.error(), Errc::codec_failed);
        }
      }
    }
  }
}

// ---- lzo-rle bitstream --------------------------------------------------------------------

Bytes lzo_rle_compress(const Bytes& in, bool rle) {
  std::vector<std::uint32_t> work(lr::kWorkBytes / 4);
  Bytes out(in.size() + in.size() / 8 + 64);
  const std::size_t n =
      lr::compress(in.data(), in.size(), out.data(), out.size(), work.data(), rle);
  EXPECT_GT(n, 0u);
  out.resize(n);
  return out;
}

bool lzo_rle_decompress(const Bytes& comp, Bytes& out) {
  return lr::decompress(comp.data(), comp.size(), out.data(), out.size());
}

bool liblzo_ready() { return lzo_init() == LZO_E_OK; }

TEST(LzoRle, StreamStartsWithVersionMarker) {
  Random rng(test_seed());
  for (const auto& p : page_mix(rng, 1)) {
    const Bytes c = lzo_rle_compress(p, true);
    ASSERT_GE(c.size(), 5u);
    EXPECT_EQ(c[0], 17);
    EXPECT_EQ(c[1], 1);
    EXPECT_EQ(c[c.size() - 3], 17);  // end marker
    EXPECT_EQ(c[c.size() - 2], 0);
    EXPECT_EQ(c[c.size() - 1], 0);
  }
}

// The zero page: one literal, then zero runs of at most 2051 bytes (4 bytes each).
TEST(LzoRle, ZeroPageIsRunLengthEncoded) {
  const Bytes c = lzo_rle_compress(zero_page(), true);
  // The kernel's parse: the first try is at offset 5, and no try starts in the last 20
  // bytes, which end as literals.
  Bytes expected{17,   1,    2,    0,    0, 0, 0, 0,  // header; 5 literals (t - 3 = 2)
                 0x1f, 0xfc, 0xff, 0xff,              // run of 2051: ((255 << 3) | 7) + 4
                 0x18, 0xfc, 0xff, 0xfc,              // run of 2020: (252 << 3) + 4
                 0,    2};                            // 20 literals: 18 + 2
  expected.insert(expected.end(), 20, 0);
  expected.insert(expected.end(), {17, 0, 0});  // end
  EXPECT_EQ(c, expected);
  Bytes out(kPage, 1);
  ASSERT_TRUE(lzo_rle_decompress(c, out));
  EXPECT_EQ(out, zero_page());
}

// Compressed sizes the Linux 6.18 kernel's zram produced for these pages (compr_data_size
// after writing each page alone to /sys/block/zram0, lzo-rle and lzo; see
// docs/codecs.md#lzo-and-lzo-rle): the compressor uses the kernel's parse, so the sizes
// are the same, and so are the huge-page decisions that depend on them.
TEST(LzoRle, SizesMatchTheKernel) {
  struct Case {
    const char* name;
    Bytes page;
    std::size_t rle, plain;
  };
  Bytes last_one(kPage, 0), first_one(kPage, 0), ramp(kPage), island(kPage, 0), words;
  last_one[kPage - 1] = 1;
  first_one[0] = 1;
  for (std::size_t i = 0; i < kPage; ++i) ramp[i] = static_cast<unsigned char>(i % 251);
  for (std::size_t i = 100; i < 150; ++i) island[i] = static_cast<unsigned char>(i * 37 % 256);
  const char* const w[] = {"the ", "cat ", "sat ", "on ", "a ", "mat\n", "dog ", "ran "};
  for (std::uint32_t x = 1; words.size() < kPage;) {
    x = (x * 1103515245u + 12345u) & 0x7fffffffu;
    for (const char* c = w[(x >> 16) % 8]; *c; ++c) words.push_back(static_cast<unsigned char>(*c));
  }
  words.resize(kPage);
  const Case cases[] = {{"last byte 1", last_one, 41, 44},
                        {"first byte 1", first_one, 41, 44},
                        {"i % 251", ramp, 302, 300},
                        {"50 bytes at 100", island, 97, 103},
                        {"words", words, 1721, 1719}};
  for (const Case& c : cases) {
    EXPECT_EQ(lzo_rle_compress(c.page, true).size(), c.rle) << c.name;
    EXPECT_EQ(lzo_rle_compress(c.page, false).size(), c.plain) << c.name;
  }
}

// Streams assembled by hand from the format description, independent of our compressor.
TEST(LzoRle, DecodesHandWrittenStreams) {
  // "abcd", 100 zeros with 2 trailing literals "xy", a 6-byte M2 copy from distance 6
  // ("0000xy"), end.
  const Bytes s1{17,   1,                     // version 1
                 21,   'a',  'b',  'c', 'd',  // 4 literals
                 0x18, 0xfe, 0xff, 12,        // zero run (12 << 3 | 0) + 4 = 100, S = 2
                 'x',  'y',                   //
                 0xb4, 0x00,  // M2: len (0xb4 >> 5) + 1 = 6, D = (0xb4 >> 2) & 7 = 5, H = 0: dist 6
                 17,   0,    0};
  Bytes expect{'a', 'b', 'c', 'd'};
  expect.insert(expect.end(), 100, 0);
  expect.push_back('x');
  expect.push_back('y');
  for (int i = 0; i < 6; ++i) expect.push_back(expect[expect.size() - 6]);
  Bytes out(expect.size());
  ASSERT_TRUE(lzo_rle_decompress(s1, out));
  EXPECT_EQ(out, expect);

  // The same bytes as a version 0 stream: 0x18 0xfe 0xff is then an M4 copy (distance
  // 16384 + 16384 + 16383), out of range: rejected.
  Bytes v0(s1.begin() + 2, s1.end());
  Bytes out0(expect.size());
  EXPECT_FALSE(lzo_rle_decompress(v0, out0));

  // M3 with an extended length and a long literal run after a match:
  // 20 literals (first byte 17 + 20), M3 len 33 + 2 = 35 from distance 20 (repeats),
  // then a long literal run of 5 (0000 0010: 2 + 3), M2 len 4 from distance 1, end.
  Bytes s2{17, 1, 37};
  for (int i = 0; i < 20; ++i) s2.push_back(static_cast<unsigned char>('A' + i));
  s2.insert(s2.end(), {0x20, 0x02, (19 << 2) & 0xff, 19 >> 6});
  s2.push_back(0x02);
  for (int i = 0; i < 5; ++i) s2.push_back(static_cast<unsigned char>('0' + i));
  s2.insert(s2.end(), {0x60, 0x00, 17, 0, 0});  // M2: 011 000 00 -> len 4, dist 1
  Bytes e2;
  for (int i = 0; i < 20; ++i) e2.push_back(static_cast<unsigned char>('A' + i));
  for (int i = 0; i < 35; ++i) e2.push_back(e2[e2.size() - 20]);
  for (int i = 0; i < 5; ++i) e2.push_back(static_cast<unsigned char>('0' + i));
  for (int i = 0; i < 4; ++i) e2.push_back('4');
  Bytes out2(e2.size());
  ASSERT_TRUE(lzo_rle_decompress(s2, out2));
  EXPECT_EQ(out2, e2);
}

TEST(LzoRle, ZeroRunBoundaries) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  for (std::size_t run : {1u, 3u, 4u, 5u, 11u, 12u, 2050u, 2051u, 2052u, 2054u, 2055u, 4102u, 4103u,
                          4105u, 6153u, 6154u}) {
    for (std::size_t where : {0u, 1u, 7u}) {  // at the start, after 1 byte, after 7
      Bytes p = random_page(rng, where);
      p.insert(p.end(), run, 0);
      const Bytes tail = random_page(rng, rng.uniform(10));
      p.insert(p.end(), tail.begin(), tail.end());
      for (auto& b : p) {
        if (&b - p.data() < static_cast<std::ptrdiff_t>(where) && b == 0) b = 1;
      }
      const Bytes c = lzo_rle_compress(p, true);
      Bytes out(p.size());
      ASSERT_TRUE(lzo_rle_decompress(c, out)) << "run " << run << " at " << where;
      ASSERT_EQ(out, p) << "run " << run << " at " << where;
    }
  }
}

// With RLE off the compressor writes plain LZO1X, which liblzo2 decodes; our decoder
// decodes liblzo2's output (LZO1X-1 and LZO1X-999, whose streams use every instruction,
// M1 and M4 included).
TEST(LzoRle, InteroperatesWithLiblzo2) {
  ASSERT_TRUE(liblzo_ready());
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  auto pages = page_mix(rng, 6);
  // Larger inputs: repeats at distances past 16 KiB (M4) and up to 48 KiB.
  for (std::size_t n : {20000u, 70000u, 200000u}) {
    Bytes big = text_page(rng, n);
    for (std::size_t i = 30000; i + 64 < n; i += 997) {
      std::memcpy(big.data() + i, big.data() + i - rng.range(16385, 30000), 64);
    }
    pages.push_back(std::move(big));
  }
  std::vector<unsigned char> wrk1(LZO1X_1_MEM_COMPRESS);
  std::vector<unsigned char> wrk999(LZO1X_999_MEM_COMPRESS);
  for (std::size_t i = 0; i < pages.size(); ++i) {
    const Bytes& p = pages[i];
    // Ours (version 0) -> liblzo2.
    const Bytes ours = lzo_rle_compress(p, false);
    Bytes out(p.size());
    lzo_uint out_len = out.size();
    ASSERT_EQ(lzo1x_decompress_safe(ours.data(), ours.size(), out.data(), &out_len, nullptr),
              LZO_E_OK)
        << "page " << i;
    ASSERT_EQ(out_len, p.size());
    ASSERT_EQ(out, p) << "page " << i;
    // liblzo2 -> ours.
    for (int which = 0; which < 2; ++which) {
      Bytes theirs(p.size() + p.size() / 16 + 64 + 3);
      lzo_uint n = 0;
      const int rc = which == 0
                         ? lzo1x_1_compress(p.data(), p.size(), theirs.data(), &n, wrk1.data())
                         : lzo1x_999_compress(p.data(), p.size(), theirs.data(), &n, wrk999.data());
      ASSERT_EQ(rc, LZO_E_OK);
      theirs.resize(n);
      std::fill(out.begin(), out.end(), 0xEE);
      ASSERT_TRUE(lzo_rle_decompress(theirs, out))
          << "page " << i << " lzo1x_" << (which ? 999 : 1);
      ASSERT_EQ(out, p) << "page " << i;
    }
  }
}

// For data without four zero bytes in a row, the version 1 stream is the version 0 stream
// behind the 2-byte header, so liblzo2 decodes its body.
TEST(LzoRle, WithoutZeroRunsTheBodyIsPlainLzo1x) {
  ASSERT_TRUE(liblzo_ready());
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  for (int i = 0; i < 200; ++i) {
    Bytes p = i % 3 == 0 ? random_page(rng) : i % 3 == 1 ? text_page(rng) : pattern_page(rng);
    for (auto& b : p) {
      if (b == 0) b = 1;
    }
    const Bytes v1 = lzo_rle_compress(p, true);
    const Bytes v0 = lzo_rle_compress(p, false);
    ASSERT_EQ(Bytes(v1.begin() + 2, v1.end()), v0);
    Bytes out(p.size());
    lzo_uint out_len = out.size();
    ASSERT_EQ(lzo1x_decompress_safe(v1.data() + 2, v1.size() - 2, out.data(), &out_len, nullptr),
              LZO_E_OK);
    ASSERT_EQ(out, p);
  }
}

// The lzo-rle codec reads version 0 streams, as the kernel's decompressor does: pages
// written by the lzo codec.
TEST(LzoRle, CodecReadsLzoCodecOutput) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  CodecSpec lzo;
  lzo.name = "lzo";
  CodecSpec rle;
  rle.name = "lzo-rle";
  auto a = must_make(lzo);
  auto b = must_make(rle);
  ASSERT_TRUE(a && b);
  for (const auto& p : page_mix(rng, 3)) {
    const Bytes comp = must_compress(*a, p);
    Bytes out(kPage);
    ASSERT_TRUE(decompress_to(*b, comp, out));
    ASSERT_EQ(out, p);
  }
}

TEST(LzoRle, SmallInputsAndTightBuffers) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  std::vector<std::uint32_t> work(lr::kWorkBytes / 4);
  for (int i = 0; i < 2000; ++i) {
    const std::size_t n = rng.uniform(300);
    Bytes p =
        rng.one_in(2) ? random_page(rng, n) : Bytes(n, static_cast<unsigned char>(rng.uniform(3)));
    if (rng.one_in(3) && n > 0) p[rng.uniform(n)] = 0;
    const bool rle = rng.one_in(2);
    const Bytes c = lzo_rle_compress(p, rle);
    Bytes out(n);
    ASSERT_TRUE(lzo_rle_decompress(c, out)) << "n " << n;
    ASSERT_EQ(out, p);
    // One byte short: fails, and writes nothing past the buffer (exact size: ASan).
    Bytes small(c.size() - 1);
    EXPECT_EQ(lr::compress(p.data(), n, small.data(), small.size(), work.data(), rle), 0u);
  }
}

// Random instruction streams behind a valid header: never out of bounds.
TEST(LzoRle, FuzzDecoder) {
  Random rng(test_seed());
  SCOPED_TRACE(seed_trace(test_seed()));
  int ok = 0;
  for (int i = 0; i < 50000; ++i) {
    Bytes s;
    if (rng.one_in(2)) s = {17, 1};
    const auto n = rng.uniform(48);
    for (std::uint64_t k = 0; k < n; ++k) {
      // Bias towards small bytes, instruction-like bytes and the RLE pattern.
      const auto r = rng.uniform(8);
      s.push_back(r == 0   ? 0
                  : r == 1 ? static_cast<unsigned char>(0x18 | rng.uniform(8))
                  : r == 2 ? 0xff
                  : r == 3 ? 0xfc
                           : static_cast<unsigned char>(rng.next()));
    }
    if (rng.one_in(2)) s.insert(s.end(), {17, 0, 0});
    Bytes out(rng.uniform(kPage + 1));
    ok += lr::decompress(s.data(), s.size(), out.data(), out.size()) ? 1 : 0;
  }
  RecordProperty("decoded", ok);
}

// ---- concurrency, context -----------------------------------------------------------------

// make_codec() is thread-safe (liblzo2's one-time init included); each stream is private.
TEST(CodecThreads, ConcurrentStreams) {
  const std::uint64_t seed = test_seed();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([t, seed, &failures] {
      Random rng(seed + static_cast<std::uint64_t>(t));
      for (const auto& name : codec_names()) {
        CodecSpec s;
        s.name = name;
        auto r = make_codec(s);
        if (!r) {
          failures++;
          continue;
        }
        Codec& c = **r;
        for (const auto& p : page_mix(rng, 1)) {
          Bytes dst(kCap);
          auto n = c.compress(p.data(), p.size(), dst.data(), dst.size());
          Bytes out(kPage);
          if (!n || !c.decompress(dst.data(), *n, out.data(), kPage) || out != p) failures++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// Codec calls may block (allocation in the library): they must not run under a spinning
// lock, and the debug build says so.
TEST(CodecContext, MightSleepUnderSpinLockAborts) {
  if (!kLockDebug) GTEST_SKIP() << "lock-order checker compiled out (UZRAM_DEBUG_LEVEL < 2)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  CodecSpec s;
  s.name = "lz4";
  auto c = must_make(s);
  ASSERT_NE(c, nullptr);
  const Bytes p = zero_page();
  Bytes dst(kCap);
  EXPECT_DEATH(
      {
        SpinLock cls(LockLevel::size_class, "size_class");
        cls.lock();
        (void)c->compress(p.data(), p.size(), dst.data(), dst.size());
      },
      "might_sleep");
  EXPECT_DEATH(
      {
        SpinLock cls(LockLevel::size_class, "size_class");
        cls.lock();
        (void)make_codec(s);
      },
      "might_sleep");
}

}  // namespace
}  // namespace uzram

// store/pp_test_helpers.h - shared by the writeback and recompress tests: a store factory,
// a temporary backing file, page generators of known compressibility, and a model of the
// expected block contents checked against the store.
#ifndef UZRAM_TESTS_STORE_PP_TEST_HELPERS_H_
#define UZRAM_TESTS_STORE_PP_TEST_HELPERS_H_

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "store/store_impl.h"
#include "testing/seed.h"
#include "uzram/store.h"

namespace uzram::testing {

using Page = std::array<unsigned char, kBlockSize>;

// A temporary regular file, removed on destruction.
class TempFile {
 public:
  TempFile() {
    const char* dir = std::getenv("TMPDIR");
    std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/uzram-wb-XXXXXX";
    const int fd = mkstemp(tmpl.data());
    EXPECT_GE(fd, 0) << "mkstemp " << tmpl;
    if (fd >= 0) close(fd);
    path_ = tmpl;
  }
  ~TempFile() { unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  std::uint64_t size() const {
    struct stat st;
    return stat(path_.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  }

 private:
  std::string path_;
};

struct StoreConfig {
  std::string algo = "lz4";
  std::vector<std::string> recomp;  // priority 1, 2, ...
  std::string backing;              // empty = none
  bool compressed_writeback = false;
  std::uint64_t blocks = 256;
};

inline void write_attr_ok(Store& s, const char* name, const std::string& value) {
  std::string msg;
  auto r = s.write_attr(name, value, &msg);
  ASSERT_TRUE(r.has_value()) << name << "=" << value << ": " << msg;
}

inline std::unique_ptr<Store> make_store(const StoreConfig& c) {
  auto r = Store::create("zram-test");
  EXPECT_TRUE(r.has_value());
  if (!r) return nullptr;
  std::unique_ptr<Store> s = std::move(r).value();
  write_attr_ok(*s, "comp_algorithm", c.algo);
  for (std::size_t i = 0; i < c.recomp.size(); i++) {
    write_attr_ok(*s, "recomp_algorithm",
                  "algo=" + c.recomp[i] + " priority=" + std::to_string(i + 1));
  }
  if (!c.backing.empty()) write_attr_ok(*s, "backing_dev", c.backing);
  if (c.compressed_writeback) write_attr_ok(*s, "compressed_writeback", "1");
  write_attr_ok(*s, "disksize", std::to_string(c.blocks * kBlockSize));
  return s;
}

// Incompressible under every algorithm: huge everywhere.
inline Page random_page(Random& rng) {
  Page p;
  fill_random(rng, p.data(), p.size());
  return p;
}

// Random 4-bit symbols: LZ-only codecs (lz4) find almost no matches and store it huge;
// entropy coders (zstd) get it to about half a page.
inline Page nibble_page(Random& rng) {
  Page p;
  for (std::size_t i = 0; i < p.size(); i += 16) {
    const std::uint64_t v = rng.next();
    for (std::size_t j = 0; j < 16; j++)
      p[i + j] = static_cast<unsigned char>('a' + ((v >> (4 * j)) & 15));
  }
  return p;
}

// Word salad: every codec compresses it well (to roughly 1-2 KiB).
inline Page text_page(Random& rng) {
  static const char* const kWords[] = {"the ",    "zram ",   "page ",     "slot ",  "object ",
                                       "class ",  "memory ", "compress ", "write ", "back ",
                                       "device ", "block ",  "idle ",     "huge ",  "pool ",
                                       "handle ", "lock ",   "stream ",   "of ",    "and "};
  Page p;
  std::size_t i = 0;
  while (i < p.size()) {
    const char* w = kWords[rng.uniform(20)];
    for (; *w && i < p.size(); w++) p[i++] = static_cast<unsigned char>(*w);
    if (rng.one_in(7) && i + 4 < p.size()) {  // some digits to keep it from being trivial
      const std::uint64_t v = rng.next();
      for (int k = 0; k < 4; k++) p[i++] = static_cast<unsigned char>('0' + (v >> (8 * k)) % 10);
    }
  }
  return p;
}

inline Page same_page(std::uint64_t word) {
  Page p;
  for (std::size_t i = 0; i < p.size(); i += 8) std::memcpy(&p[i], &word, 8);
  return p;
}

// Expected contents, per block; unlisted blocks read as zeros.
class Model {
 public:
  void write(Store& s, std::uint64_t index, const Page& p) {
    auto r = s.write(index, p.data());
    ASSERT_TRUE(r.has_value()) << "write " << index << ": " << r.error().message();
    pages_[index] = p;
  }
  // Records what a successful s.write(index, p) stored (the caller wrote it).
  void set(std::uint64_t index, const Page& p) { pages_[index] = p; }
  void forget(std::uint64_t index) { pages_.erase(index); }
  const Page* expected(std::uint64_t index) const {
    auto it = pages_.find(index);
    return it == pages_.end() ? nullptr : &it->second;
  }
  // Reads every block of the device and compares.
  void verify(Store& s, std::uint64_t blocks) const {
    Page got, zero{};
    for (std::uint64_t i = 0; i < blocks; i++) {
      auto r = s.read(i, got.data());
      ASSERT_TRUE(r.has_value()) << "read " << i << ": " << r.error().message();
      const Page* want = expected(i);
      ASSERT_EQ(0, std::memcmp(got.data(), want ? want->data() : zero.data(), kBlockSize))
          << "block " << i;
    }
  }

 private:
  std::map<std::uint64_t, Page> pages_;
};

inline Result<void> attr(Store& s, const char* name, const std::string& value,
                         std::string* msg = nullptr) {
  return s.write_attr(name, value, msg);
}

// Slot flags, read under the slot lock (tests only).
inline std::uint32_t slot_flags(Store& s, std::uint64_t index) {
  StoreImpl* st = impl(&s);
  Slot& slot = st->slots_[index];
  Slot& unit = st->slots_[index & ~std::uint64_t{st->unit_blocks_ - 1}];  // its unit lock
  unit.lock();
  const std::uint32_t f = slot.get() & ~slotf::kLock;
  unit.unlock();
  return f;
}

inline unsigned slot_prio(Store& s, std::uint64_t index) {
  return (slot_flags(s, index) & slotf::kPrioMask) >> slotf::kPrioShift;
}

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_STORE_PP_TEST_HELPERS_H_

// Helpers for the unit-store tests (unit_test.cc, unit_codec_test.cc, unit_concurrency_test.cc).
#ifndef UZRAM_TESTS_STORE_UNIT_TEST_UTIL_H_
#define UZRAM_TESTS_STORE_UNIT_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <sched.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "store/store_test_util.h"
#include "uzram/store.h"

namespace uzram::testing {

// A store of `unit` units ("32K") with `algo`, `size` bytes.
inline std::unique_ptr<Store> unit_store(const char* algo, const char* unit,
                                         const char* size = "4M") {
  auto st = std::move(Store::create().value());
  std::string msg;
  EXPECT_TRUE(st->write_attr("comp_algorithm", algo, &msg)) << msg;
  EXPECT_TRUE(st->write_attr("unit_size", unit, &msg)) << msg;
  EXPECT_TRUE(st->write_attr("disksize", size, &msg)) << msg;
  return st;
}

// `blocks` blocks of make_block(kind) contents, seeds from `seed`.
inline std::vector<unsigned char> blocks_of(unsigned blocks, int kind, std::uint64_t seed) {
  std::vector<unsigned char> v(std::size_t{blocks} * kBlockSize);
  for (unsigned k = 0; k < blocks; k++)
    make_block(v.data() + std::size_t{k} * kBlockSize, kind, seed + k);
  return v;
}

inline std::string attr(Store& st, const char* name) {
  std::string msg;
  auto v = st.read_attr(name, &msg);
  EXPECT_TRUE(v) << name << ": " << msg;
  return v ? *v : std::string();
}

inline void set_attr(Store& st, const char* name, const char* value) {
  std::string msg;
  EXPECT_TRUE(st.write_attr(name, value, &msg)) << name << "=" << value << ": " << msg;
}

// Pins the calling thread to one CPU while alive (a stream is picked by CPU: a test that
// counts cache hits must stay on one), restoring the old mask after.
class PinToOneCpu {
 public:
  PinToOneCpu() {
    ok_ = sched_getaffinity(0, sizeof old_, &old_) == 0;
    if (!ok_) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++) {
      if (CPU_ISSET(c, &old_)) {
        CPU_SET(c, &one);
        break;
      }
    }
    ok_ = sched_setaffinity(0, sizeof one, &one) == 0;
  }
  ~PinToOneCpu() {
    if (ok_) sched_setaffinity(0, sizeof old_, &old_);
  }
  PinToOneCpu(const PinToOneCpu&) = delete;
  PinToOneCpu& operator=(const PinToOneCpu&) = delete;

 private:
  cpu_set_t old_;
  bool ok_ = false;
};

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_STORE_UNIT_TEST_UTIL_H_

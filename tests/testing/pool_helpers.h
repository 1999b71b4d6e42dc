// testing/pool_helpers.h - small helpers shared by the pool tests: creating pools, and a
// reader thread that holds read_begin() on objects until told to let go.
#ifndef UZRAM_TESTS_TESTING_POOL_HELPERS_H_
#define UZRAM_TESTS_TESTING_POOL_HELPERS_H_

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "pool/pool_internal.h"
#include "uzram/pool.h"

namespace uzram::testing {

inline std::unique_ptr<Pool> make_pool(unsigned chain = 8,
                                       TranslationMode mode = TranslationMode::validated,
                                       std::size_t max_bytes = std::size_t{1} << 30) {
  PoolOptions o;
  o.name = "test";
  o.chain_size = chain;
  o.max_bytes = max_bytes;
  auto r = create_pool(o, mode);
  EXPECT_TRUE(r.has_value()) << r.error().message();
  return r ? std::move(r).value() : nullptr;
}

inline const char* mode_name(TranslationMode m) {
  return m == TranslationMode::validated ? "validated" : "kernel_rwlock";
}

// The (chain size, translation mode) grid of the parameterised pool tests, and its test
// names ("chain8_validated").
using ChainMode = std::tuple<unsigned, TranslationMode>;
inline auto chain_mode_grid() {
  return ::testing::Combine(
      ::testing::Values(4u, 8u, 16u),
      ::testing::Values(TranslationMode::validated, TranslationMode::kernel_rwlock));
}
inline std::string chain_mode_name(const ::testing::TestParamInfo<ChainMode>& i) {
  return "chain" + std::to_string(std::get<0>(i.param)) + "_" + mode_name(std::get<1>(i.param));
}

// Holds the zspage read lock of each handle (read_begin), each on its own thread, as
// readers that sleep between read_begin and read_end would; the test thread holds no lock,
// so it may compact or migrate meanwhile. (One thread per handle: a thread holding a
// zspage read lock may not translate another handle in kernel_rwlock mode - the pool lock
// ranks before the zspage lock.) The destructor releases (read_end) and joins.
class HeldReads {
 public:
  HeldReads(Pool& pool, const std::vector<Handle>& handles) : pool_(pool) {
    for (Handle h : handles) {
      threads_.emplace_back([this, h] {
        std::vector<unsigned char> copy(kPageSize);
        const void* mem = pool_.read_begin(h, copy.data());
        std::unique_lock<std::mutex> lk(mu_);
        held_++;
        cv_.notify_all();
        cv_.wait(lk, [this] { return release_; });
        lk.unlock();
        pool_.read_end(h, mem);
      });
    }
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return held_ == handles.size(); });
  }
  ~HeldReads() { release(); }
  HeldReads(const HeldReads&) = delete;
  HeldReads& operator=(const HeldReads&) = delete;

  void release() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      release_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  Pool& pool_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t held_ = 0;
  bool release_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_TESTING_POOL_HELPERS_H_

// testing/pool_helpers.h - small helpers shared by the pool tests: creating pools, and a
// reader thread that holds read_begin() on objects until told to let go.
#ifndef UZRAM_TESTS_TESTING_POOL_HELPERS_H_
#define UZRAM_TESTS_TESTING_POOL_HELPERS_H_

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "uzram/pool.h"

namespace uzram::testing {

inline std::unique_ptr<Pool> make_pool(unsigned chain = 8,
                                       TranslationMode mode = TranslationMode::validated,
                                       std::size_t max_bytes = std::size_t{1} << 30) {
  PoolOptions o;
  o.name = "test";
  o.chain_size = chain;
  o.translation = mode;
  o.max_bytes = max_bytes;
  auto r = Pool::create(o);
  EXPECT_TRUE(r.has_value()) << r.error().message();
  return r ? std::move(r).value() : nullptr;
}

inline const char* mode_name(TranslationMode m) {
  return m == TranslationMode::validated ? "validated" : "kernel_rwlock";
}

// Holds the zspage read lock of each handle (read_begin) on its own thread, as a reader
// that sleeps between read_begin and read_end would; the test thread stays lock-free, so
// it may compact or migrate meanwhile. The destructor releases (read_end) and joins.
class HeldReads {
 public:
  HeldReads(Pool& pool, std::vector<Handle> handles) : pool_(pool), handles_(std::move(handles)) {
    thread_ = std::thread([this] {
      std::vector<unsigned char> copy(kPageSize * handles_.size());
      std::vector<const void*> mems;
      for (std::size_t i = 0; i < handles_.size(); ++i) {
        mems.push_back(pool_.read_begin(handles_[i], copy.data() + i * kPageSize));
      }
      std::unique_lock<std::mutex> lk(mu_);
      held_ = true;
      cv_.notify_all();
      cv_.wait(lk, [this] { return release_; });
      for (std::size_t i = 0; i < handles_.size(); ++i) pool_.read_end(handles_[i], mems[i]);
    });
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return held_; });
  }
  ~HeldReads() { release(); }
  HeldReads(const HeldReads&) = delete;
  HeldReads& operator=(const HeldReads&) = delete;

  void release() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lk(mu_);
      release_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  Pool& pool_;
  std::vector<Handle> handles_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  bool release_ = false;
  std::thread thread_;
};

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_TESTING_POOL_HELPERS_H_

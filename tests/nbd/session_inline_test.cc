// tests/nbd/session_inline_test.cc - the reader runs a request itself at iodepth 1
// (Session::run_inline, docs/uzram-serve.md): a client that waits for each reply has its
// reads run on one thread once it is in step, a quick one too; pipelined requests still go
// to the workers side by side; a write then a read at iodepth 1 read back what was written.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "nbd/session_testing.h"

namespace uzram::nbd::testing {
namespace {

constexpr std::size_t kDisk = 1 << 20;

// A MemoryBackend whose reads record their thread and take `delay` each.
class ThreadsBackend final : public Backend {
 public:
  std::uint64_t size() const noexcept override { return mem_.size(); }
  std::uint32_t read(std::uint64_t off, std::uint32_t len, void* buf) noexcept override {
    {
      std::lock_guard l(mu_);
      threads_.push_back(std::this_thread::get_id());
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    return mem_.read(off, len, buf);
  }
  std::uint32_t write(std::uint64_t off, std::uint32_t len, const void* buf) noexcept override {
    return mem_.write(off, len, buf);
  }
  std::uint32_t trim(std::uint64_t off, std::uint32_t len) noexcept override {
    return mem_.trim(off, len);
  }
  std::uint32_t zero(std::uint64_t off, std::uint32_t len, bool h) noexcept override {
    return mem_.zero(off, len, h);
  }
  std::uint32_t block_status(std::uint64_t off, std::uint32_t len, Extent* out, std::size_t max,
                             std::size_t* count) noexcept override {
    return mem_.block_status(off, len, out, max, count);
  }
  std::vector<std::thread::id> take_threads() {
    std::lock_guard l(mu_);
    return std::exchange(threads_, {});
  }
  std::chrono::milliseconds delay{0};

 private:
  MemoryBackend mem_{kDisk};
  std::mutex mu_;
  std::vector<std::thread::id> threads_;
};

// How many of the requests [first, end) of take_threads() ran on their busiest thread
// (*threads: on how many threads they ran).
unsigned most_on_one_thread(std::vector<std::thread::id>::const_iterator first,
                            std::vector<std::thread::id>::const_iterator end,
                            std::size_t* threads) {
  std::map<std::thread::id, unsigned> per_thread;
  for (auto it = first; it != end; ++it) per_thread[*it]++;
  unsigned most = 0;
  for (const auto& [id, n] : per_thread) most = std::max(most, n);
  *threads = per_thread.size();
  return most;
}

// Eight reads at iodepth 1, so that the reader runs the next request itself; forgets
// their threads.
void get_in_step(SessionPair& s, ThreadsBackend& b) {
  for (std::uint64_t i = 0; i < 8; i++) {
    ASSERT_TRUE(s.request(kCmdRead, i, 0, 4096));
    ASSERT_EQ(s.reply({{i, {0, 4096}}}).error, 0u);
  }
  (void)b.take_threads();
}

TEST(SessionInline, IodepthOneRunsOnTheReader) {
  ThreadsBackend b;
  SessionOptions o;
  o.workers = 4;
  SessionPair s(b, false, o);
  std::vector<std::uint8_t> block(4096);
  for (std::uint64_t i = 0; i < 40; i++) {  // a write then its read back, waiting for each
    for (auto& c : block) c = static_cast<std::uint8_t>(i * 7 + 1);
    ASSERT_TRUE(s.request(kCmdWrite, 2 * i, i * 4096, 4096, block.data()));
    Reply w = s.reply({});
    ASSERT_EQ(w.error, 0u);
    ASSERT_TRUE(s.request(kCmdRead, 2 * i + 1, i * 4096, 4096));
    Reply r = s.reply({{2 * i + 1, {i * 4096, 4096}}});
    ASSERT_EQ(r.error, 0u);
    ASSERT_EQ(r.data, block) << i;
  }
  const auto t = b.take_threads();
  ASSERT_EQ(t.size(), 40u);
  // In step after a few requests: later reads on one thread, the reader's. (A worker counts
  // its job done only after sending the reply, so on a busy machine the client may come
  // back while it still seems busy; such a request goes to a worker: most, not all.)
  std::size_t threads = 0;
  EXPECT_GE(most_on_one_thread(t.begin() + 20, t.end(), &threads), 10u)
      << threads << " threads ran the last 20 reads";
}

// A client at iodepth 1 that sends its next request as soon as a reply arrives, while the
// reader is still busy after sending that reply (here it sleeps 2 ms: preempted by the
// client it woke): the request found waiting then was sent after the reply, so the
// client stays on the reader. (Looking for input after the reply sent such a client back
// to the workers for the next four requests each time.)
TEST(SessionInline, AQuickClientStaysOnTheReader) {
  ThreadsBackend b;
  SessionOptions o;
  o.workers = 4;
  SessionPair s(b, false, o, std::chrono::milliseconds(2));
  ASSERT_NO_FATAL_FAILURE(get_in_step(s, b));
  for (std::uint64_t i = 0; i < 30; i++) {
    ASSERT_TRUE(s.request(kCmdRead, 100 + i, i * 4096, 4096));
    ASSERT_EQ(s.reply({{100 + i, {i * 4096, 4096}}}).error, 0u);
  }
  const auto t = b.take_threads();
  ASSERT_EQ(t.size(), 30u);
  // Most, not all: a worker still finishing the step's last request skips one.
  std::size_t threads = 0;
  EXPECT_GE(most_on_one_thread(t.begin(), t.end(), &threads), 25u)
      << threads << " threads ran the 30 reads";
}

TEST(SessionInline, PipelinedRequestsStillRunSideBySide) {
  ThreadsBackend b;
  SessionOptions o;
  o.workers = 4;
  SessionPair s(b, false, o);
  ASSERT_NO_FATAL_FAILURE(get_in_step(s, b));
  b.delay = std::chrono::milliseconds(20);
  constexpr std::uint64_t kBurst = 16;
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint32_t>> reads;
  for (std::uint64_t i = 0; i < kBurst; i++) {
    reads[100 + i] = {i * 4096, 4096};
    ASSERT_TRUE(s.request(kCmdRead, 100 + i, i * 4096, 4096));
  }
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < kBurst; i++) ASSERT_EQ(s.reply(reads).error, 0u);
  const auto took = std::chrono::steady_clock::now() - start;
  const auto t = b.take_threads();
  EXPECT_GE(std::set<std::thread::id>(t.begin(), t.end()).size(), 2u);
  // One at a time would take 16 x 20 ms; the workers overlap their sleeps.
  EXPECT_LT(took, std::chrono::milliseconds(16 * 20));
}

// A client that was in step, then keeps two requests in flight (its second arrives while
// the reader runs the first, and it sends the next one when a reply comes back): the
// request found waiting as an inline reply is about to go out sends the client back to the
// workers, so its two requests overlap rather than running one at a time on the reader.
TEST(SessionInline, TwoInFlightGoBackToTheWorkers) {
  ThreadsBackend b;
  SessionOptions o;
  o.workers = 4;
  SessionPair s(b, false, o);
  ASSERT_NO_FATAL_FAILURE(get_in_step(s, b));
  b.delay = std::chrono::milliseconds(50);
  constexpr std::uint64_t kCount = 16;
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint32_t>> reads;
  for (std::uint64_t i = 0; i < kCount; i++) reads[100 + i] = {i * 4096, 4096};
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(s.request(kCmdRead, 100, 0, 4096));  // alone: the reader runs it
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(s.request(kCmdRead, 101, 4096, 4096));  // waits in the socket meanwhile
  for (std::uint64_t i = 2; i < kCount + 2; i++) {
    ASSERT_EQ(s.reply(reads).error, 0u);
    if (i < kCount) {
      ASSERT_TRUE(s.request(kCmdRead, 100 + i, i * 4096, 4096));
    }
  }
  const auto took = std::chrono::steady_clock::now() - start;
  // One at a time: 16 x 50 ms; two at a time about half of that.
  EXPECT_LT(took, std::chrono::milliseconds(kCount * 50 * 7 / 8))
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
}

}  // namespace
}  // namespace uzram::nbd::testing

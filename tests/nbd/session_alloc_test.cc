// tests/nbd/session_alloc_test.cc - a preallocated session (uzram serve --swap) serves
// requests without one heap allocation: this binary replaces operator new and counts the
// calls made while a window of requests is served (WRITE and READ shorter and longer than
// a piece, structured READ with holes, BLOCK_STATUS, TRIM, WRITE_ZEROES, FLUSH). The same
// window on demand allocates, which shows the count is live.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

#include "nbd/session_testing.h"

// Sanitizer runtimes bring their own operator new: no replacement, and the test skips.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UZRAM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UZRAM_SANITIZED 1
#endif
#endif

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocs{0};

[[maybe_unused]] void* counted(std::size_t n) noexcept {  // unused when sanitized
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
  }
  return std::malloc(n == 0 ? 1 : n);
}
}  // namespace

#ifndef UZRAM_SANITIZED
void* operator new(std::size_t n) {
  void* p = counted(n);
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new[](std::size_t n) {
  void* p = counted(n);
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace uzram::nbd::testing {
namespace {

constexpr std::size_t kDisk = 8 << 20;

// Sends the window's requests (the client's buffers are made before counting starts) and
// reads every reply into preallocated space; returns the replies' errors or-ed.
long serve_window(bool preallocate, bool structured) {
  MemoryBackend backend(kDisk);
  SessionOptions o;
  o.workers = 2;
  if (preallocate) {
    o.preallocate = true;
    o.piece_bytes = 64 << 10;
    o.max_in_flight_bytes = 256 << 10;
    o.max_jobs = 16;
  }
  SessionPair s(backend, structured, o);
  static std::uint8_t payload[1 << 20];
  static std::uint8_t sink[(1 << 20) + 4096];
  for (std::size_t i = 0; i < sizeof payload; i++)
    payload[i] = i % 3 ? static_cast<std::uint8_t>(i) : 0;
  // Warm up: the first request of each kind (thread-local state of the C++ runtime).
  EXPECT_TRUE(s.request(kCmdWrite, 1, 0, 4096, payload));
  EXPECT_TRUE(read_all(s.client, sink, structured ? kChunkHeaderSize : kSimpleReplySize));
  g_allocs = 0;
  g_counting = true;
  struct Q {
    std::uint16_t type;
    std::uint64_t off;
    std::uint32_t len;
    std::uint16_t flags;
  };
  const Q qs[] = {{kCmdWrite, 4096, 5000, 0},      {kCmdWrite, 1 << 20, 1 << 20, kCmdFlagFua},
                  {kCmdRead, 4096, 5000, 0},       {kCmdRead, 1 << 20, 1 << 20, 0},
                  {kCmdRead, 3 << 20, 1 << 20, 0}, {kCmdTrim, 1 << 20, 65536, 0},
                  {kCmdWriteZeroes, 0, 8192, 0},   {kCmdFlush, 0, 0, 0}};
  for (const Q& q : qs) {
    EXPECT_TRUE(
        s.request(q.type, 2, q.off, q.len, q.type == kCmdWrite ? payload : nullptr, q.flags));
    // Drain the reply with fixed buffers: its chunks until DONE (or the simple reply).
    for (;;) {
      std::uint8_t h[kChunkHeaderSize];
      if (!structured) {
        EXPECT_TRUE(read_all(s.client, h, kSimpleReplySize));
        EXPECT_EQ(get32(h + 4), 0u);
        if (q.type == kCmdRead) {
          EXPECT_TRUE(read_all(s.client, sink, q.len));
        }
        break;
      }
      EXPECT_TRUE(read_all(s.client, h, kChunkHeaderSize));
      EXPECT_NE(get16(h + 6), kChunkError);
      const std::uint32_t n = get32(h + 16);
      EXPECT_LE(n, sizeof sink);
      if (n > 0) {
        EXPECT_TRUE(read_all(s.client, sink, n));
      }
      if (get16(h + 4) & kChunkFlagDone) break;
    }
  }
  g_counting = false;
  return g_allocs.load();
}

TEST(SessionAlloc, PreallocatedServesWithoutAllocating) {
#ifdef UZRAM_SANITIZED
  GTEST_SKIP() << "sanitizer build: operator new is the sanitizer's";
#endif
  EXPECT_EQ(serve_window(true, false), 0);
  EXPECT_EQ(serve_window(true, true), 0);
}

TEST(SessionAlloc, OnDemandAllocates) {
#ifdef UZRAM_SANITIZED
  GTEST_SKIP() << "sanitizer build: operator new is the sanitizer's";
#endif
  EXPECT_GT(serve_window(false, false), 0);
}

}  // namespace
}  // namespace uzram::nbd::testing

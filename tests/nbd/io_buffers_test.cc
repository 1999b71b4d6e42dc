// tests/nbd/io_buffers_test.cc - the data buffers of on-demand sessions (nbd/io_buffers.h):
// the kept list's rules, and a burst of large pipelined requests after which no buffer is
// left (the server's buffer bytes back to zero), as the memory breakdown counts them.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include "nbd/io_buffers.h"
#include "nbd/session_testing.h"
#include "nbd/stats.h"

namespace uzram::nbd::testing {
namespace {

TEST(IoBuffers, SizesAndMapping) {
  EXPECT_EQ(io_buffer_bytes(100), 100u);
  EXPECT_EQ(io_buffer_bytes(kMapThreshold - 1), kMapThreshold - 1);
  EXPECT_EQ(io_buffer_bytes(kMapThreshold + 1), kMapThreshold + 4096);
  ServerStats stats;
  std::uint8_t* small = map_buffer(100, &stats);
  std::uint8_t* big = map_buffer((256 << 10) - 10, &stats);
  ASSERT_TRUE(small && big);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(big) % 4096, 0u);
  big[(256 << 10) - 11] = 1;
  EXPECT_EQ(stats.snapshot().buffer_bytes, 100u + (256 << 10));
  unmap_buffer(small, 100, &stats);
  unmap_buffer(big, (256 << 10) - 10, &stats);
  unmap_buffer(nullptr, 1 << 20, &stats);
  EXPECT_EQ(stats.snapshot().buffer_bytes, 0u);
}

TEST(IoBuffers, CacheKeepsLargeBuffersWithinItsBounds) {
  IoBufferCache c;
  std::uint8_t* small = map_buffer(4096, nullptr);
  EXPECT_FALSE(c.keep(small, 4096));  // below the threshold: the heap's
  unmap_buffer(small, 4096, nullptr);
  std::vector<std::uint8_t*> bufs;
  const std::size_t piece = 256 << 10;
  for (std::size_t i = 0; i < kCacheEntries + 1; i++) bufs.push_back(map_buffer(piece, nullptr));
  std::size_t kept = 0;
  for (std::uint8_t* p : bufs) {
    if (c.keep(p, piece)) {
      kept++;
    } else {
      unmap_buffer(p, piece, nullptr);
    }
  }
  EXPECT_EQ(kept, std::min(kCacheEntries, kCacheBytes / piece));
  EXPECT_EQ(c.kept_bytes(), kept * piece);
  EXPECT_EQ(c.take(piece + 4096), nullptr);   // another size
  std::uint8_t* again = c.take(piece - 100);  // the same pages
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(c.kept_bytes(), (kept - 1) * piece);
  unmap_buffer(again, piece, nullptr);
  std::uint8_t* out[kCacheEntries];
  std::size_t sizes[kCacheEntries];
  const std::size_t n = c.drain(out, sizes);
  EXPECT_EQ(n, kept - 1);
  for (std::size_t i = 0; i < n; i++) {
    EXPECT_EQ(sizes[i], piece);
    unmap_buffer(out[i], sizes[i], nullptr);
  }
  EXPECT_EQ(c.kept_bytes(), 0u);
  EXPECT_EQ(c.take(piece), nullptr);
}

// 256 KiB writes, reads and block status requests pipelined 16 at a time: the replies are
// right, and once the last one is answered every buffer is given back (none kept).
TEST(IoBuffers, NothingStaysAfterABurst) {
  MemoryBackend backend(8 << 20);
  ServerStats stats;
  SessionOptions o;
  o.workers = 3;
  o.stats = &stats;
  SessionPair s(backend, true, o);
  constexpr std::uint32_t kLen = 256 << 10;
  std::vector<std::uint8_t> data(kLen);
  for (int round = 0; round < 4; round++) {
    std::map<std::uint64_t, std::pair<std::uint64_t, std::uint32_t>> reads;
    std::uint64_t cookie = 1;
    for (int i = 0; i < 16; i++) {
      for (std::size_t k = 0; k < kLen; k++) data[k] = static_cast<std::uint8_t>(i + k / 4096);
      ASSERT_TRUE(s.request(kCmdWrite, cookie++, std::uint64_t(i) * kLen, kLen, data.data()));
    }
    for (std::size_t i = 0; i < 16; i++) ASSERT_FALSE(s.reply({}).error);
    for (int i = 0; i < 16; i++) {
      reads[cookie] = {std::uint64_t(i) * kLen, kLen};
      ASSERT_TRUE(s.request(kCmdRead, cookie++, std::uint64_t(i) * kLen, kLen));
      ASSERT_TRUE(s.request(kCmdBlockStatus, cookie++, 0, 8 << 20));
    }
    for (int i = 0; i < 32; i++) {
      const Reply r = s.reply(reads);
      ASSERT_FALSE(r.closed);
      ASSERT_EQ(r.error, 0u);
      if (reads.count(r.cookie)) {
        const int blk = static_cast<int>(reads[r.cookie].first / kLen);
        for (std::size_t k = 0; k < kLen; k += 4096)
          ASSERT_EQ(r.data[k], static_cast<std::uint8_t>(blk + k / 4096));
      }
    }
    // A reply goes out before its buffers are given back: wait for the last release.
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (stats.snapshot().buffer_bytes != 0 && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_EQ(stats.snapshot().buffer_bytes, 0u) << "round " << round;
  }
}

}  // namespace
}  // namespace uzram::nbd::testing

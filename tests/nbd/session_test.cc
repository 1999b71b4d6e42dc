// tests/nbd/session_test.cc - transmission over a socketpair against a memory backend, on
// demand and preallocated (uzram serve --swap): random pipelined requests against a
// reference model (READ and WRITE longer than a piece, holes, trims, zeroes), simple and
// structured replies, a read error in the middle of a long reply, block status bounded by
// a piece, and more requests in flight than the preallocated slots.
#include <gtest/gtest.h>

#include <map>
#include <thread>
#include <vector>

#include "nbd/session_testing.h"
#include "testing/seed.h"

namespace uzram::nbd::testing {
namespace {

constexpr std::size_t kDisk = 4 << 20;

struct Mode {
  const char* name;
  bool structured;
  bool preallocate;
};

SessionOptions options(const Mode& m) {
  SessionOptions o;
  o.workers = 3;
  if (m.preallocate) {
    o.preallocate = true;
    o.piece_bytes = 8192;
    o.max_in_flight_bytes = 4 * 8192;
    o.max_jobs = 6;
  }
  return o;
}

class SessionModel : public ::testing::TestWithParam<Mode> {};

// Bursts of up to 12 requests, each in its own 256 KiB region (requests in flight are not
// ordered), sent by a writer thread while the replies are read and checked.
TEST_P(SessionModel, RandomPipelinedRequestsMatchTheModel) {
  const std::uint64_t seed = uzram::testing::test_seed();
  SCOPED_TRACE(uzram::testing::seed_trace(seed));
  Random rng(seed);
  MemoryBackend backend(kDisk);
  std::vector<std::uint8_t> model(kDisk, 0);
  SessionPair s(backend, GetParam().structured, options(GetParam()));
  constexpr std::uint64_t kRegion = 256 << 10;
  std::uint64_t cookie = 1;
  for (int burst = 0; burst < 60; burst++) {
    struct Req {
      std::uint16_t type;
      std::uint16_t flags;
      std::uint64_t off;
      std::uint32_t len;
      std::vector<std::uint8_t> payload;
    };
    std::map<std::uint64_t, Req> sent;
    std::map<std::uint64_t, std::pair<std::uint64_t, std::uint32_t>> reads;
    const int n = static_cast<int>(rng.range(1, 12));
    for (int i = 0; i < n; i++) {
      Req q;
      const std::uint64_t region = static_cast<std::uint64_t>(i) * kRegion;
      // Lengths around the piece (8 KiB) and the in-flight budget, odd offsets.
      q.len = static_cast<std::uint32_t>(rng.one_in(3) ? rng.range(1, 9000)
                                                       : rng.range(1, kRegion - 1));
      q.off = region + rng.uniform(kRegion - q.len + 1);
      const unsigned pick = static_cast<unsigned>(rng.uniform(10));
      q.type = pick < 4 ? kCmdWrite : pick < 8 ? kCmdRead : pick < 9 ? kCmdTrim : kCmdWriteZeroes;
      q.flags = 0;
      if (q.type == kCmdRead && GetParam().structured && rng.one_in(3)) q.flags = kCmdFlagDf;
      if (q.type == kCmdWrite) {
        q.payload.resize(q.len);
        uzram::testing::fill_random(rng, q.payload.data(), q.len);
        // Zero runs, so that reads have holes to find.
        const std::size_t z = rng.uniform(q.len);
        std::fill(q.payload.begin() + static_cast<long>(z),
                  q.payload.begin() + static_cast<long>(std::min<std::size_t>(q.len, z + 70000)),
                  0);
        if (rng.one_in(4)) q.flags = kCmdFlagFua;
      }
      if (q.type == kCmdRead) reads[cookie] = {q.off, q.len};
      sent.emplace(cookie++, std::move(q));
    }
    std::thread writer([&] {
      for (const auto& [c, q] : sent) {
        ASSERT_TRUE(s.request(q.type, c, q.off, q.len,
                              q.payload.empty() ? nullptr : q.payload.data(), q.flags));
      }
    });
    // The checks in a lambda: a failed ASSERT returns from it, the socket is shut down so
    // that the writer ends too, and the test stops after the join.
    [&] {
      for (int i = 0; i < n; i++) {
        const Reply r = s.reply(reads);
        ASSERT_FALSE(r.closed);
        ASSERT_EQ(r.error, 0u) << "cookie " << r.cookie;
        const auto it = sent.find(r.cookie);
        ASSERT_NE(it, sent.end());
        const Req& q = it->second;
        if (q.type == kCmdRead) {
          ASSERT_EQ(r.data.size(), q.len);
          ASSERT_TRUE(
              std::equal(r.data.begin(), r.data.end(), model.begin() + static_cast<long>(q.off)))
              << "read " << q.len << " at " << q.off;
          if (GetParam().structured) {
            EXPECT_EQ(std::count(r.covered.begin(), r.covered.end(), false), 0);
            if (q.flags & kCmdFlagDf) {
              EXPECT_EQ(r.chunks, 1u);
            }
          }
        }
      }
    }();
    if (::testing::Test::HasFatalFailure()) ::shutdown(s.client, SHUT_RDWR);
    writer.join();
    if (::testing::Test::HasFatalFailure()) return;
    for (const auto& [c, q] : sent) {  // apply after: nothing in a burst overlaps
      if (q.type == kCmdWrite)
        std::copy(q.payload.begin(), q.payload.end(), model.begin() + static_cast<long>(q.off));
      if (q.type == kCmdTrim || q.type == kCmdWriteZeroes)
        std::fill_n(model.begin() + static_cast<long>(q.off), q.len, 0);
    }
  }
  // One WRITE and one READ of the largest size (32 MiB would not fit: 4 MiB here).
  std::vector<std::uint8_t> big(kDisk);
  uzram::testing::fill_random(rng, big.data(), big.size());
  std::thread writer([&] { ASSERT_TRUE(s.request(kCmdWrite, 1000, 0, kDisk, big.data())); });
  EXPECT_EQ(s.reply({}).error, 0u);
  writer.join();
  ASSERT_TRUE(s.request(kCmdRead, 1001, 0, kDisk));
  const Reply r = s.reply({{1001, {0, kDisk}}});
  EXPECT_EQ(r.error, 0u);
  EXPECT_TRUE(r.data == big);
  EXPECT_TRUE(backend.copy() == big);
}

INSTANTIATE_TEST_SUITE_P(Modes, SessionModel,
                         ::testing::Values(Mode{"OnDemandSimple", false, false},
                                           Mode{"OnDemandStructured", true, false},
                                           Mode{"PreallocatedSimple", false, true},
                                           Mode{"PreallocatedStructured", true, true}),
                         [](const auto& i) { return std::string(i.param.name); });

// A read error after the first piece: structured replies end with an error chunk; a simple
// reply has sent its header already, so the connection is closed.
TEST(SessionPieces, ReadErrorInTheMiddle) {
  for (const bool structured : {true, false}) {
    SCOPED_TRACE(structured ? "structured" : "simple");
    MemoryBackend backend(1 << 20);
    std::vector<std::uint8_t> data(1 << 20, 0x5a);
    backend.write(0, 1 << 20, data.data());
    backend.fail_read_at = 20000;
    SessionPair s(backend, structured, options({"", structured, true}));
    ASSERT_TRUE(s.request(kCmdRead, 7, 0, 65536));
    const Reply r = s.reply({{7, {0, 65536}}});
    if (structured) {
      EXPECT_FALSE(r.closed);
      EXPECT_EQ(r.error, kEio);
      EXPECT_EQ(std::count(r.covered.begin(), r.covered.begin() + 16384, true), 16384);
      EXPECT_EQ(std::count(r.covered.begin() + 16384, r.covered.end(), true), 0);
      // The connection goes on.
      ASSERT_TRUE(s.request(kCmdRead, 8, 0, 4096));
      EXPECT_EQ(s.reply({{8, {0, 4096}}}).error, 0u);
    } else {
      EXPECT_TRUE(r.closed);
    }
  }
}

// The first piece's error is an ordinary error reply, in both forms.
TEST(SessionPieces, ReadErrorInTheFirstPiece) {
  for (const bool structured : {true, false}) {
    MemoryBackend backend(1 << 20);
    backend.fail_read_at = 0;
    SessionPair s(backend, structured, options({"", structured, true}));
    ASSERT_TRUE(s.request(kCmdRead, 7, 0, 65536));
    const Reply r = s.reply({{7, {0, 65536}}});
    EXPECT_FALSE(r.closed);
    EXPECT_EQ(r.error, kEio);
  }
}

// Block status answers at most a piece's worth of extents (8 KiB / 8 = 1024 here), a prefix
// of the range.
TEST(SessionPieces, BlockStatusBoundedByAPiece) {
  MemoryBackend backend(16 << 20);
  std::vector<std::uint8_t> block(4096, 1);
  for (std::uint64_t b = 0; b < 4096; b += 2) backend.write(b * 4096, 4096, block.data());
  SessionPair s(backend, true, options({"", true, true}));
  ASSERT_TRUE(s.request(kCmdBlockStatus, 3, 0, 16 << 20));
  const Reply r = s.reply({});
  EXPECT_EQ(r.error, 0u);
  ASSERT_EQ(r.extents.size(), 1024u);
  for (std::size_t i = 0; i < r.extents.size(); i++) {
    EXPECT_EQ(r.extents[i].first, 4096u);
    EXPECT_EQ(r.extents[i].second, i % 2 ? kStateHole | kStateZero : 0u);
  }
}

// More requests than slots and pieces, sent before any reply is read: they wait for
// slots, and every one is answered.
TEST(SessionPieces, MoreRequestsThanSlots) {
  MemoryBackend backend(1 << 20);
  SessionPair s(backend, false, options({"", false, true}));
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint32_t>> reads;
  for (std::uint64_t c = 1; c <= 200; c++) {
    if (c % 2) reads[c] = {c * 4096, 4096};
  }
  std::thread writer([&] {
    std::vector<std::uint8_t> b(4096, 9);
    for (std::uint64_t c = 1; c <= 200; c++) {
      if (c % 2) {
        ASSERT_TRUE(s.request(kCmdRead, c, c * 4096, 4096));
      } else {
        ASSERT_TRUE(s.request(kCmdFlush, c, 0, 0));
      }
    }
  });
  std::vector<bool> seen(201, false);
  for (int i = 0; i < 200; i++) {
    const Reply r = s.reply(reads);
    ASSERT_FALSE(r.closed);
    EXPECT_EQ(r.error, 0u);
    ASSERT_LE(r.cookie, 200u);
    EXPECT_FALSE(seen[r.cookie]);
    seen[r.cookie] = true;
  }
  writer.join();
}

}  // namespace
}  // namespace uzram::nbd::testing

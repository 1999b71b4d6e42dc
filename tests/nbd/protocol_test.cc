// tests/nbd/protocol_test.cc - request validation, option parsing and the handshake's
// answers to malformed input (over a socketpair, no real client).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "nbd/handshake.h"
#include "nbd/protocol.h"
#include "nbd/store_backend.h"
#include "nbd/transport.h"
#include "nbd/wire.h"

namespace uzram::nbd {
namespace {

Negotiated neg(bool structured = true, bool meta = true) { return {1 << 20, structured, meta}; }
Request req(std::uint16_t type, std::uint64_t off, std::uint32_t len, std::uint16_t flags = 0) {
  return {kRequestMagic, flags, type, 7, off, len};
}

TEST(Validate, AcceptsInRangeRequests) {
  EXPECT_EQ(validate(req(kCmdRead, 0, 4096), neg()).error, 0u);
  EXPECT_EQ(validate(req(kCmdWrite, 1, 4095, kCmdFlagFua), neg()).error, 0u);
  EXPECT_TRUE(validate(req(kCmdWrite, 0, 1), neg()).payload_follows);
  EXPECT_EQ(validate(req(kCmdWriteZeroes, 0, 1 << 20, kCmdFlagNoHole | kCmdFlagFastZero), neg()).error, 0u);
  EXPECT_EQ(validate(req(kCmdBlockStatus, 0, 1 << 20, kCmdFlagReqOne), neg()).error, 0u);
  EXPECT_EQ(validate(req(kCmdFlush, 0, 0), neg()).error, 0u);
  EXPECT_TRUE(validate(req(kCmdDisc, 0, 0), neg()).disconnect);
}

TEST(Validate, RejectsBadRequests) {
  EXPECT_EQ(validate(req(kCmdRead, 1 << 20, 1), neg()).error, kEinval);          // past the end
  EXPECT_EQ(validate(req(kCmdRead, ~0ULL, 2), neg()).error, kEinval);             // overflow
  EXPECT_EQ(validate(req(kCmdWrite, (1 << 20) - 1, 2), neg()).error, kEnospc);
  EXPECT_EQ(validate(req(kCmdRead, 0, 0), neg()).error, kEinval);                 // empty
  EXPECT_EQ(validate(req(kCmdRead, 0, kMaxPayload + 1), Negotiated{~0ULL, true, true}).error, kEinval);
  EXPECT_TRUE(validate(req(kCmdWrite, 0, kMaxPayload + 1), neg()).payload_follows);
  EXPECT_EQ(validate(req(kCmdRead, 0, 1, kCmdFlagFua), neg()).error, kEinval);    // bad flag
  EXPECT_EQ(validate(req(kCmdRead, 0, 1, kCmdFlagDf), neg(false, false)).error, kEinval);
  EXPECT_EQ(validate(req(kCmdWrite, 0, 1, kCmdFlagNoHole), neg()).error, kEinval);
  EXPECT_EQ(validate(req(kCmdWrite, 0, 1, 0x8000), neg()).error, kEinval);
  EXPECT_EQ(validate(req(99, 0, 1), neg()).error, kEinval);                       // unknown
  EXPECT_EQ(validate(req(kCmdBlockStatus, 0, 1), neg(true, false)).error, kEinval);
}

TEST(Parse, InfoRequest) {
  std::vector<std::uint8_t> d = {0, 0, 0, 1, 'x', 0, 1, 0, 3};
  InfoRequest ir;
  ASSERT_TRUE(parse_info_request(d, &ir));
  EXPECT_EQ(ir.name.size(), 1u);
  EXPECT_EQ(ir.count, 1);
  d.pop_back();
  EXPECT_FALSE(parse_info_request(d, &ir));                    // truncated
  std::vector<std::uint8_t> huge = {0xff, 0xff, 0xff, 0xff, 0, 0};
  EXPECT_FALSE(parse_info_request(huge, &ir));                 // name length beyond data
  EXPECT_FALSE(parse_info_request({}, &ir));
}

TEST(Parse, MetaRequest) {
  std::vector<std::uint8_t> d = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 'a', 'b'};
  int seen = 0;
  EXPECT_TRUE(parse_meta_request(std::span<const std::uint8_t>(d), [&](auto) { seen++; }));
  EXPECT_EQ(seen, 1);
  d.push_back('c');  // trailing garbage
  EXPECT_FALSE(parse_meta_request(std::span<const std::uint8_t>(d), [&](auto) {}));
  std::vector<std::uint8_t> many = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};  // 4G queries, no data
  EXPECT_FALSE(parse_meta_request(std::span<const std::uint8_t>(many), [&](auto) {}));
}

class NullBackend final : public Backend {
 public:
  std::uint64_t size() const noexcept override { return 1 << 20; }
  std::uint32_t read(std::uint64_t, std::uint32_t, void*) noexcept override { return 0; }
  std::uint32_t write(std::uint64_t, std::uint32_t, const void*) noexcept override { return 0; }
  std::uint32_t trim(std::uint64_t, std::uint32_t) noexcept override { return 0; }
  std::uint32_t zero(std::uint64_t, std::uint32_t, bool) noexcept override { return 0; }
  std::uint32_t block_status(std::uint64_t, std::uint32_t, Extent*, std::size_t,
                             std::size_t* n) noexcept override {
    *n = 0;
    return 0;
  }
};

// Runs the handshake against `client_bytes` and returns (entered transmission, server bytes).
std::pair<bool, std::vector<std::uint8_t>> run(const std::vector<std::uint8_t>& client_bytes) {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  NullBackend b;
  bool go = false;
  std::thread t([&] {
    Negotiated n;
    std::unique_ptr<Transport> transport;
    go = handshake(sv[0], transport, b, TlsPolicy{}, Deadline{}, &n, [](std::string_view) {});
    ::close(sv[0]);
  });
  EXPECT_TRUE(write_full(sv[1], client_bytes.data(), client_bytes.size()));
  ::shutdown(sv[1], SHUT_WR);
  std::vector<std::uint8_t> got;
  std::uint8_t buf[4096];
  for (ssize_t r; (r = ::read(sv[1], buf, sizeof buf)) > 0;) got.insert(got.end(), buf, buf + r);
  t.join();
  ::close(sv[1]);
  return {go, got};
}

std::vector<std::uint8_t> option(std::uint32_t opt, std::vector<std::uint8_t> data, std::uint32_t len = ~0u) {
  std::vector<std::uint8_t> o(16);
  put64(o.data(), kIHaveOpt);
  put32(o.data() + 8, opt);
  put32(o.data() + 12, len == ~0u ? static_cast<std::uint32_t>(data.size()) : len);
  o.insert(o.end(), data.begin(), data.end());
  return o;
}

std::vector<std::uint8_t> cat(std::initializer_list<std::vector<std::uint8_t>> parts) {
  std::vector<std::uint8_t> r;
  for (const auto& p : parts) r.insert(r.end(), p.begin(), p.end());
  return r;
}

const std::vector<std::uint8_t> kFlags = {0, 0, 0, 3};

TEST(Handshake, TruncatedAndBadMagicClose) {
  EXPECT_FALSE(run({}).first);
  EXPECT_FALSE(run({0, 0}).first);
  EXPECT_FALSE(run(cat({kFlags, {1, 2, 3}})).first);
  auto bad = option(kOptGo, {});
  bad[0] ^= 1;
  EXPECT_FALSE(run(cat({kFlags, bad})).first);
  EXPECT_FALSE(run({0, 0, 0, 0x80}).first);  // unknown client flag
}

TEST(Handshake, UnknownOptionIsUnsupportedThenGoWorks) {
  auto [go, got] = run(cat({kFlags, option(42, {1, 2, 3}), option(kOptGo, {0, 0, 0, 0, 0, 0})}));
  EXPECT_TRUE(go);
  ASSERT_GE(got.size(), 18u + 20u);
  EXPECT_EQ(get32(got.data() + 18 + 8), 42u);
  EXPECT_EQ(get32(got.data() + 18 + 12), kRepErrUnsup);
}

TEST(Handshake, OversizedOptionIsTooBigOrClosed) {
  auto [go, got] = run(cat({kFlags, option(kOptGo, std::vector<std::uint8_t>(kMaxOptionLength + 1))}));
  EXPECT_FALSE(go);
  ASSERT_GE(got.size(), 18u + 20u);
  EXPECT_EQ(get32(got.data() + 18 + 12), kRepErrTooBig);
  EXPECT_FALSE(run(cat({kFlags, option(kOptGo, {}, 0xffffffffu)})).first);  // 4 GiB claimed: close
}

TEST(Handshake, MalformedGoIsInvalid) {
  auto [go, got] = run(cat({kFlags, option(kOptGo, {0, 0, 0, 9})}));
  EXPECT_FALSE(go);
  ASSERT_GE(got.size(), 18u + 20u);
  EXPECT_EQ(get32(got.data() + 18 + 12), kRepErrInvalid);
}

TEST(Handshake, SetMetaContextNeedsStructuredReplies) {
  auto [go, got] = run(cat({kFlags, option(kOptSetMetaContext, {0, 0, 0, 0, 0, 0, 0, 0})}));
  EXPECT_FALSE(go);
  ASSERT_GE(got.size(), 18u + 20u);
  EXPECT_EQ(get32(got.data() + 18 + 12), kRepErrInvalid);
}

TEST(Handshake, ExportNameAfterStructuredReplyKeepsIt) {
  auto [go, got] = run(cat({kFlags, option(kOptStructuredReply, {}), option(kOptExportName, {})}));
  EXPECT_TRUE(go);
  ASSERT_EQ(got.size(), 18u + 20u + 10u);  // hello, ACK, size + flags (NO_ZEROES)
  EXPECT_EQ(get32(got.data() + 18 + 12), kRepAck);
  EXPECT_EQ(get64(got.data() + 38), 1u << 20);
  EXPECT_TRUE(get16(got.data() + 46) & kTxSendDf);
}

}  // namespace
}  // namespace uzram::nbd

// tests/nbd/protocol_test.cc - request validation, option parsing, reply encoding (bytes
// checked against the specification's layouts; READ hole/data chunking against a model),
// and the handshake's answers to good and malformed input (over a socketpair, no real
// client).
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
#include "testing/seed.h"

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
  EXPECT_EQ(
      validate(req(kCmdWriteZeroes, 0, 1 << 20, kCmdFlagNoHole | kCmdFlagFastZero), neg()).error,
      0u);
  EXPECT_EQ(validate(req(kCmdBlockStatus, 0, 1 << 20, kCmdFlagReqOne), neg()).error, 0u);
  EXPECT_EQ(validate(req(kCmdFlush, 0, 0), neg()).error, 0u);
  EXPECT_TRUE(validate(req(kCmdDisc, 0, 0), neg()).disconnect);
}

TEST(Validate, RejectsBadRequests) {
  EXPECT_EQ(validate(req(kCmdRead, 1 << 20, 1), neg()).error, kEinval);  // past the end
  EXPECT_EQ(validate(req(kCmdRead, ~0ULL, 2), neg()).error, kEinval);    // overflow
  EXPECT_EQ(validate(req(kCmdWrite, (1 << 20) - 1, 2), neg()).error, kEnospc);
  EXPECT_EQ(validate(req(kCmdRead, 0, 0), neg()).error, kEinval);  // empty
  EXPECT_EQ(validate(req(kCmdRead, 0, kMaxPayload + 1), Negotiated{~0ULL, true, true}).error,
            kEinval);
  EXPECT_TRUE(validate(req(kCmdWrite, 0, kMaxPayload + 1), neg()).payload_follows);
  EXPECT_EQ(validate(req(kCmdRead, 0, 1, kCmdFlagFua), neg()).error, kEinval);  // bad flag
  EXPECT_EQ(validate(req(kCmdRead, 0, 1, kCmdFlagDf), neg(false, false)).error, kEinval);
  EXPECT_EQ(validate(req(kCmdWrite, 0, 1, kCmdFlagNoHole), neg()).error, kEinval);
  EXPECT_EQ(validate(req(kCmdWrite, 0, 1, 0x8000), neg()).error, kEinval);
  EXPECT_EQ(validate(req(99, 0, 1), neg()).error, kEinval);  // unknown
  EXPECT_EQ(validate(req(kCmdBlockStatus, 0, 1), neg(true, false)).error, kEinval);
}

TEST(Parse, InfoRequest) {
  std::vector<std::uint8_t> d = {0, 0, 0, 1, 'x', 0, 1, 0, 3};
  InfoRequest ir;
  ASSERT_TRUE(parse_info_request(d, &ir));
  EXPECT_EQ(ir.name.size(), 1u);
  EXPECT_EQ(ir.count, 1);
  d.pop_back();
  EXPECT_FALSE(parse_info_request(d, &ir));  // truncated
  std::vector<std::uint8_t> huge = {0xff, 0xff, 0xff, 0xff, 0, 0};
  EXPECT_FALSE(parse_info_request(huge, &ir));  // name length beyond data
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

// ---- Reply encoders -------------------------------------------------------------------

constexpr std::uint64_t kCookie = 0x0102030405060708ULL;

std::vector<std::uint8_t> bytes(std::initializer_list<std::uint64_t> fields,
                                std::initializer_list<int> widths) {
  std::vector<std::uint8_t> out;
  auto w = widths.begin();
  for (std::uint64_t f : fields) {
    for (int i = *w++ - 1; i >= 0; i--) out.push_back(static_cast<std::uint8_t>(f >> (8 * i)));
  }
  return out;
}

TEST(Encode, SimpleReply) {
  std::uint8_t h[kSimpleReplySize];
  encode_simple_reply(h, kCookie, kEnospc);
  EXPECT_EQ(std::vector<std::uint8_t>(h, h + sizeof h),
            bytes({0x67446698, kEnospc, kCookie}, {4, 4, 8}));
}

TEST(Encode, ChunkHeaderAndError) {
  std::uint8_t h[kErrorChunkSize];
  encode_chunk_header(h, kCookie, kChunkNone, 0);
  EXPECT_EQ(std::vector<std::uint8_t>(h, h + kChunkHeaderSize),
            bytes({0x668e33ef, kChunkFlagDone, kChunkNone, kCookie, 0}, {4, 2, 2, 8, 4}));
  encode_chunk_header(h, kCookie, kChunkOffsetData, 77, 0);
  EXPECT_EQ(std::vector<std::uint8_t>(h, h + kChunkHeaderSize),
            bytes({0x668e33ef, 0, 1, kCookie, 77}, {4, 2, 2, 8, 4}));
  encode_error_chunk(h, kCookie, kEio);
  EXPECT_EQ(std::vector<std::uint8_t>(h, h + kErrorChunkSize),
            bytes({0x668e33ef, 1, 0x8001, kCookie, 6, kEio, 0}, {4, 2, 2, 8, 4, 4, 2}));
}

TEST(Encode, DataHoleAndBlockStatus) {
  std::uint8_t h[kHoleChunkSize];
  encode_data_chunk_header(h, kCookie, 1ULL << 40, 4096, 0);
  EXPECT_EQ(std::vector<std::uint8_t>(h, h + kDataChunkHeaderSize),
            bytes({0x668e33ef, 0, 1, kCookie, 8 + 4096, 1ULL << 40}, {4, 2, 2, 8, 4, 8}));
  encode_hole_chunk(h, kCookie, 8192, 65536, kChunkFlagDone);
  EXPECT_EQ(std::vector<std::uint8_t>(h, h + kHoleChunkSize),
            bytes({0x668e33ef, 1, 2, kCookie, 12, 8192, 65536}, {4, 2, 2, 8, 4, 8, 4}));
  encode_block_status_header(h, kCookie, 3);
  EXPECT_EQ(std::vector<std::uint8_t>(h, h + kBlockStatusHeaderSize),
            bytes({0x668e33ef, 1, 5, kCookie, 4 + 3 * 8, kBaseAllocationId}, {4, 2, 2, 8, 4, 4}));
  std::uint8_t e[kExtentSize];
  encode_extent(e, 0x10000, kStateHole | kStateZero);
  EXPECT_EQ(std::vector<std::uint8_t>(e, e + kExtentSize), bytes({0x10000, 3}, {4, 4}));
}

// The READ chunking model: within the request, the 4 KiB blocks aligned to the disk; the
// maximal runs of zero blocks at least kMinHole long are holes, everything else data.
std::vector<ReadChunk> model_chunks(std::uint64_t offset, const std::vector<std::uint8_t>& d) {
  const auto len = static_cast<std::uint32_t>(d.size());
  std::vector<bool> zero(len, false);  // byte i lies in a whole zero block
  for (std::uint32_t b = static_cast<std::uint32_t>(-offset & 4095); b + 4096 <= len; b += 4096) {
    bool z = true;
    for (std::uint32_t i = b; i < b + 4096; i++) z = z && d[i] == 0;
    for (std::uint32_t i = b; i < b + 4096; i++) zero[i] = z;
  }
  std::vector<ReadChunk> out;
  std::uint32_t data_from = 0;
  for (std::uint32_t i = 0; i < len;) {
    std::uint32_t e = i;
    while (e < len && zero[e]) e++;
    if (e - i >= kMinHole) {
      if (i > data_from) out.push_back({data_from, i - data_from, false});
      out.push_back({i, e - i, true});
      data_from = e;
    }
    i = e == i ? i + 1 : e;
  }
  if (out.empty()) return out;
  if (data_from < len) out.push_back({data_from, len - data_from, false});
  return out;
}

TEST(Encode, SplitReadFixedCases) {
  std::vector<std::uint8_t> d(192 << 10, 0xab);
  ReadChunk c[16];
  EXPECT_EQ(split_read(0, d.data(), static_cast<std::uint32_t>(d.size()), c), 0u);  // no hole
  std::fill(d.begin() + (64 << 10), d.begin() + (128 << 10), 0);
  ASSERT_EQ(split_read(0, d.data(), static_cast<std::uint32_t>(d.size()), c), 3u);
  EXPECT_TRUE(!c[0].hole && c[0].offset == 0 && c[0].length == 64u << 10);
  EXPECT_TRUE(c[1].hole && c[1].offset == 64u << 10 && c[1].length == 64u << 10);
  EXPECT_TRUE(!c[2].hole && c[2].offset == 128u << 10 && c[2].length == 64u << 10);
  // Read from 512 bytes into a block: the zero run no longer holds 16 whole disk blocks.
  EXPECT_EQ(split_read(512, d.data(), static_cast<std::uint32_t>(d.size()), c), 0u);
  std::vector<std::uint8_t> z(kMinHole, 0);  // all zero: one hole, nothing else
  ASSERT_EQ(split_read(0, z.data(), kMinHole, c), 1u);
  EXPECT_TRUE(c[0].hole && c[0].offset == 0 && c[0].length == kMinHole);
  EXPECT_EQ(split_read(0, z.data(), kMinHole - 4096, c), 0u);  // too short to be a hole
}

TEST(Encode, SplitReadMatchesTheModel) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  Random rng(seed);
  for (int iter = 0; iter < 100; iter++) {
    const std::uint64_t offset = rng.uniform(8) * 4096 + (rng.one_in(3) ? rng.uniform(4096) : 0);
    const auto len = static_cast<std::uint32_t>(1 + rng.uniform(64 * 4096));
    std::vector<std::uint8_t> d(len, 0);
    // Runs of zero and non-zero blocks, some long enough to be holes.
    for (std::uint32_t at = 0; at < len;) {
      const std::uint32_t run = static_cast<std::uint32_t>((1 + rng.uniform(24)) * 4096);
      const bool data = rng.one_in(2);
      for (std::uint32_t i = at; i < std::min(len, at + run); i++) {
        d[i] = data && (i % 512 == 7) ? 1 : 0;  // one non-zero byte per 512 in data runs
      }
      at += run;
    }
    std::vector<ReadChunk> got(max_read_chunks(len));
    got.resize(split_read(offset, d.data(), len, got.data()));
    const auto want = model_chunks(offset, d);
    ASSERT_EQ(got.size(), want.size()) << "offset " << offset << " len " << len;
    std::uint32_t next = 0;
    for (std::size_t i = 0; i < got.size(); i++) {
      EXPECT_EQ(got[i].offset, want[i].offset);
      EXPECT_EQ(got[i].length, want[i].length);
      EXPECT_EQ(got[i].hole, want[i].hole);
      EXPECT_EQ(got[i].offset, next);  // contiguous, covering the request
      next = got[i].offset + got[i].length;
    }
    if (!got.empty()) {
      EXPECT_EQ(next, len);
    }
  }
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

// A backend with no disksize: nothing to serve.
class UninitialisedBackend final : public Backend {
 public:
  std::uint64_t size() const noexcept override { return 0; }
  bool open_user(std::uint64_t*) noexcept override { return false; }
  std::uint32_t read(std::uint64_t, std::uint32_t, void*) noexcept override { return kEio; }
  std::uint32_t write(std::uint64_t, std::uint32_t, const void*) noexcept override { return kEio; }
  std::uint32_t trim(std::uint64_t, std::uint32_t) noexcept override { return kEio; }
  std::uint32_t zero(std::uint64_t, std::uint32_t, bool) noexcept override { return kEio; }
  std::uint32_t block_status(std::uint64_t, std::uint32_t, Extent*, std::size_t,
                             std::size_t*) noexcept override {
    return kEio;
  }
};

// Runs the handshake against `client_bytes` and returns (entered transmission, server bytes).
std::pair<bool, std::vector<std::uint8_t>> run(const std::vector<std::uint8_t>& client_bytes,
                                               const TlsPolicy& tls = {},
                                               Backend* backend = nullptr,
                                               Negotiated* negotiated = nullptr) {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  NullBackend null_backend;
  Backend& b = backend ? *backend : null_backend;
  bool go = false;
  std::thread t([&] {
    Negotiated n;
    std::unique_ptr<Transport> transport;
    go = handshake(sv[0], transport, b, tls, Deadline{}, &n, [](std::string_view) {});
    if (negotiated) *negotiated = n;
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

std::vector<std::uint8_t> option(std::uint32_t opt, std::vector<std::uint8_t> data,
                                 std::uint32_t len = ~0u) {
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
  auto [go, got] =
      run(cat({kFlags, option(kOptGo, std::vector<std::uint8_t>(kMaxOptionLength + 1))}));
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

// The option replies after the greeting: (option, reply type, data).
struct OptReply {
  std::uint32_t opt, type;
  std::vector<std::uint8_t> data;
};
std::vector<OptReply> replies(const std::vector<std::uint8_t>& server_bytes) {
  std::vector<OptReply> out;
  EXPECT_GE(server_bytes.size(), 18u);
  for (std::size_t at = 18; at + 20 <= server_bytes.size();) {
    const std::uint8_t* h = server_bytes.data() + at;
    EXPECT_EQ(get64(h), kOptReplyMagic);
    const std::uint32_t len = get32(h + 16);
    if (at + 20 + len > server_bytes.size()) break;
    out.push_back({get32(h + 8), get32(h + 12), {h + 20, h + 20 + len}});
    at += 20 + len;
  }
  return out;
}

std::vector<std::uint8_t> info_data(const std::string& name, std::vector<std::uint16_t> types) {
  std::vector<std::uint8_t> d(4);
  put32(d.data(), static_cast<std::uint32_t>(name.size()));
  d.insert(d.end(), name.begin(), name.end());
  d.push_back(static_cast<std::uint8_t>(types.size() >> 8));
  d.push_back(static_cast<std::uint8_t>(types.size()));
  for (std::uint16_t t : types) {
    d.push_back(static_cast<std::uint8_t>(t >> 8));
    d.push_back(static_cast<std::uint8_t>(t));
  }
  return d;
}

std::vector<std::uint8_t> meta_data(std::vector<std::string> queries) {
  std::vector<std::uint8_t> d(8, 0);  // export name "", then the count
  put32(d.data() + 4, static_cast<std::uint32_t>(queries.size()));
  for (const std::string& q : queries) {
    std::uint8_t l[4];
    put32(l, static_cast<std::uint32_t>(q.size()));
    d.insert(d.end(), l, l + 4);
    d.insert(d.end(), q.begin(), q.end());
  }
  return d;
}

TEST(Handshake, ListThenAbort) {
  auto [go, got] =
      run(cat({kFlags, option(kOptList, {1}), option(kOptList, {}), option(kOptAbort, {})}));
  EXPECT_FALSE(go);
  const auto r = replies(got);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].type, kRepErrInvalid);  // LIST takes no data
  EXPECT_EQ(r[1].type, kRepServer);
  EXPECT_EQ(r[1].data, (std::vector<std::uint8_t>{0, 0, 0, 0}));  // the default export ""
  EXPECT_EQ(r[2].type, kRepAck);
  EXPECT_EQ(r[3].opt, kOptAbort);
  EXPECT_EQ(r[3].type, kRepAck);
}

TEST(Handshake, InfoNamesTheExportOnceThenGo) {
  Negotiated n;
  auto [go, got] = run(cat({kFlags, option(kOptInfo, info_data("abc", {kInfoName, kInfoName})),
                            option(kOptGo, info_data("", {}))}),
                       {}, nullptr, &n);
  EXPECT_TRUE(go);
  EXPECT_EQ(n.size, 1u << 20);
  EXPECT_FALSE(n.structured);
  const auto r = replies(got);
  ASSERT_EQ(r.size(), 7u);
  EXPECT_EQ(r[0].type, kRepInfo);  // export: type, size, flags
  ASSERT_EQ(r[0].data.size(), 12u);
  EXPECT_EQ(get16(r[0].data.data()), kInfoExport);
  EXPECT_EQ(get64(r[0].data.data() + 2), 1u << 20);
  EXPECT_EQ(r[1].type, kRepInfo);  // name, once
  EXPECT_EQ(r[1].data, (std::vector<std::uint8_t>{0, kInfoName, 'a', 'b', 'c'}));
  ASSERT_EQ(r[2].data.size(), 14u);  // block sizes: 1, 4096, kMaxPayload
  EXPECT_EQ(get16(r[2].data.data()), kInfoBlockSize);
  EXPECT_EQ(get32(r[2].data.data() + 2), 1u);
  EXPECT_EQ(get32(r[2].data.data() + 6), 4096u);
  EXPECT_EQ(get32(r[2].data.data() + 10), kMaxPayload);
  EXPECT_EQ(r[3].type, kRepAck);
  EXPECT_EQ(r[4].opt, kOptGo);  // GO: export, block size, ACK
  EXPECT_EQ(r[6].type, kRepAck);
}

TEST(Handshake, StructuredRepliesAndMetaContexts) {
  Negotiated n;
  auto [go, got] =
      run(cat({kFlags, option(kOptStructuredReply, {1}), option(kOptStructuredReply, {}),
               option(kOptListMetaContext, meta_data({"base:"})),
               option(kOptListMetaContext, meta_data({})),
               option(kOptSetMetaContext, meta_data({"other:x"})),
               option(kOptSetMetaContext, meta_data({kBaseAllocation})),
               option(kOptGo, info_data("", {}))}),
          {}, nullptr, &n);
  EXPECT_TRUE(go);
  EXPECT_TRUE(n.structured);
  EXPECT_TRUE(n.meta_base_allocation);
  const auto r = replies(got);
  ASSERT_GE(r.size(), 9u);
  EXPECT_EQ(r[0].type, kRepErrInvalid);  // STRUCTURED_REPLY takes no data
  EXPECT_EQ(r[1].type, kRepAck);
  for (int i : {2, 4, 7}) {  // a context, then ACK: LIST "base:", LIST (all), SET base
    EXPECT_EQ(r[i].type, kRepMetaContext) << i;
    ASSERT_EQ(r[i].data.size(), 4u + 15u) << i;
    EXPECT_EQ(get32(r[i].data.data()), kBaseAllocationId);
    EXPECT_EQ(std::string(r[i].data.begin() + 4, r[i].data.end()), kBaseAllocation);
    EXPECT_EQ(r[i + 1].type, kRepAck) << i;
  }
  EXPECT_EQ(r[6].type, kRepAck);  // SET "other:x": no context, ACK
  // A later SET without base:allocation clears it.
  auto [go2, got2] =
      run(cat({kFlags, option(kOptStructuredReply, {}),
               option(kOptSetMetaContext, meta_data({kBaseAllocation})),
               option(kOptSetMetaContext, meta_data({})), option(kOptGo, info_data("", {}))}),
          {}, nullptr, &n);
  EXPECT_TRUE(go2);
  EXPECT_FALSE(n.meta_base_allocation);
}

TEST(Handshake, StartTlsWhenTlsIsOff) {
  auto [go, got] = run(cat({kFlags, option(kOptStartTls, {}), option(kOptAbort, {})}));
  EXPECT_FALSE(go);
  const auto r = replies(got);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].type, kRepErrUnsup);
}

TEST(Handshake, TlsRequiredRefusesEverythingButStartTlsAndAbort) {
  const TlsPolicy required{nullptr, true};
  auto [go, got] = run(
      cat({kFlags, option(kOptGo, info_data("", {})), option(kOptList, {}), option(kOptAbort, {})}),
      required);
  EXPECT_FALSE(go);
  const auto r = replies(got);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].type, kRepErrTlsReqd);
  EXPECT_EQ(r[1].type, kRepErrTlsReqd);
  EXPECT_EQ(r[2].type, kRepAck);
  auto [go2, got2] = run(cat({kFlags, option(kOptExportName, {})}), required);
  EXPECT_FALSE(go2);
  EXPECT_EQ(got2.size(), 18u);  // closed without an answer
}

TEST(Handshake, NothingToServe) {
  UninitialisedBackend b;
  auto [go, got] =
      run(cat({kFlags, option(kOptGo, info_data("", {})), option(kOptExportName, {})}), {}, &b);
  EXPECT_FALSE(go);
  const auto r = replies(got);
  ASSERT_EQ(r.size(), 1u);  // GO refused; EXPORT_NAME closes
  EXPECT_EQ(r[0].type, kRepErrUnknown);
}

TEST(Handshake, TooManyOptionsClose) {
  std::vector<std::uint8_t> bytes = kFlags;
  for (int i = 0; i < 300; i++) {
    const auto o = option(42, {});
    bytes.insert(bytes.end(), o.begin(), o.end());
  }
  auto [go, got] = run(bytes);
  EXPECT_FALSE(go);
  EXPECT_EQ(replies(got).size(), 256u);
}

}  // namespace
}  // namespace uzram::nbd

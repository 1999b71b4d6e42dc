// tests/nbd/limits_test.cc - the server's limits without a real client: the admission
// policy (nbd/admission.h), the handshake's absolute deadline (trickling bytes does not
// extend it), the backend user claim a handshake takes for transmission, and the send
// buffer a Unix connection gets.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "nbd/admission.h"
#include "nbd/handshake.h"
#include "nbd/protocol.h"
#include "nbd/server.h"
#include "nbd/store_backend.h"
#include "nbd/transport.h"
#include "nbd/wire.h"

namespace uzram::nbd {
namespace {

using std::chrono::milliseconds;

TEST(Admission, SlotsEvictionAndWaiting) {
  const AdmissionLimits l{64, 16, milliseconds(500)};
  const Clock::time_point t0{};
  auto at = [&](int ms) { return t0 + milliseconds(ms); };
  EXPECT_EQ(admission(l, {0, 0, 0, t0}, at(0)).what, Admit::yes);
  EXPECT_EQ(admission(l, {15, 40, 55, t0}, at(0)).what, Admit::yes);
  // Negotiating slots full: the oldest goes once it has had its grace; until then, wait.
  AdmitDecision d = admission(l, {16, 0, 16, at(100)}, at(300));
  EXPECT_EQ(d.what, Admit::wait);
  EXPECT_TRUE(d.timed);
  EXPECT_EQ(d.until, at(600));
  EXPECT_EQ(admission(l, {16, 0, 16, at(100)}, at(600)).what, Admit::evict_oldest);
  // All slots taken, some negotiating: the same; transmission is never evicted.
  EXPECT_EQ(admission(l, {4, 60, 64, at(0)}, at(100)).what, Admit::wait);
  EXPECT_EQ(admission(l, {4, 60, 64, at(0)}, at(500)).what, Admit::evict_oldest);
  EXPECT_EQ(admission(l, {0, 64, 64, t0}, at(9999)).what, Admit::refuse);
  // Closing connections' threads count: too many, and the acceptor waits for them.
  d = admission(l, {0, 0, 80, t0}, at(0));
  EXPECT_EQ(d.what, Admit::wait);
  EXPECT_FALSE(d.timed);
}

class CountingBackend final : public Backend {
 public:
  std::uint64_t size() const noexcept override { return 1 << 20; }
  bool open_user(std::uint64_t* size) noexcept override {
    if (!available) return false;
    users++;
    *size = 1 << 20;
    return true;
  }
  void close_user() noexcept override { users--; }
  std::uint32_t read(std::uint64_t, std::uint32_t, void*) noexcept override { return 0; }
  std::uint32_t write(std::uint64_t, std::uint32_t, const void*) noexcept override { return 0; }
  std::uint32_t trim(std::uint64_t, std::uint32_t) noexcept override { return 0; }
  std::uint32_t zero(std::uint64_t, std::uint32_t, bool) noexcept override { return 0; }
  std::uint32_t block_status(std::uint64_t, std::uint32_t, Extent*, std::size_t,
                             std::size_t* n) noexcept override {
    *n = 0;
    return 0;
  }
  std::atomic<int> users{0};
  bool available = true;
};

std::vector<std::uint8_t> option(std::uint32_t opt, std::vector<std::uint8_t> data) {
  std::vector<std::uint8_t> o(16);
  put64(o.data(), kIHaveOpt);
  put32(o.data() + 8, opt);
  put32(o.data() + 12, static_cast<std::uint32_t>(data.size()));
  o.insert(o.end(), data.begin(), data.end());
  return o;
}

struct Outcome {
  bool go = false;
  double seconds = 0;
  std::vector<std::uint8_t> got;
};

// Runs the handshake with `deadline` against a client that sends `bytes`, `gap` apart in
// chunks of `chunk` (0: all at once), then waits for the server to close.
Outcome handshake_with(Backend& b, const std::vector<std::uint8_t>& bytes, Deadline deadline,
                       std::size_t chunk = 0, milliseconds gap = milliseconds(0)) {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  Outcome r;
  const auto t0 = Clock::now();
  std::thread server([&] {
    Negotiated n;
    std::unique_ptr<Transport> t;
    r.go = handshake(sv[0], t, b, TlsPolicy{}, deadline, &n, [](std::string_view) {});
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    ::shutdown(sv[0], SHUT_RDWR);
  });
  for (std::size_t at = 0; at < bytes.size();) {
    const std::size_t n = chunk ? std::min(chunk, bytes.size() - at) : bytes.size() - at;
    if (!write_full(sv[1], bytes.data() + at, n)) break;
    at += n;
    if (at < bytes.size()) std::this_thread::sleep_for(gap);
  }
  std::uint8_t buf[4096];
  for (ssize_t k; (k = ::read(sv[1], buf, sizeof buf)) > 0;)
    r.got.insert(r.got.end(), buf, buf + k);
  server.join();
  ::close(sv[0]);
  ::close(sv[1]);
  return r;
}

const std::vector<std::uint8_t> kFlags = {0, 0, 0, 3};

TEST(HandshakeDeadline, SilentClientClosedAtTheDeadline) {
  CountingBackend b;
  const Outcome r = handshake_with(b, kFlags, Deadline::after(milliseconds(300)));
  EXPECT_FALSE(r.go);
  EXPECT_GE(r.seconds, 0.29);
  EXPECT_LT(r.seconds, 2.0);
}

TEST(HandshakeDeadline, TricklingDoesNotExtendIt) {
  CountingBackend b;
  // An endless run of NBD_OPT_LIST options, one byte every 20 ms: each read makes progress,
  // yet the whole handshake ends at the deadline.
  std::vector<std::uint8_t> bytes = kFlags;
  for (int i = 0; i < 50; i++) {
    auto o = option(kOptList, {});
    bytes.insert(bytes.end(), o.begin(), o.end());
  }
  const Outcome r =
      handshake_with(b, bytes, Deadline::after(milliseconds(300)), 1, milliseconds(20));
  EXPECT_FALSE(r.go);
  EXPECT_GE(r.seconds, 0.29);
  EXPECT_LT(r.seconds, 2.0);
}

TEST(HandshakeClaim, GoAndExportNameTakeAUserInfoDoesNot) {
  CountingBackend b;
  Outcome r = handshake_with(
      b,
      [] {
        auto v = kFlags;
        for (auto o : {option(kOptInfo, {0, 0, 0, 0, 0, 0}), option(kOptGo, {0, 0, 0, 0, 0, 0})}) {
          v.insert(v.end(), o.begin(), o.end());
        }
        return v;
      }(),
      Deadline::after(milliseconds(5000)));
  EXPECT_TRUE(r.go);
  EXPECT_EQ(b.users.load(), 1);  // the caller releases it after the session
  b.close_user();
  r = handshake_with(
      b,
      [] {
        auto v = kFlags;
        auto o = option(kOptExportName, {});
        v.insert(v.end(), o.begin(), o.end());
        return v;
      }(),
      Deadline::after(milliseconds(5000)));
  EXPECT_TRUE(r.go);
  EXPECT_EQ(b.users.load(), 1);
  b.close_user();
}

TEST(HandshakeClaim, UnavailableExportIsAnErrorThenTheClientMayGoOn) {
  CountingBackend b;
  b.available = false;
  auto v = kFlags;
  for (auto o : {option(kOptGo, {0, 0, 0, 0, 0, 0}), option(kOptAbort, {})})
    v.insert(v.end(), o.begin(), o.end());
  const Outcome r = handshake_with(b, v, Deadline::after(milliseconds(5000)));
  EXPECT_FALSE(r.go);
  EXPECT_EQ(b.users.load(), 0);
  ASSERT_GE(r.got.size(), 18u + 20u);
  EXPECT_EQ(get32(r.got.data() + 18 + 12), kRepErrUnknown);
}

// What a Unix connection's send buffer is raised to: all of it with CAP_NET_ADMIN
// (SO_SNDBUFFORCE), else as much as net.core.wmem_max allows, never less than before.
TEST(UnixSendBuffer, RaisedAsFarAsAllowed) {
  const UnixSendBuffer b = probe_unix_send_buffer();
  ASSERT_GT(b.wanted, 212992) << "the default would change nothing";
  std::ifstream status("/proc/self/status");
  std::string line;
  unsigned long long eff = 0;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) eff = std::stoull(line.substr(7), nullptr, 16);
  }
  long wmem_max = 0;
  std::ifstream("/proc/sys/net/core/wmem_max") >> wmem_max;
  ASSERT_GT(wmem_max, 0);
  if (eff & (1ULL << 12)) {  // CAP_NET_ADMIN
    EXPECT_EQ(b.got, b.wanted);
  } else {
    EXPECT_EQ(b.got, std::min<long>(b.wanted, wmem_max));
  }
}

}  // namespace
}  // namespace uzram::nbd

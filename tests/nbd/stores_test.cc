// tests/nbd/stores_test.cc - several stores behind one server (nbd/exports.h): export names
// select stores in the handshake (LIST, INFO, GO, EXPORT_NAME), and hot_add/hot_remove
// race real connections and control requests (run under TSan in the tsan suite).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "control/control.h"
#include "nbd/exports.h"
#include "nbd/handshake.h"
#include "nbd/protocol.h"
#include "nbd/server.h"
#include "nbd/store_backend.h"
#include "nbd/transport.h"
#include "nbd/wire.h"
#include "testing/seed.h"
#include "testing/temp_dir.h"
#include "util/unix_socket.h"
#include "uzram/store.h"
#include "uzram/store_registry.h"

namespace uzram::nbd {
namespace {

std::vector<std::uint8_t> option(std::uint32_t opt, const std::vector<std::uint8_t>& data) {
  std::vector<std::uint8_t> o(16);
  put64(o.data(), kIHaveOpt);
  put32(o.data() + 8, opt);
  put32(o.data() + 12, static_cast<std::uint32_t>(data.size()));
  o.insert(o.end(), data.begin(), data.end());
  return o;
}

std::vector<std::uint8_t> info(const std::string& name) {  // no info requests
  std::vector<std::uint8_t> d(4);
  put32(d.data(), static_cast<std::uint32_t>(name.size()));
  d.insert(d.end(), name.begin(), name.end());
  d.push_back(0);
  d.push_back(0);
  return d;
}

std::vector<std::uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

struct OptReply {
  std::uint32_t opt, type;
  std::vector<std::uint8_t> data;
};

struct HsRun {
  bool go = false;
  Handshaken h;
  std::vector<OptReply> replies;
  std::size_t raw = 0;  // bytes the server sent
};

// The handshake against `client` (flags first), over a socketpair.
HsRun handshake_run(Exports& exports, std::vector<std::uint8_t> client) {
  const std::vector<std::uint8_t> flags = {0, 0, 0, 3};
  client.insert(client.begin(), flags.begin(), flags.end());
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  HsRun r;
  std::thread t([&] {
    std::unique_ptr<Transport> transport;
    r.go = handshake(sv[0], transport, exports, TlsPolicy{}, Deadline{}, &r.h,
                     [](std::string_view) {});
    ::shutdown(sv[0], SHUT_RDWR);
  });
  EXPECT_TRUE(write_full(sv[1], client.data(), client.size()));
  ::shutdown(sv[1], SHUT_WR);
  std::vector<std::uint8_t> got;
  std::uint8_t buf[4096];
  for (ssize_t k; (k = ::read(sv[1], buf, sizeof buf)) > 0;) got.insert(got.end(), buf, buf + k);
  t.join();
  ::close(sv[0]);
  ::close(sv[1]);
  r.raw = got.size();
  for (std::size_t at = 18; at + 20 <= got.size();) {
    const std::uint8_t* h = got.data() + at;
    if (get64(h) != kOptReplyMagic) break;  // transmission started (GO's ACK was last)
    const std::uint32_t len = get32(h + 16);
    if (at + 20 + len > got.size()) break;
    r.replies.push_back({get32(h + 8), get32(h + 12), {h + 20, h + 20 + len}});
    at += 20 + len;
  }
  return r;
}

class StoresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; i++) ASSERT_TRUE(reg_.hot_add());
    ASSERT_TRUE(reg_.find(0u)->write_attr("disksize", "1M"));
    ASSERT_TRUE(reg_.find(2u)->write_attr("disksize", "2M"));  // zram1 stays uninitialised
  }
  StoreRegistry reg_;
  StoreExports exports_{reg_};
};

TEST_F(StoresTest, ListNamesEveryInitialisedStore) {
  const HsRun r = handshake_run(exports_, option(kOptList, {}));
  ASSERT_EQ(r.replies.size(), 3u);
  std::vector<std::string> names;
  for (std::size_t i = 0; i < 2; i++) {
    EXPECT_EQ(r.replies[i].type, kRepServer);
    const auto& d = r.replies[i].data;
    ASSERT_GE(d.size(), 4u);
    EXPECT_EQ(get32(d.data()), d.size() - 4);
    names.emplace_back(d.begin() + 4, d.end());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"zram0", "zram2"}));
  EXPECT_EQ(r.replies[2].type, kRepAck);
}

TEST_F(StoresTest, InfoAndGoByName) {
  std::vector<std::uint8_t> c;
  for (const char* n : {"zram2", "", "zram0", "zram1", "zram9", "ZRAM0", "/zram0"}) {
    const auto o = option(kOptInfo, info(n));
    c.insert(c.end(), o.begin(), o.end());
  }
  const auto abort = option(kOptAbort, {});
  c.insert(c.end(), abort.begin(), abort.end());
  const HsRun r = handshake_run(exports_, c);
  EXPECT_FALSE(r.go);
  // zram2, "" (zram0) and zram0: INFO_EXPORT, INFO_BLOCK_SIZE, ACK each; then four errors.
  ASSERT_EQ(r.replies.size(), 3u * 3 + 4 + 1);
  EXPECT_EQ(get64(r.replies[0].data.data() + 2), 2u << 20);
  EXPECT_EQ(get64(r.replies[3].data.data() + 2), 1u << 20);
  EXPECT_EQ(get64(r.replies[6].data.data() + 2), 1u << 20);
  for (std::size_t i = 9; i < 13; i++) EXPECT_EQ(r.replies[i].type, kRepErrUnknown) << i;
  EXPECT_EQ(r.replies[13].type, kRepAck);

  // GO: the named store is claimed, and held by the result.
  HsRun go = handshake_run(exports_, option(kOptGo, info("zram2")));
  ASSERT_TRUE(go.go);
  EXPECT_EQ(go.h.neg.size, 2u << 20);
  EXPECT_EQ(reg_.find(2u)->users(), 1u);
  EXPECT_EQ(reg_.find(0u)->users(), 0u);
  std::string msg;
  EXPECT_EQ(reg_.hot_remove(2, &msg).error(), Errc::busy);
  go.h.backend->close_user();
  // Two connections to one store share its backend (its stripe locks).
  HsRun a = handshake_run(exports_, option(kOptGo, info("zram0")));
  HsRun b = handshake_run(exports_, option(kOptExportName, bytes_of("zram0")));
  ASSERT_TRUE(a.go && b.go);
  EXPECT_EQ(a.h.backend, b.h.backend);
  EXPECT_EQ(reg_.find(0u)->users(), 2u);
  a.h.backend->close_user();
  b.h.backend->close_user();
  // An uninitialised or unknown store: GO refused, EXPORT_NAME closed without a word.
  EXPECT_FALSE(handshake_run(exports_, option(kOptGo, info("zram1"))).go);
  const HsRun gone = handshake_run(exports_, option(kOptExportName, bytes_of("zram9")));
  EXPECT_FALSE(gone.go);
  EXPECT_EQ(gone.raw, 18u);  // the greeting only
  EXPECT_FALSE(handshake_run(exports_, option(kOptExportName, bytes_of("zram1"))).go);
}

// ---- Races: hot_add/hot_remove against connections and control clients ------------------

// A client: GO on `name`, then a 4 KiB write and read-back of block `index`, then DISC.
// Returns -1 when the export was refused (not there, not initialised), 0 when the I/O
// round trip was right, 1 when anything went wrong after entering transmission.
int client_round(const std::string& path, const std::string& name, std::uint64_t index,
                 std::uint8_t fill) {
  const int fd = connect_unix_socket(path, nullptr).value_or(-1);
  if (fd < 0) return 1;
  std::uint8_t hello[18];
  std::vector<std::uint8_t> c = {0, 0, 0, 3};
  const auto go = option(kOptGo, info(name));
  c.insert(c.end(), go.begin(), go.end());
  int result = 1;
  if (read_full(fd, hello, sizeof hello) && write_full(fd, c.data(), c.size())) {
    for (;;) {
      std::uint8_t h[20];
      if (!read_full(fd, h, sizeof h)) break;
      std::vector<std::uint8_t> d(get32(h + 16));
      if (!d.empty() && !read_full(fd, d.data(), d.size())) break;
      const std::uint32_t type = get32(h + 12);
      if (type == kRepErrUnknown) {
        result = -1;
        break;
      }
      if (type != kRepAck) continue;  // INFO replies
      std::uint8_t rq[kRequestSize + kBlockSize];
      auto request = [&](std::uint16_t cmd, std::uint32_t len) {
        put32(rq, kRequestMagic);
        put16(rq + 4, 0);
        put16(rq + 6, cmd);
        put64(rq + 8, 42);
        put64(rq + 16, index * kBlockSize);
        put32(rq + 24, len);
      };
      request(kCmdWrite, kBlockSize);
      std::memset(rq + kRequestSize, fill, kBlockSize);
      std::uint8_t reply[kSimpleReplySize], data[kBlockSize];
      if (!write_full(fd, rq, sizeof rq) || !read_full(fd, reply, sizeof reply)) break;
      if (get32(reply + 4) != 0) break;
      request(kCmdRead, kBlockSize);
      if (!write_full(fd, rq, kRequestSize) || !read_full(fd, reply, sizeof reply) ||
          !read_full(fd, data, sizeof data) || get32(reply + 4) != 0)
        break;
      bool same = true;
      for (std::uint8_t b : data) same &= b == fill;
      request(kCmdDisc, 0);
      (void)write_full(fd, rq, kRequestSize);
      result = same ? 0 : 1;
      break;
    }
  }
  ::close(fd);
  return result;
}

TEST(StoresRaceTest, HotRemoveRacesConnectionsAndControlClients) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  testing::TempDir dir;
  StoreRegistry reg;
  ASSERT_EQ(*reg.hot_add(), 0u);
  ASSERT_TRUE(reg.find(0u)->write_attr("disksize", "1M"));
  StoreExports exports(reg);
  ServerOptions so;
  so.unix_path = dir / "nbd.sock";
  so.session.workers = 1;
  std::string msg;
  auto server = Server::start(exports, so, &msg);
  ASSERT_TRUE(server) << msg;
  const ControlTargets targets(reg);
  std::atomic<bool> stop{false};
  std::atomic<unsigned> entered{0}, refused{0}, removed{0}, busy{0}, bad{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 3; t++) {  // clients of zram1 (churned) and zram0 (stable)
    threads.emplace_back([&, t] {
      Random rng(seed + t);
      while (!stop.load(std::memory_order_relaxed)) {
        const bool stable = rng.next() % 4 == 0;
        const int r = client_round(so.unix_path, stable ? "zram0" : "zram1", t,
                                   static_cast<std::uint8_t>(rng.next()));
        if (r == 1) bad.fetch_add(1);
        (r == 0 ? entered : refused).fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  threads.emplace_back([&] {  // a control client that keeps zram1 USE'd
    ControlSelection sel;
    Random rng(seed + 10);
    while (!stop.load(std::memory_order_relaxed)) {
      (void)ControlServer::respond(targets, "USE zram1", &sel);
      for (int i = 0; i < 5; i++) {
        const std::string r = ControlServer::respond(
            targets, rng.next() % 2 ? "READ mm_stat" : "WRITE mem_limit 1M", &sel);
        if (r.rfind("OK ", 0) != 0 && r.find("ENODEV") == std::string::npos &&
            r.find("ENOENT") == std::string::npos)
          bad.fetch_add(1);
      }
    }
  });
  threads.emplace_back([&] {  // zram1: add, initialise, reset, remove, again
    while (!stop.load(std::memory_order_relaxed)) {
      if (!reg.find(1u)) (void)reg.hot_add();
      if (auto s = reg.find(1u)) {
        (void)s->write_attr("disksize", "256K");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        (void)s->write_attr("reset", "1");  // busy while a client is in transmission
      }
      const auto r = reg.hot_remove(1);
      (r ? removed : busy).fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  for (auto& t : threads) t.join();
  (*server)->stop();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(entered.load(), 0u);
  EXPECT_GT(removed.load(), 0u);
  for (const auto& s : reg.stores()) {
    EXPECT_EQ(s->users(), 0u) << s->name();
    s->check_invariants();
  }
  const StatsSnapshot st = (*server)->stats();
  EXPECT_GE(st.sessions, entered.load());
  EXPECT_EQ(st.buffer_bytes, 0u);  // every request and option buffer was given back
  EXPECT_GE(st.commands[static_cast<unsigned>(StatCmd::write)].requests, entered.load());
}

}  // namespace
}  // namespace uzram::nbd

// Every level in kLockLevels is taken by the program's own paths, and the lock-order
// checker sees it: this test drives each layer the way its users do (the store's write,
// read, discard, idle, writeback, recompress and compaction, the memory breakdown; an NBD
// server over a registry of stores with a client in transmission; the control server; an
// in-process `uzram load`; the serve log sink) and checks that the checker counted an
// acquisition of every level, and that the process holds no lock afterwards. A level
// nothing takes any more fails here: remove it from lock_order.h and docs/locking.md.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "cli/cli_testing.h"
#include "cli/log_sink.h"
#include "control/control.h"
#include "nbd/exports.h"
#include "nbd/protocol.h"
#include "nbd/server.h"
#include "nbd/wire.h"
#include "pool/pool_internal.h"
#include "sync/lock_order.h"
#include "testing/temp_dir.h"
#include "util/unix_socket.h"
#include "uzram/memory.h"
#include "uzram/store.h"
#include "uzram/store_registry.h"

namespace uzram {
namespace {

using testing::TempDir;

std::map<LockLevel, std::uint64_t> snapshot() {
  std::map<LockLevel, std::uint64_t> m;
  for (LockLevel l : kLockLevels) m[l] = lockdep::acquisitions(l);
  return m;
}

void attr_ok(Store& s, const char* name, const std::string& value) {
  std::string msg;
  ASSERT_TRUE(s.write_attr(name, value, &msg)) << name << " " << value << ": " << msg;
}

std::string block_of(unsigned i) {  // compressible text, different per block
  std::string b;
  while (b.size() < kBlockSize) b += "block " + std::to_string(i) + " of the lock-order test; ";
  b.resize(kBlockSize);
  return b;
}

// The store's own paths: registry (hot_add), init (disksize and the attributes), slot,
// stream and pool levels (write, read, discard), the backing device and the block
// writer's queue (writeback), recompression, compaction (pool workers), the memory
// breakdown.
void drive_store(StoreRegistry& reg, const TempDir& dir) {
  ASSERT_TRUE(reg.hot_add());
  std::shared_ptr<Store> s = reg.find(0u);
  ASSERT_TRUE(s);
  const std::string backing = dir / "backing";
  const int fd = ::open(backing.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 2 << 20), 0);
  ::close(fd);
  attr_ok(*s, "comp_algorithm", "lz4");
  attr_ok(*s, "recomp_algorithm", "algo=zstd priority=1");
  attr_ok(*s, "backing_dev", backing);
  attr_ok(*s, "disksize", "1M");
  for (unsigned i = 0; i < 64; i++) ASSERT_TRUE(s->write(i, block_of(i).data()));
  std::vector<unsigned char> buf(kBlockSize);
  for (unsigned i = 0; i < 64; i++) {
    ASSERT_TRUE(s->read(i, buf.data()));
    ASSERT_EQ(std::memcmp(buf.data(), block_of(i).data(), kBlockSize), 0) << i;
  }
  ASSERT_TRUE(s->discard(60 * kBlockSize, 4 * kBlockSize));
  attr_ok(*s, "idle", "all");
  attr_ok(*s, "recompress", "type=idle");
  attr_ok(*s, "writeback", "page_indexes=0-15");
  for (unsigned i = 0; i < 16; i++) {  // read back from the backing device
    ASSERT_TRUE(s->read(i, buf.data()));
    ASSERT_EQ(std::memcmp(buf.data(), block_of(i).data(), kBlockSize), 0) << i;
  }
  attr_ok(*s, "compact", "1");
  ASSERT_TRUE(memory_breakdown());
  s->check_invariants();
}

// An NBD client: GO on zram0, a partial-block write (read-modify-write under a stripe), a
// read back, a trim (a discard's stripe set), then DISC.
void nbd_client(const std::string& path) {
  using namespace nbd;  // NOLINT
  // 10 s: a missing reply fails the test instead of hanging it.
  const int fd = connect_unix_socket(path, nullptr, 10000).value_or(-1);
  ASSERT_GE(fd, 0);
  std::uint8_t hello[18];
  ASSERT_TRUE(read_full(fd, hello, sizeof hello));
  const std::string name = "zram0";
  std::vector<std::uint8_t> c = {0, 0, 0, 3};  // fixed newstyle, no zeroes
  std::uint8_t opt[16];
  put64(opt, kIHaveOpt);
  put32(opt + 8, kOptGo);
  put32(opt + 12, static_cast<std::uint32_t>(4 + name.size() + 2));
  c.insert(c.end(), opt, opt + sizeof opt);
  std::uint8_t len[4];
  put32(len, static_cast<std::uint32_t>(name.size()));
  c.insert(c.end(), len, len + 4);
  c.insert(c.end(), name.begin(), name.end());
  c.push_back(0);  // no info requests
  c.push_back(0);
  ASSERT_TRUE(write_full(fd, c.data(), c.size()));
  for (;;) {  // INFO replies, then the ACK
    std::uint8_t h[20];
    ASSERT_TRUE(read_full(fd, h, sizeof h));
    std::vector<std::uint8_t> d(get32(h + 16));
    if (!d.empty()) {
      ASSERT_TRUE(read_full(fd, d.data(), d.size()));
    }
    ASSERT_EQ(get32(h + 12) & kRepErrBit, 0u);
    if (get32(h + 12) == kRepAck) break;
  }
  std::uint8_t rq[kRequestSize + 512];
  const auto request = [&](std::uint16_t cmd, std::uint64_t off, std::uint32_t n) {
    put32(rq, kRequestMagic);
    put16(rq + 4, 0);
    put16(rq + 6, cmd);
    put64(rq + 8, 7);
    put64(rq + 16, off);
    put32(rq + 24, n);
  };
  std::uint8_t reply[kSimpleReplySize], data[512];
  request(kCmdWrite, 100 * kBlockSize + 512, 512);
  std::memset(rq + kRequestSize, 0x5a, 512);
  ASSERT_TRUE(write_full(fd, rq, sizeof rq));
  ASSERT_TRUE(read_full(fd, reply, sizeof reply));
  EXPECT_EQ(get32(reply + 4), 0u);
  request(kCmdRead, 100 * kBlockSize + 512, 512);
  ASSERT_TRUE(write_full(fd, rq, kRequestSize));
  ASSERT_TRUE(read_full(fd, reply, sizeof reply));
  EXPECT_EQ(get32(reply + 4), 0u);
  ASSERT_TRUE(read_full(fd, data, sizeof data));
  EXPECT_EQ(data[0], 0x5a);
  request(kCmdTrim, 100 * kBlockSize, 4 * kBlockSize);
  ASSERT_TRUE(write_full(fd, rq, kRequestSize));
  ASSERT_TRUE(read_full(fd, reply, sizeof reply));
  EXPECT_EQ(get32(reply + 4), 0u);
  request(kCmdDisc, 0, 0);
  ASSERT_TRUE(write_full(fd, rq, kRequestSize));
  ::close(fd);
}

// A store whose backing tier is zram0 through the NBD server (nbd+unix://, libnbd):
// writeback and read-back take the remote tier's link, queue and completion locks.
void drive_remote_tier(StoreRegistry& reg, const std::string& socket) {
  auto n = reg.hot_add();
  ASSERT_TRUE(n);
  std::shared_ptr<Store> s = reg.find(*n);
  ASSERT_TRUE(s);
  attr_ok(*s, "backing_dev", "nbd+unix:///zram0?socket=" + socket);
  attr_ok(*s, "disksize", "256K");
  for (unsigned i = 0; i < 16; i++) ASSERT_TRUE(s->write(i, block_of(i).data()));
  attr_ok(*s, "writeback", "page_indexes=0-15");
  std::vector<unsigned char> buf(kBlockSize);
  for (unsigned i = 0; i < 16; i++) {  // read back from the remote
    ASSERT_TRUE(s->read(i, buf.data()));
    ASSERT_EQ(std::memcmp(buf.data(), block_of(i).data(), kBlockSize), 0) << i;
  }
  attr_ok(*s, "reset", "1");  // disconnects from the remote before the server stops
  s.reset();
  ASSERT_TRUE(reg.hot_remove(*n));
}

// The NBD server over the registry (exports, server state, session queue and send side,
// stripes), logging through a LogSink; and a remote tier served by it.
void drive_nbd(StoreRegistry& reg, const TempDir& dir) {
  std::FILE* log_file = std::tmpfile();
  ASSERT_NE(log_file, nullptr);
  {
    cli::LogSink sink(log_file);
    nbd::StoreExports exports(reg);
    nbd::ServerOptions so;
    so.unix_path = dir / "nbd.sock";
    so.session.workers = 2;
    so.log = [&sink](std::string_view line) { sink.write(line); };
    std::string msg;
    auto server = nbd::Server::start(exports, so, &msg);
    ASSERT_TRUE(server) << msg;
    nbd_client(so.unix_path);
    drive_remote_tier(reg, so.unix_path);
    sink.write("lock-order test: client done");
    (*server)->stop();
  }
  std::fclose(log_file);
}

// The control server: a client reads an attribute, then the server stops.
void drive_control(StoreRegistry& reg, const TempDir& dir) {
  std::string msg;
  const std::string path = dir / "control.sock";
  auto server = ControlServer::start(path, ControlTargets(reg), &msg);
  ASSERT_TRUE(server) << msg;
  // 10 s: a wrong reply fails the test instead of hanging it.
  const int fd = connect_unix_socket(path, nullptr, 10000).value_or(-1);
  ASSERT_GE(fd, 0);
  const std::string q = "USE zram0\nREAD disksize\n";
  ASSERT_EQ(::write(fd, q.data(), q.size()), static_cast<ssize_t>(q.size()));
  std::string got;
  char buf[256];
  while (got.find("1048576\n") == std::string::npos && got.find("ERR") == std::string::npos) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  EXPECT_NE(got.find("1048576\n"), std::string::npos) << got;
  ::close(fd);
  (*server)->stop();
}

// `uzram load`: its workers share an error state (cli_load).
void drive_load(const TempDir& dir) {
  const std::string image = dir / "image";
  std::string bytes;
  for (unsigned i = 0; i < 8; i++) bytes += block_of(i);
  std::FILE* f = std::fopen(image.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
  const testing::CliResult r = testing::run_cli({"load", image, "--jobs", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
}

TEST(AllLockLevelsTest, EveryLevelIsTakenAndSeen) {
  if (!kLockDebug) GTEST_SKIP() << "lock-order checker compiled out (UZRAM_DEBUG_LEVEL < 2)";
  TempDir dir;
  const auto before = snapshot();
  {
    StoreRegistry reg;
    drive_store(reg, dir);
    drive_nbd(reg, dir);
    drive_control(reg, dir);
    drive_load(dir);
    // The pool's kernel-faithful translation (the pool level) is a compile-time policy
    // the store does not use: tests/lockorder/pool_levels_test.cc drives it.
    PoolOptions o;
    o.name = "lockorder-all";
    auto pool = std::move(create_pool(o, TranslationMode::kernel_rwlock).value());
    Handle h = pool->alloc(100).value();
    char b[100] = {};
    pool->write(h, b, sizeof b);
    pool->free(h);
  }
  const auto after = snapshot();
  for (LockLevel l : kLockLevels) {
    // tier_done is taken only by a request the remote tier queues for its I/O thread,
    // which happens when its direct links are all busy or not open yet: timing, not a
    // path a test can force from outside. Its protocol is covered by RemoteTest.
    if (l == LockLevel::tier_done && after.at(l) == before.at(l)) {
      std::printf("note: tier_done not taken in this run (every remote request went direct)\n");
      continue;
    }
    EXPECT_GT(after.at(l), before.at(l)) << lock_level_name(l) << " was never taken";
  }
  EXPECT_EQ(lockdep::held_count(), 0);
}

}  // namespace
}  // namespace uzram

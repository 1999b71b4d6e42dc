// control/control_test.cc - the control protocol: respond() without I/O, then ControlServer
// and ControlClient over a real Unix socket, including malformed and hostile input.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include "control/control.h"
#include "testing/temp_dir.h"
#include "uzram/store.h"
#include "uzram/store_registry.h"

namespace uzram::testing {
namespace {

std::unique_ptr<Store> make_store(const std::string& name, bool init = true) {
  auto s = Store::create(name);
  EXPECT_TRUE(s);
  if (init) {
    EXPECT_TRUE((*s)->write_attr("disksize", "1M"));
  }
  return std::move(s).value();
}

// A raw connection, to send what ControlClient never would.
int raw_connect(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  for (std::size_t off = 0; off < bytes.size();) {
    const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may close first (oversized lines)
    off += static_cast<std::size_t>(n);
  }
}

// Reads until `n` newlines arrived or the peer closed (5 s limit).
std::string recv_lines(int fd, int n) {
  std::string r;
  char b[4096];
  while (std::count(r.begin(), r.end(), '\n') < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    const ssize_t k = ::recv(fd, b, sizeof b, 0);
    if (k <= 0) break;
    r.append(b, static_cast<std::size_t>(k));
  }
  return r;
}

TEST(ControlRespond, Commands) {
  auto a = make_store("zram0"), b = make_store("zram1", false);
  const ControlTargets stores({a.get(), b.get()});
  ControlSelection sel;
  EXPECT_EQ(ControlServer::respond(stores, "LIST", &sel), "OK 12\nzram0\nzram1\n");
  const std::string mm = *a->read_attr("mm_stat");
  EXPECT_EQ(ControlServer::respond(stores, "READ mm_stat", &sel),
            "OK " + std::to_string(mm.size()) + "\n" + mm);
  EXPECT_EQ(ControlServer::respond(stores, "READ disksize\r", &sel), "OK 8\n1048576\n");
  EXPECT_EQ(ControlServer::respond(stores, "WRITE mem_limit 2M", &sel), "OK 0\n");
  EXPECT_EQ(a->mm_stat().mem_limit, 2u << 20);
  EXPECT_EQ(ControlServer::respond(stores, "USE zram1", &sel), "OK 0\n");
  EXPECT_EQ(sel.store.get(), b.get());
  EXPECT_EQ(ControlServer::respond(stores, "READ initstate", &sel), "OK 2\n0\n");
  EXPECT_EQ(ControlServer::respond(stores, "WRITE comp_algorithm lz4", &sel), "OK 0\n");
  EXPECT_EQ(ControlServer::respond(stores, "WRITE algorithm_params algo=lz4 level=1", &sel),
            "OK 0\n");
  const std::string info = ControlServer::respond(stores, "INFO", &sel);
  EXPECT_NE(info.find("\nname zram1\ninitstate 0\ndisksize 0\n"), std::string::npos) << info;
  EXPECT_NE(info.find("\nhuge_pages_since 0\nzspages 0\n"), std::string::npos) << info;
}

TEST(ControlRespond, Errors) {
  auto a = make_store("zram0");
  const ControlTargets stores({a.get()});
  ControlSelection sel;
  auto r = [&](std::string_view req) { return ControlServer::respond(stores, req, &sel); };
  EXPECT_EQ(r("READ nosuch"), "ERR ENOENT nosuch: no such attribute\n");
  EXPECT_EQ(r("READ reset"), "ERR EACCES reset: write-only attribute\n");
  EXPECT_EQ(r("WRITE mm_stat 1"), "ERR EACCES mm_stat: read-only attribute\n");
  EXPECT_EQ(r("WRITE disksize 2M"),
            "ERR EBUSY disksize: device already initialised (reset it first)\n");
  EXPECT_EQ(r("WRITE mem_limit lots"), "ERR EINVAL mem_limit: invalid size 'lots'\n");
  EXPECT_EQ(r(""), "ERR EINVAL empty request\n");
  EXPECT_EQ(r("   "), "ERR EINVAL empty request\n");
  EXPECT_EQ(r("READ"), "ERR EINVAL READ: attribute name missing\n");
  EXPECT_EQ(r("READ mm_stat extra"), "ERR EINVAL READ: takes one attribute name\n");
  EXPECT_EQ(r("read mm_stat"),
            "ERR EINVAL unknown command 'read' (LIST, USE, READ, WRITE, INFO)\n");
  EXPECT_EQ(r(std::string_view("READ \0mm", 8)),
            "ERR EINVAL request contains control characters\n");
  EXPECT_EQ(r("USE zram9"), "ERR ENOENT USE: no store named 'zram9'\n");
  EXPECT_EQ(r(std::string(5000, 'A')), "ERR E2BIG request line too long\n");
  ControlSelection none;
  const ControlTargets empty(std::vector<Store*>{});
  EXPECT_EQ(ControlServer::respond(empty, "READ mm_stat", &none),
            "ERR ENODEV no store is served here\n");
  EXPECT_EQ(ControlServer::respond(empty, "LIST", &none), "OK 0\n");
}

TEST(ControlRespond, ZramControlHotAddAndHotRemove) {
  StoreRegistry reg;
  const ControlTargets t(reg);
  ControlSelection sel;
  auto r = [&](std::string_view req) { return ControlServer::respond(t, req, &sel); };
  EXPECT_EQ(r("READ disksize"), "ERR ENODEV no store zram0 here (USE another one)\n");
  EXPECT_EQ(r("USE zram-control"), "OK 0\n");
  EXPECT_EQ(r("READ hot_add"), "OK 2\n0\n");
  EXPECT_EQ(r("READ hot_add"), "OK 2\n1\n");
  EXPECT_EQ(r("WRITE hot_add 1"), "ERR EACCES hot_add: read-only attribute\n");
  EXPECT_EQ(r("READ hot_remove"), "ERR EACCES hot_remove: write-only attribute\n");
  EXPECT_EQ(r("READ disksize"),
            "ERR ENOENT disksize: no such attribute of zram-control (hot_add, hot_remove)\n");
  EXPECT_EQ(r("INFO"), "ERR EINVAL INFO: zram-control is not a store\n");
  EXPECT_EQ(r("WRITE hot_remove one"),
            "ERR EINVAL hot_remove: expects a store number, e.g. 'hot_remove 1'\n");
  EXPECT_EQ(r("WRITE hot_remove 01"),
            "ERR EINVAL hot_remove: expects a store number, e.g. 'hot_remove 1'\n");
  EXPECT_EQ(r("WRITE hot_remove 9"), "ERR ENODEV hot_remove: no store zram9\n");
  EXPECT_EQ(r("LIST"), "OK 12\nzram0\nzram1\n");  // zram-control is not a store
  EXPECT_EQ(r("USE zram1"), "OK 0\n");
  EXPECT_EQ(r("WRITE disksize 1M"), "OK 0\n");
  ControlSelection admin{true, nullptr};
  EXPECT_EQ(ControlServer::respond(t, "WRITE hot_remove 1", &admin),
            "ERR EBUSY hot_remove: zram1 is initialised (reset it first)\n");
  EXPECT_EQ(r("WRITE reset 1"), "OK 0\n");
  EXPECT_EQ(ControlServer::respond(t, "WRITE hot_remove 1", &admin), "OK 0\n");
  // The connection still holds the removed store: no dangling pointer, a clear error.
  EXPECT_EQ(r("READ disksize"), "ERR ENODEV zram1 was removed (hot_remove); USE another store\n");
  EXPECT_EQ(r("WRITE disksize 1M"),
            "ERR ENODEV zram1 was removed (hot_remove); USE another store\n");
  EXPECT_EQ(r("INFO"), "ERR ENODEV zram1 was removed (hot_remove); USE another store\n");
  EXPECT_EQ(r("USE zram1"), "ERR ENOENT USE: no store named 'zram1'\n");
  EXPECT_EQ(ControlServer::respond(t, "READ hot_add", &admin), "OK 2\n1\n");
  EXPECT_EQ(r("READ disksize"), "ERR ENODEV zram1 was removed (hot_remove); USE another store\n");
  EXPECT_EQ(r("USE zram1"), "OK 0\n");  // the new zram1
  EXPECT_EQ(r("READ disksize"), "OK 2\n0\n");
  ControlSelection def;  // the default store is looked up per request
  EXPECT_EQ(ControlServer::respond(t, "READ initstate", &def), "OK 2\n0\n");
  EXPECT_EQ(ControlServer::respond(t, "WRITE hot_remove 0", &admin), "OK 0\n");
  EXPECT_EQ(ControlServer::respond(t, "READ initstate", &def),
            "ERR ENODEV no store zram0 here (USE another one)\n");
  // A fixed list has no zram-control.
  auto a = make_store("zram0");
  const ControlTargets fixed({a.get()});
  ControlSelection f;
  EXPECT_EQ(ControlServer::respond(fixed, "USE zram-control", &f),
            "ERR ENOENT USE: no store named 'zram-control'\n");
}

TEST(ControlRespond, InfoHasUsersIoAndMemory) {
  auto a = make_store("zram0");
  const ControlTargets t({a.get()});
  ControlSelection sel;
  alignas(8) unsigned char blk[kBlockSize] = {1, 2, 3};
  ASSERT_TRUE(a->write(0, blk));
  ASSERT_TRUE(a->read(0, blk));
  ASSERT_TRUE(a->open_user());
  const std::string info = ControlServer::respond(t, "INFO", &sel);
  a->close_user();
  const std::string frames =
      "\nmem_pool_frames " + std::to_string(a->mm_stat().mem_used_total) + "\n";
  for (const std::string& want :
       {std::string("\nusers 1\n"), std::string("\nblocks_read 1\n"),
        std::string("\nblocks_written 1\n"), std::string("\nbd_writes 0\n"), frames,
        std::string("\nmem_slot_table 8192\n"), std::string("\nmem_pool_idle_frames "),
        std::string("\nmem_pool_metadata "), std::string("\nmem_streams ")}) {
    EXPECT_NE(info.find(want), std::string::npos) << want << " in\n" << info;
  }
}

TEST(ControlErrno, NamesRoundTrip) {
  EXPECT_EQ(errno_name(make_error_code(Errc::busy)), "EBUSY");
  EXPECT_EQ(errno_name(make_error_code(Errc::no_memory)), "ENOMEM");
  EXPECT_EQ(errno_name(std::error_code(ENOENT, std::generic_category())), "ENOENT");
  EXPECT_EQ(errno_from_name("EACCES"), std::error_code(EACCES, std::generic_category()));
  EXPECT_EQ(errno_from_name("EWHATEVER"), std::error_code(EIO, std::generic_category()));
}

TEST(ControlDefaults, XdgRuleAndFallback) {
  const char* old = std::getenv("XDG_RUNTIME_DIR");
  const std::string saved = old ? old : "";
  ::setenv("XDG_RUNTIME_DIR", "/run/user/1234", 1);
  EXPECT_EQ(default_control_dir(), "/run/user/1234/uzram");
  EXPECT_EQ(default_control_socket(), "/run/user/1234/uzram/control.sock");
  ::setenv("XDG_RUNTIME_DIR", "", 1);
  EXPECT_EQ(default_control_socket(), "./run/uzram/control.sock");
  ::unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(default_control_dir(), "./run/uzram");
  if (old) ::setenv("XDG_RUNTIME_DIR", saved.c_str(), 1);
}

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = make_store("zram0");
    b_ = make_store("zram1");
    path_ = dir_ / "sub/dir/control.sock";
    std::string msg;
    auto s = ControlServer::start(path_, {a_.get(), b_.get()}, &msg, {4});
    ASSERT_TRUE(s) << msg;
    server_ = std::move(s).value();
  }
  TempDir dir_;
  std::unique_ptr<Store> a_, b_;
  std::string path_;
  std::unique_ptr<ControlServer> server_;
};

TEST_F(ControlServerTest, SocketModeAndDirectory) {
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_ / "sub/dir").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  server_->stop();
  EXPECT_NE(::stat(path_.c_str(), &st), 0);  // removed
  server_->stop();                           // idempotent
}

TEST_F(ControlServerTest, ClientReadWriteListUse) {
  std::string msg;
  auto c = ControlClient::connect(path_, &msg);
  ASSERT_TRUE(c) << msg;
  auto names = c->list();
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, (std::vector<std::string>{"zram0", "zram1"}));
  EXPECT_EQ(*c->read_attr("comp_algorithm"), *a_->read_attr("comp_algorithm"));
  ASSERT_TRUE(c->use("zram1"));
  ASSERT_TRUE(c->write_attr("mem_limit", "1M"));
  EXPECT_EQ(b_->mm_stat().mem_limit, 1u << 20);
  EXPECT_EQ(a_->mm_stat().mem_limit, 0u);
  auto bad = c->read_attr("nosuch", &msg);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), std::error_code(ENOENT, std::generic_category()));
  EXPECT_EQ(msg, "nosuch: no such attribute");
  auto one = control_request(path_, "READ disksize");
  ASSERT_TRUE(one);
  EXPECT_EQ(*one, "1048576\n");
}

TEST_F(ControlServerTest, LargePayloadToASlowReader) {
  std::vector<char> block(4096, 'x');
  for (std::uint64_t i = 0; i < 256; i++) ASSERT_TRUE(a_->write(i, block.data()));
  auto c = ControlClient::connect(path_);
  ASSERT_TRUE(c);
  auto r = c->read_attr("block_state");  // 256 lines, larger than one socket buffer write
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, *a_->read_attr("block_state"));
}

TEST_F(ControlServerTest, HalfCloseStillGetsEveryResponse) {
  std::vector<char> block(4096, 'x');
  for (std::uint64_t i = 0; i < 256; i++) ASSERT_TRUE(a_->write(i, block.data()));
  const std::string one = *a_->read_attr("block_state");
  const std::string expect_one = "OK " + std::to_string(one.size()) + "\n" + one;
  const int fd = raw_connect(path_);
  std::string req;
  for (int i = 0; i < 20; i++) req += "READ block_state\n";
  send_all(fd, req);
  ::shutdown(fd, SHUT_WR);  // like `printf ... | nc -U`
  std::string got;
  char b[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    const ssize_t k = ::recv(fd, b, sizeof b, 0);
    if (k <= 0) break;  // closed once everything was answered
    got.append(b, static_cast<std::size_t>(k));
  }
  ::close(fd);
  std::string want;
  for (int i = 0; i < 20; i++) want += expect_one;
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want);
}

TEST_F(ControlServerTest, GarbageAndOversizedLinesAndServerSurvives) {
  int fd = raw_connect(path_);
  send_all(fd, std::string("\x01\x02garbage\xff\n", 11));
  EXPECT_EQ(recv_lines(fd, 1), "ERR EINVAL request contains control characters\n");
  send_all(fd, "FROB\nLIST\n");  // pipelined: two responses, in order
  EXPECT_EQ(
      recv_lines(fd, 4),
      "ERR EINVAL unknown command 'FROB' (LIST, USE, READ, WRITE, INFO)\nOK 12\nzram0\nzram1\n");
  send_all(fd, std::string(3 * kControlMaxLine, 'A'));  // no newline: over the bound
  EXPECT_EQ(recv_lines(fd, 2), "ERR E2BIG request line longer than 4096 bytes\n");  // then closed
  ::close(fd);
  fd = raw_connect(path_);
  send_all(fd, std::string(kControlMaxLine + 10, 'B') + "\n");
  EXPECT_EQ(recv_lines(fd, 2), "ERR E2BIG request line longer than 4096 bytes\n");
  ::close(fd);
  fd = raw_connect(path_);
  send_all(fd, "READ disk");  // a partial line, then hang up
  ::close(fd);
  auto c = ControlClient::connect(path_);  // still serving
  ASSERT_TRUE(c);
  EXPECT_EQ(*c->read_attr("initstate"), "1\n");
}

TEST_F(ControlServerTest, TooManyClientsGetBusy) {
  std::vector<int> fds;
  for (int i = 0; i < 4; i++) {
    fds.push_back(raw_connect(path_));
    send_all(fds.back(), "LIST\n");
    EXPECT_EQ(recv_lines(fds.back(), 3), "OK 12\nzram0\nzram1\n");
  }
  const int extra = raw_connect(path_);
  EXPECT_EQ(recv_lines(extra, 1), "ERR EBUSY too many control connections\n");
  ::close(extra);
  ::close(fds[0]);
  bool served = false;  // once the server has noticed the hang-up, a new client is served
  for (int tries = 0; tries < 10000 && !served; tries++) {
    auto c = ControlClient::connect(path_);
    ASSERT_TRUE(c);
    served = static_cast<bool>(c->list());
    if (!served) std::this_thread::yield();
  }
  EXPECT_TRUE(served);
  for (std::size_t i = 1; i < fds.size(); i++) ::close(fds[i]);
}

TEST_F(ControlServerTest, ConcurrentClients) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 3; t++) {
    threads.emplace_back([&] {
      auto c = ControlClient::connect(path_);
      if (!c) return;
      for (int i = 0; i < 200; i++) {
        if (auto r = c->read_attr("mm_stat"); r && r->size() == 9 * 9) ok++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 600);
}

TEST_F(ControlServerTest, LiveSocketIsNotStolenStaleOneIsReplaced) {
  std::string msg;
  auto second = ControlServer::start(path_, {a_.get()}, &msg);
  EXPECT_FALSE(second);
  EXPECT_EQ(second.error(), make_error_code(Errc::busy));
  EXPECT_NE(msg.find("another server is listening"), std::string::npos);
  // A stale socket: bound, never listened.
  const std::string stale = dir_ / "stale.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, stale.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::close(fd);
  auto third = ControlServer::start(stale, {a_.get()}, &msg);
  ASSERT_TRUE(third) << msg;
  EXPECT_EQ(*control_request(stale, "READ initstate"), "1\n");
}

// A FIFO named as backing_dev or as a dictionary is refused at once: the one server thread
// (and the store's init lock, which block I/O shares) is never held up by an open().
TEST(ControlFilesTest, FifoAttributesAnswerAtOnce) {
  TempDir dir;
  auto fresh = make_store("zram0", false);
  auto served = make_store("zram1");
  const std::string path = dir / "c.sock", fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string msg;
  auto server = ControlServer::start(path, {fresh.get(), served.get()}, &msg);
  ASSERT_TRUE(server) << msg;
  auto c = ControlClient::connect(path, &msg, 10000);  // every call bounded: a hang fails
  ASSERT_TRUE(c) << msg;
  ASSERT_TRUE(c->write_attr("comp_algorithm", "zstd", &msg)) << msg;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c->write_attr("backing_dev", fifo, &msg);
  EXPECT_EQ(r.error(), std::error_code(EINVAL, std::generic_category()));
  EXPECT_NE(msg.find("is a FIFO"), std::string::npos) << msg;
  r = c->write_attr("algorithm_params", "algo=zstd dict=" + fifo, &msg);
  EXPECT_EQ(r.error(), std::error_code(EINVAL, std::generic_category()));
  EXPECT_NE(msg.find("is a FIFO"), std::string::npos) << msg;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  // Block I/O on the other store went on meanwhile, and the server still answers.
  unsigned char block[kBlockSize] = {1};
  EXPECT_TRUE(served->write(0, block));
  ASSERT_TRUE(c->use("zram1", &msg)) << msg;
  EXPECT_EQ(*c->read_attr("initstate"), "1\n");
}

TEST_F(ControlServerTest, RefusesFilesAndBadPaths) {
  std::string msg;
  write_file(dir_ / "plain", "data");
  auto r = ControlServer::start(dir_ / "plain", {a_.get()}, &msg);
  EXPECT_FALSE(r);
  EXPECT_NE(msg.find("not a socket"), std::string::npos);
  EXPECT_FALSE(ControlServer::start(dir_ / std::string(200, 'x'), {a_.get()}, &msg));
  auto dup = ControlServer::start(dir_ / "dup.sock", {a_.get(), a_.get()}, &msg);
  EXPECT_FALSE(dup);
  EXPECT_NE(msg.find("two stores named"), std::string::npos);
  auto none = ControlClient::connect(dir_ / "missing.sock", &msg);
  EXPECT_FALSE(none);
  EXPECT_EQ(none.error(), std::error_code(ENOENT, std::generic_category()));
}

}  // namespace
}  // namespace uzram::testing

// listen_unix_socket(): the directory rules (created 0700; an existing one owned by us and
// not group/world-writable; no symbolic link), the socket's mode under any umask, the
// stale-socket probe, refusals that leave the existing file alone, and two servers
// starting on one path at once; connect_unix_socket().
#include "util/unix_socket.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace uzram {
namespace {

class TempDir {
 public:
  TempDir() {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t && *t ? t : "/tmp") + "/uzram-sock-XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& n) const { return path_ + "/" + n; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

mode_t mode_of(const std::string& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

bool connects(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

std::error_code err(int e) { return {e, std::generic_category()}; }

// Sets the umask for one scope (tests only: the library never touches it).
struct Umask {
  explicit Umask(mode_t m) : old(::umask(m)) {}
  ~Umask() { ::umask(old); }
  mode_t old;
};

TEST(UnixSocket, CreatesPrivateDirectoriesAndA0600SocketUnderAnyUmask) {
  TempDir t;
  for (mode_t um : {mode_t{0}, mode_t{022}, mode_t{0277}}) {
    SCOPED_TRACE(um);
    Umask scoped(um);
    const std::string base = t / ("u" + std::to_string(um));
    const std::string path = base + "/a/b/s.sock";
    std::string msg;
    auto fd = listen_unix_socket(path, &msg);
    ASSERT_TRUE(fd) << msg;
    EXPECT_EQ(mode_of(base), 0700u);
    EXPECT_EQ(mode_of(base + "/a"), 0700u);
    EXPECT_EQ(mode_of(base + "/a/b"), 0700u);
    EXPECT_EQ(mode_of(path), 0600u);
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_TRUE(connects(path));
    EXPECT_EQ(::umask(um), um);  // unchanged by the call
    ::close(*fd);
  }
}

TEST(UnixSocket, AcceptsAnExistingPrivateDirectoryAsItIs) {
  TempDir t;
  const std::string d = t / "mine";
  ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(d.c_str(), 0755), 0);
  std::string msg;
  auto fd = listen_unix_socket(d + "/s.sock", &msg);
  ASSERT_TRUE(fd) << msg;
  EXPECT_EQ(mode_of(d), 0755u);  // not writable by others: fine, and left alone
  ::close(*fd);
}

TEST(UnixSocket, RefusesAGroupOrWorldWritableDirectory) {
  TempDir t;
  for (mode_t m : {mode_t{0777}, mode_t{0770}, mode_t{01777}}) {
    const std::string d = t / ("open" + std::to_string(m));
    ASSERT_EQ(::mkdir(d.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(d.c_str(), m), 0);
    std::string msg;
    auto fd = listen_unix_socket(d + "/s.sock", &msg);
    ASSERT_FALSE(fd) << m;
    EXPECT_EQ(fd.error(), err(EPERM));
    EXPECT_NE(msg.find("writable by group or others"), std::string::npos) << msg;
    EXPECT_NE(msg.find(d), std::string::npos) << msg;
    EXPECT_EQ(mode_of(d), m);  // not "fixed" behind the user's back
    EXPECT_NE(::access((d + "/s.sock").c_str(), F_OK), 0);
    EXPECT_FALSE(secure_socket_dir(d, &msg));
  }
}

// The directories above: others must not be able to swap the socket directory.
TEST(UnixSocket, RefusesADirectoryOthersCanReplace) {
  TempDir t;
  const std::string open_dir = t / "open", sticky = t / "sticky";
  for (const std::string& d : {open_dir, sticky}) ASSERT_EQ(::mkdir(d.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(sticky.c_str(), 01777), 0);  // as /tmp: fine
  std::string msg;
  auto fd = listen_unix_socket(open_dir + "/private/s.sock", &msg);
  ASSERT_FALSE(fd);
  EXPECT_EQ(fd.error(), err(EPERM));
  EXPECT_NE(msg.find(open_dir + ": a directory above the socket directory"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("mode 0777 (writable by others, not sticky)"), std::string::npos) << msg;
  fd = listen_unix_socket(sticky + "/private/s.sock", &msg);
  ASSERT_TRUE(fd) << msg;
  ::close(*fd);
  if (::geteuid() != 0) return;
  const std::string theirs = t / "theirs";
  ASSERT_EQ(::mkdir(theirs.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((theirs + "/mine").c_str(), 0700), 0);
  ASSERT_EQ(::chown(theirs.c_str(), 65534, 65534), 0);
  fd = listen_unix_socket(theirs + "/mine/s.sock", &msg);
  ASSERT_FALSE(fd);
  EXPECT_NE(msg.find(theirs + ": a directory above the socket directory " + theirs +
                     "/mine is owned by uid 65534"),
            std::string::npos)
      << msg;
  // Relative paths are checked the same way (through "..", from the directory itself).
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(::chdir((theirs + "/mine").c_str()), 0);
  fd = listen_unix_socket("s.sock", &msg);
  EXPECT_FALSE(fd);
  EXPECT_NE(msg.find("is owned by uid 65534"), std::string::npos) << msg;
  ASSERT_EQ(::chdir(cwd), 0);
}

TEST(UnixSocket, RefusesADirectoryOwnedByAnotherUid) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown a directory to nobody";
  TempDir t;
  const std::string d = t / "theirs";
  ASSERT_EQ(::mkdir(d.c_str(), 0700), 0);
  ASSERT_EQ(::chown(d.c_str(), 65534, 65534), 0);
  std::string msg;
  auto fd = listen_unix_socket(d + "/s.sock", &msg);
  ASSERT_FALSE(fd);
  EXPECT_EQ(fd.error(), err(EPERM));
  EXPECT_NE(msg.find("owned by uid 65534"), std::string::npos) << msg;
}

TEST(UnixSocket, RefusesSymbolicLinks) {
  TempDir t;
  const std::string real = t / "real";
  ASSERT_EQ(::mkdir(real.c_str(), 0700), 0);
  // The socket directory is a symbolic link (even to a private directory of ours).
  ASSERT_EQ(::symlink(real.c_str(), (t / "link").c_str()), 0);
  std::string msg;
  auto fd = listen_unix_socket(t / "link/s.sock", &msg);
  ASSERT_FALSE(fd);
  EXPECT_EQ(fd.error(), err(EPERM));
  EXPECT_NE(msg.find("symbolic link"), std::string::npos) << msg;
  EXPECT_NE(::access((real + "/s.sock").c_str(), F_OK), 0);
  // The socket path is a symbolic link: to a file (which must survive) or dangling.
  const std::string victim = t / "victim";
  std::ofstream(victim) << "keep me";
  ASSERT_EQ(::symlink(victim.c_str(), (real + "/s.sock").c_str()), 0);
  ASSERT_EQ(::symlink((t / "nowhere").c_str(), (real + "/d.sock").c_str()), 0);
  for (const char* n : {"/s.sock", "/d.sock"}) {
    fd = listen_unix_socket(real + n, &msg);
    ASSERT_FALSE(fd) << n;
    EXPECT_EQ(fd.error(), err(EEXIST));
    EXPECT_NE(msg.find("a symbolic link, not a socket"), std::string::npos) << msg;
    struct stat st;
    ASSERT_EQ(::lstat((real + n).c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
  }
  std::ifstream in(victim);
  std::string s;
  std::getline(in, s);
  EXPECT_EQ(s, "keep me");
  EXPECT_NE(::access((t / "nowhere").c_str(), F_OK), 0);  // nothing created through it
  // A socket path whose directory is a regular file.
  fd = listen_unix_socket(victim + "/s.sock", &msg);
  ASSERT_FALSE(fd);
  EXPECT_EQ(fd.error(), err(ENOTDIR));
}

TEST(UnixSocket, LiveSocketIsKeptStaleOneReplacedOthersRefused) {
  TempDir t;
  const std::string path = t / "s.sock";
  std::string msg;
  auto first = listen_unix_socket(path, &msg);
  ASSERT_TRUE(first) << msg;
  auto second = listen_unix_socket(path, &msg);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), err(EBUSY));
  EXPECT_NE(msg.find("another server is listening"), std::string::npos) << msg;
  EXPECT_TRUE(connects(path));  // still the first server's
  ::close(*first);              // now stale: nobody listens
  auto third = listen_unix_socket(path, &msg);
  ASSERT_TRUE(third) << msg;
  EXPECT_TRUE(connects(path));
  ::close(*third);
  std::ofstream(t / "plain") << "data";
  auto plain = listen_unix_socket(t / "plain", &msg);
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error(), err(EEXIST));
  EXPECT_NE(msg.find("a regular file, not a socket"), std::string::npos) << msg;
  for (const std::string& bad : {std::string(), t / std::string(200, 'x'), t.path() + "/"}) {
    auto r = listen_unix_socket(bad, &msg);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error(), err(ENAMETOOLONG)) << bad;
  }
}

// Many servers start on one path at once: exactly one wins, the others get EBUSY, and the
// winner's socket is the one in place (no one removed a fresh socket as stale).
TEST(UnixSocket, ConcurrentStartsOnOnePath) {
  TempDir t;
  for (int round = 0; round < 20; round++) {
    const std::string path = t / ("r" + std::to_string(round) + ".sock");
    std::atomic<int> go{0};
    std::vector<int> fds(4, -1);
    std::vector<std::error_code> errs(4);
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; i++) {
      ts.emplace_back([&, i] {
        go.fetch_add(1);
        while (go.load() < 4) {
        }
        std::string msg;
        auto r = listen_unix_socket(path, &msg);
        if (r) fds[i] = *r;
        errs[i] = r.error();
      });
    }
    for (auto& th : ts) th.join();
    int winners = 0;
    for (int i = 0; i < 4; i++) {
      if (fds[i] >= 0) {
        winners++;
      } else {
        EXPECT_EQ(errs[i], err(EBUSY)) << errs[i].message();
      }
    }
    EXPECT_EQ(winners, 1);
    EXPECT_TRUE(connects(path));
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
}

}  // namespace
}  // namespace uzram

namespace uzram {
namespace {

// connect_unix_socket(): the messages and errors of the control client, and a timeout
// that bounds the receive.
TEST(UnixSocketConnect, ConnectsAndReportsTheSystemsErrors) {
  TempDir t;
  const std::string path = t / "s.sock";
  std::string msg;
  auto none = connect_unix_socket(path, &msg);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), err(ENOENT));
  EXPECT_EQ(msg, "cannot connect to " + path + ": " + std::strerror(ENOENT));
  auto long_path = connect_unix_socket(t / std::string(200, 'x'), &msg);
  ASSERT_FALSE(long_path);
  EXPECT_EQ(long_path.error(), err(ENAMETOOLONG));
  EXPECT_EQ(msg.rfind("socket path empty or too long: '", 0), 0u) << msg;
  EXPECT_EQ(connect_unix_socket("", &msg).error(), err(ENAMETOOLONG));

  auto listening = listen_unix_socket(path, &msg);
  ASSERT_TRUE(listening) << msg;
  auto c = connect_unix_socket(path, &msg, 200);
  ASSERT_TRUE(c) << msg;
  EXPECT_NE(::fcntl(*c, F_GETFD) & FD_CLOEXEC, 0);
  char b;  // nobody sends: the 200 ms receive timeout ends the wait
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_LT(::recv(*c, &b, 1, 0), 0);
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(150));
  ::close(*c);
  ::close(*listening);
  // Nobody listens any more: refused, and said so.
  auto refused = connect_unix_socket(path, &msg);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), err(ECONNREFUSED));
}

}  // namespace
}  // namespace uzram

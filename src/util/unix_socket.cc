// util/unix_socket.cc - listen_unix_socket(): the private directory, the stale-socket
// probe and the bind (unix_socket.h describes the rules); connect_unix_socket().
#include "util/unix_socket.h"
#include "util/errno_text.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace uzram {
namespace {

std::error_code error(int e) { return {e, std::generic_category()}; }

Result<int> fail(std::string* msg, int e, std::string text) {
  if (msg) *msg = std::move(text);
  return error(e);
}

std::string mode_text(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

const char* type_name(mode_t m) {
  if (S_ISREG(m)) return "a regular file";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "a special file";
}

class Fd {
 public:
  explicit Fd(int fd = -1) noexcept : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = o.release();
    }
    return *this;
  }
  int get() const noexcept { return fd_; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// Opens dir as a directory; O_NOFOLLOW: a symbolic link (last component) is refused, and
// the message says what the path is instead.
Result<int> open_dir_nofollow(const std::string& dir, std::string* msg) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) return fd;
  const int e = errno;
  struct stat st;
  if ((e == ELOOP || e == ENOTDIR) && ::lstat(dir.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) {
      return fail(msg, EPERM,
                  dir + ": socket directory is a symbolic link (give the real directory)");
    }
    if (!S_ISDIR(st.st_mode)) {
      return fail(msg, ENOTDIR,
                  dir + ": exists and is " + type_name(st.st_mode) + ", not a directory");
    }
  }
  return fail(msg, e, dir + ": " + errno_text(e));
}

// mkdir -p with mode 0700 for every level it creates; each created level gets exactly 0700.
Result<void> make_dirs(const std::string& dir, std::string* msg) {
  std::size_t pos = dir.size() > 1 && dir[0] == '/' ? 1 : 0;
  for (;;) {
    const std::size_t slash = dir.find('/', pos);
    const std::string level = dir.substr(0, slash);
    if (!level.empty() && level != "." && level != "..") {
      if (::mkdir(level.c_str(), 0700) == 0) {
        auto fd = open_dir_nofollow(level, msg);
        if (!fd) return fd.error();
        const int rc = ::fchmod(*fd, 0700);
        const int e = errno;
        ::close(*fd);
        if (rc != 0) return fail(msg, e, level + ": chmod 0700: " + errno_text(e)).error();
      } else if (errno != EEXIST) {
        const int e = errno;
        return fail(msg, e, level + ": cannot create the socket directory: " + errno_text(e))
            .error();
      }
    }
    if (slash == std::string::npos) return {};
    pos = slash + 1;
  }
}

// Every directory above the socket directory (walked through "..", not by name) must be
// owned by root or by us, and not writable by others unless sticky (as /tmp is): else
// someone else could rename the socket directory and put theirs in its place.
Result<void> check_ancestors(int dirfd, struct stat st, const std::string& dir, std::string* msg) {
  char* real = ::realpath(dir.c_str(), nullptr);  // for messages only
  std::string name = real ? real : dir;
  std::free(real);
  const uid_t me = ::geteuid();
  Fd cur(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
  if (cur.get() < 0) return fail(msg, errno, dir + ": " + errno_text(errno)).error();
  for (int depth = 0; depth < 4096; depth++) {
    // O_PATH: needs no read permission on the parent, only search.
    Fd up(::openat(cur.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
    struct stat ust;
    if (up.get() < 0 || ::fstat(up.get(), &ust) != 0) {
      return fail(msg, errno, name + "/..: " + errno_text(errno)).error();
    }
    if (ust.st_dev == st.st_dev && ust.st_ino == st.st_ino) return {};  // "/"
    const std::size_t slash = name.rfind('/');
    name = slash == std::string::npos ? name + "/.." : slash == 0 ? "/" : name.substr(0, slash);
    if (ust.st_uid != 0 && ust.st_uid != me) {
      return fail(msg, EPERM,
                  name + ": a directory above the socket directory " + dir + " is owned by uid " +
                      std::to_string(ust.st_uid) + ", who could replace it: refusing to use it")
          .error();
    }
    if ((ust.st_mode & (S_IWGRP | S_IWOTH)) && !(ust.st_mode & S_ISVTX)) {
      return fail(msg, EPERM,
                  name + ": a directory above the socket directory " + dir + " has mode " +
                      mode_text(ust.st_mode) +
                      " (writable by others, not sticky): anyone could replace it; refusing")
          .error();
    }
    cur = std::move(up);
    st = ust;
  }
  return {};
}

// Creates or checks the socket directory; returns it open.
Result<int> open_secure_dir(const std::string& dir, std::string* msg) {
  if (auto r = make_dirs(dir, msg); !r) return r.error();
  auto opened = open_dir_nofollow(dir, msg);
  if (!opened) return opened;
  Fd fd(*opened);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return fail(msg, errno, dir + ": " + errno_text(errno));
  const uid_t me = ::geteuid();
  if (st.st_uid != me) {
    return fail(msg, EPERM,
                dir + ": socket directory is owned by uid " + std::to_string(st.st_uid) +
                    " (the server runs as uid " + std::to_string(me) + "): refusing to use it");
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    return fail(msg, EPERM,
                dir + ": socket directory has mode " + mode_text(st.st_mode) +
                    ", writable by group or others: refusing to use it (chmod 700 it, or choose "
                    "another directory)");
  }
  if (auto r = check_ancestors(fd.get(), st, dir, msg); !r) return r.error();
  return fd.release();
}

// Splits "a/b/c.sock" into "a/b" and "c.sock"; "c.sock" into "." and "c.sock".
bool split_path(const std::string& path, std::string* dir, std::string* name) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    *dir = ".";
    *name = path;
  } else {
    *dir = slash == 0 ? "/" : path.substr(0, slash);
    *name = path.substr(slash + 1);
  }
  return !name->empty() && *name != "." && *name != "..";
}

// Serializes probe, removal and bind between servers starting in one directory at once.
bool lock_dir(int fd) {
  for (int i = 0; i < 500; i++) {  // 5 s: the holders keep it for a bind
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return true;
    if (errno != EWOULDBLOCK && errno != EINTR) return false;
    const timespec ts{0, 10 * 1000 * 1000};
    ::nanosleep(&ts, nullptr);
  }
  return false;
}

// Is a server listening on the socket at addr? 1 yes, 0 no (stale), -1 error (errno set).
int probe(const sockaddr_un& addr) {
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (s.get() < 0) return -1;
  if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return 1;
  if (errno == EAGAIN || errno == EINPROGRESS) return 1;  // backlog full: alive
  if (errno == ECONNREFUSED || errno == ENOENT) return 0;
  return -1;
}

}  // namespace

Result<void> secure_socket_dir(const std::string& dir, std::string* msg) noexcept {
  auto fd = open_secure_dir(dir, msg);
  if (!fd) return fd.error();
  ::close(*fd);
  return {};
}

Result<int> listen_unix_socket(const std::string& path, std::string* msg,
                               const UnixListenOptions& options) noexcept {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string dir, name;
  if (path.empty() || path.size() >= sizeof addr.sun_path || !split_path(path, &dir, &name)) {
    return fail(msg, ENAMETOOLONG,
                "'" + path + "': socket path empty, a directory, or longer than " +
                    std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  auto opened = open_secure_dir(dir, msg);
  if (!opened) return opened;
  Fd dfd(*opened);
  struct stat dst;
  if (::fstat(dfd.get(), &dst) != 0) return fail(msg, errno, dir + ": " + errno_text(errno));
  if (!lock_dir(dfd.get())) {
    return fail(msg, EBUSY, dir + ": cannot lock the socket directory: " + errno_text(errno));
  }

  struct stat st;
  if (::fstatat(dfd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return fail(msg, EEXIST,
                  path + ": exists and is " + std::string(type_name(st.st_mode)) +
                      ", not a socket: refusing to replace it");
    }
    const int live = probe(addr);
    if (live > 0) return fail(msg, EBUSY, path + ": another server is listening there");
    if (live < 0)
      return fail(msg, errno, path + ": cannot probe the existing socket: " + errno_text(errno));
    if (::unlinkat(dfd.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
      return fail(msg, errno, path + ": cannot remove the stale socket: " + errno_text(errno));
    }
  } else if (errno != ENOENT) {
    return fail(msg, errno, path + ": " + errno_text(errno));
  }

  Fd fd(
      ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (options.nonblocking ? SOCK_NONBLOCK : 0), 0));
  if (fd.get() < 0) return fail(msg, errno, path + ": socket: " + errno_text(errno));
  // Linux creates the socket file with this inode's mode, less the umask.
  if (::fchmod(fd.get(), 0600) != 0)
    return fail(msg, errno, path + ": fchmod: " + errno_text(errno));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return fail(msg, errno, path + ": bind: " + errno_text(errno));
  }
  // The path must still name the directory checked above (no rename or swap meanwhile).
  struct stat now;
  if (::stat(dir.c_str(), &now) != 0 || now.st_dev != dst.st_dev || now.st_ino != dst.st_ino ||
      ::fstatat(dfd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(st.st_mode)) {
    return fail(msg, EPERM,
                path + ": the socket directory changed while binding: refusing to use it");
  }
  if ((st.st_mode & 0777) != 0600 &&
      ::fchmodat(dfd.get(), name.c_str(), 0600, AT_SYMLINK_NOFOLLOW) != 0 &&
      (st.st_mode & 0600) != 0600) {  // the umask took the owner's bits and chmod failed
    const int e = errno;
    ::unlinkat(dfd.get(), name.c_str(), 0);
    return fail(msg, e, path + ": cannot set the socket's mode to 0600: " + errno_text(e));
  }
  if (::listen(fd.get(), options.backlog) != 0) {
    const int e = errno;
    ::unlinkat(dfd.get(), name.c_str(), 0);
    return fail(msg, e, path + ": listen: " + errno_text(e));
  }
  return fd.release();
}

Result<int> connect_unix_socket(const std::string& path, std::string* msg,
                                int timeout_ms) noexcept {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return fail(msg, ENAMETOOLONG, "socket path empty or too long: '" + path + "'");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return fail(msg, errno, std::string("socket: ") + errno_text(errno));
  if (timeout_ms > 0) {  // before connect(): it bounds a connect to a full backlog too
    const timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    return fail(msg, e, "cannot connect to " + path + ": " + errno_text(e));
  }
  return fd.release();
}

}  // namespace uzram

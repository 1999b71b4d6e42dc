// store/backing_file.cc - the local backing tier: opening and checking the file or block
// device, and its I/O calls (store/backing_file.h).
#include "store/backing_file.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "store/file_checks.h"
#include "store/wb_layout.h"
#include "util/check.h"
#include "util/errno_text.h"

namespace uzram {
namespace {

std::atomic<backing_testing::PwritevFn> g_pwritev{nullptr};  // relaxed: set before use
std::atomic<backing_testing::SyncFn> g_sync{nullptr};

Result<std::unique_ptr<BackingTier>> fail(std::string* msg, std::error_code e, std::string text) {
  if (msg) *msg = "backing_dev: " + std::move(text);
  return e;
}

std::error_code sys(int e) { return {e, std::generic_category()}; }

// Where the descriptor really points (for display), else `fallback` made absolute.
std::string shown_path(int fd, const std::string& fallback) {
  char link[64], buf[4096];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = ::readlink(link, buf, sizeof buf - 1);
  if (n > 0 && buf[0] == '/') return std::string(buf, static_cast<std::size_t>(n));
  char* real = ::realpath(fallback.c_str(), nullptr);
  std::string out = real ? real : fallback;
  std::free(real);
  return out;
}

// ---- FileTier --------------------------------------------------------------------------

class FileTier final : public BackingTier {
 public:
  FileTier() noexcept = default;
  ~FileTier() override {
    if (fd >= 0) ::close(fd);  // drops the flock
  }
  FileTier(const FileTier&) = delete;
  FileTier& operator=(const FileTier&) = delete;

  void write(TierWrite* ops, std::size_t n, std::uint64_t) noexcept override {
    for (std::size_t i = 0; i < n; i++) {
      iovec iov{const_cast<unsigned char*>(ops[i].buf), ops[i].len};
      ops[i].err = pwritev_all(&iov, 1, static_cast<off_t>(ops[i].off));
    }
  }
  int read(void* buf, std::size_t len, std::uint64_t off, std::uint64_t) noexcept override;
  int sync(std::uint64_t) noexcept override;
  bool volatile_writes() const noexcept override { return !direct.load(std::memory_order_relaxed); }
  std::size_t read_align() const noexcept override { return kBlockSize; }
  bool same_file(const struct stat& st) const noexcept override {
    return S_ISREG(st.st_mode) && st.st_dev == dev && st.st_ino == ino;
  }
  void set(std::uint64_t blocks, std::string path) {
    size_blocks_ = blocks;
    shown_ = std::move(path);
  }

  int fd = -1;
  dev_t dev = 0;  // identity of the file (st_dev, st_ino)
  ino_t ino = 0;
  // O_DIRECT in effect: set when open() gave it (checked with F_GETFL); cleared for good if
  // the file system refuses it at I/O time (EINVAL). Without it every batch is fdatasync'ed
  // before its RAM copies are freed. Relaxed: a stale `true` only costs one more EINVAL.
  std::atomic<bool> direct{false};

 private:
  int pwritev_all(iovec* iov, int cnt, off_t off) noexcept;
  // The file system refused O_DIRECT at I/O time (EINVAL): go on with buffered I/O.
  // Idempotent, so every thread whose I/O was issued with O_DIRECT and refused may call it
  // and retry (a write in flight on another thread when the first refusal came was
  // refused too: it must go again buffered, not count as failed).
  bool drop_direct() noexcept {
    direct.store(false, std::memory_order_relaxed);  // relaxed: a hint for the next I/O
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0) return false;
    return (fl & O_DIRECT) == 0 || ::fcntl(fd, F_SETFL, fl & ~O_DIRECT) == 0;
  }
};

}  // namespace

// ---- open_file_tier ----------------------------------------------------------------------------

Result<std::unique_ptr<BackingTier>> open_file_tier(const std::string& path,
                                                    std::string* msg) noexcept {
  const std::string q = "'" + path + "'";
  if (path.find('\0') != std::string::npos)
    return fail(msg, Errc::invalid_argument, "path contains a NUL byte");
  // A first look without opening: a device node or FIFO is refused before open() could
  // have side effects (a tape rewinds, a watchdog arms). fstat() below decides.
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    return fail(msg, Errc::invalid_argument, "cannot use " + q + ": " + errno_text(errno));
  }
  if (S_ISLNK(st.st_mode)) {
    return fail(msg, Errc::invalid_argument,
                q + " is a symbolic link: give the file itself (symbolic links are refused)");
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return fail(msg, Errc::invalid_argument,
                q + " is " + file_type_name(st.st_mode) + ", not a regular file or a block device");
  }
  // O_EXCL without O_CREAT: exclusive open of a block device (EBUSY when mounted or
  // claimed); Linux ignores it for other files.
  const int flags =
      O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (S_ISBLK(st.st_mode) ? O_EXCL : 0);
  int fd = ::open(path.c_str(), flags | O_DIRECT);
  if (fd < 0 && errno == EINVAL) fd = ::open(path.c_str(), flags);  // no O_DIRECT here
  if (fd < 0) {
    const int e = errno;
    if (e == ELOOP)
      return fail(msg, Errc::invalid_argument,
                  q + " is a symbolic link: give the file itself (symbolic links are refused)");
    if (e == EBUSY) return fail(msg, Errc::busy, q + " is in use (mounted, or opened exclusively)");
    return fail(
        msg,
        e == EACCES || e == EPERM || e == EROFS ? sys(e) : make_error_code(Errc::invalid_argument),
        "cannot open " + q + ": " + errno_text(e));
  }
  std::unique_ptr<FileTier> b(new (std::nothrow) FileTier);
  if (!b) {
    ::close(fd);
    return fail(msg, Errc::no_memory, "out of memory");
  }
  b->fd = fd;  // owned by b from here on
  if (::fstat(fd, &st) != 0)
    return fail(msg, Errc::io_error, "cannot stat " + q + ": " + errno_text(errno));
  b->dev = st.st_dev;
  b->ino = st.st_ino;
  std::uint64_t bytes = 0;
  if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) {
      return fail(msg, Errc::io_error, "cannot get the size of " + q + ": " + errno_text(errno));
    }
  } else if (S_ISREG(st.st_mode)) {
    if (st.st_uid != ::geteuid()) {
      return fail(msg, sys(EACCES),
                  q + " belongs to uid " + std::to_string(st.st_uid) +
                      ", not to the server's uid " + std::to_string(::geteuid()));
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return fail(msg, sys(EACCES),
                  q + " is writable by group or others (mode " + mode +
                      "): they could change written-back blocks; chmod 600 it");
    }
    if (const char* name = pseudo_fs_name(fd)) {
      return fail(msg, Errc::invalid_argument,
                  q + " is on " + name + ", a pseudo file system, not storage");
    }
    bytes = static_cast<std::uint64_t>(st.st_size);
  } else {  // replaced between lstat and open
    return fail(msg, Errc::invalid_argument,
                q + " is " + file_type_name(st.st_mode) + ", not a regular file or a block device");
  }
  if (bytes == 0) {
    return fail(msg, Errc::invalid_argument,
                q +
                    " is empty: the backing file is never grown, its size is the size of the "
                    "backing tier; create it first, e.g. `truncate -s SIZE " +
                    path + "`");
  }
  if (bytes / kBlockSize < 2) {
    return fail(msg, Errc::invalid_argument,
                q + " holds " + std::to_string(bytes) +
                    " bytes: at least 8 KiB are needed (4 KiB blocks, block 0 is never used); "
                    "e.g. `truncate -s SIZE " +
                    path + "`");
  }
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    return fail(msg, Errc::io_error, "fcntl " + q + ": " + errno_text(errno));
  }
  b->direct.store((fl & O_DIRECT) != 0, std::memory_order_relaxed);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return fail(msg, Errc::busy, q + " is in use by another store (flock held)");
    }
    return fail(msg, Errc::io_error, "cannot lock " + q + ": " + errno_text(errno));
  }
  b->set(std::min<std::uint64_t>(bytes / kBlockSize, kWbMaxBlocks), shown_path(fd, path));
  return std::unique_ptr<BackingTier>(std::move(b));
}

// ---- I/O --------------------------------------------------------------------------------------

namespace backing_testing {
void set_hooks(PwritevFn pwritev_fn, SyncFn sync_fn) noexcept {
  g_pwritev.store(pwritev_fn, std::memory_order_relaxed);
  g_sync.store(sync_fn, std::memory_order_relaxed);
}
}  // namespace backing_testing

int FileTier::pwritev_all(iovec* iov, int cnt, off_t off) noexcept {
  const backing_testing::PwritevFn hook = g_pwritev.load(std::memory_order_relaxed);
  while (cnt > 0) {
    const bool was_direct = direct.load(std::memory_order_relaxed);  // relaxed: drop_direct
    const ssize_t r = hook ? hook(fd, iov, cnt, off) : ::pwritev(fd, iov, cnt, off);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && was_direct && drop_direct()) continue;
      return errno;
    }
    if (r == 0) return EIO;
    off += r;
    auto left = static_cast<std::size_t>(r);
    while (cnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      iov++;
      cnt--;
    }
    if (cnt > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return 0;
}

int FileTier::read(void* buf, std::size_t len, std::uint64_t offset, std::uint64_t) noexcept {
  auto* p = static_cast<char*>(buf);
  auto off = static_cast<off_t>(offset);
  while (len > 0) {
    const bool was_direct = direct.load(std::memory_order_relaxed);  // relaxed: drop_direct
    const ssize_t r = ::pread(fd, p, len, off);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && was_direct && drop_direct()) continue;
      return errno;
    }
    if (r == 0) return EIO;
    p += r;
    off += r;
    len -= static_cast<std::size_t>(r);
  }
  return 0;
}

int FileTier::sync(std::uint64_t) noexcept {
  const backing_testing::SyncFn hook = g_sync.load(std::memory_order_relaxed);
  for (;;) {
    if ((hook ? hook(fd) : ::fdatasync(fd)) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

}  // namespace uzram

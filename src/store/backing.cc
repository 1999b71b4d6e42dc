// store/backing.cc - opening and checking the backing device, its block allocator, and its
// I/O calls (store/backing.h).
#include "store/backing.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "store/file_checks.h"
#include "util/check.h"
#include "util/errno_text.h"

namespace uzram {
namespace {

using Backing = StoreImpl::Backing;

std::atomic<backing_testing::PwritevFn> g_pwritev{nullptr};  // relaxed: set before use
std::atomic<backing_testing::SyncFn> g_sync{nullptr};

Result<std::unique_ptr<Backing>> fail(std::string* msg, std::error_code e, std::string text) {
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

}  // namespace

// ---- Backing -------------------------------------------------------------------------------

Backing::~Backing() {
  if (fd >= 0) ::close(fd);  // drops the flock
}

Result<void> Backing::init_blocks(std::uint64_t nslots, std::string* msg) noexcept {
  // More than one block per slot (plus the unused block 0) can never be in use at once.
  nblocks = std::min<std::uint64_t>(size_blocks, nslots + 1);
  words = (nblocks + 63) / 64;
  used = 0;
  hint = 0;
  bitmap.reset(new (std::nothrow) std::uint64_t[words]());
  if (!bitmap) {
    if (msg) *msg = "backing_dev: cannot allocate the block bitmap";
    return Errc::no_memory;
  }
  bitmap[0] |= 1;  // block 0 is never used
  if (nblocks % 64) bitmap[words - 1] |= ~std::uint64_t{0} << (nblocks % 64);
  return {};
}

bool Backing::alloc(std::uint64_t* block) noexcept {
  std::lock_guard<std::mutex> l(mu);
  if (used + 1 >= nblocks) return false;
  for (std::uint64_t i = 0; i < words; i++) {
    const std::uint64_t w = (hint + i) % words;
    if (bitmap[w] == ~std::uint64_t{0}) continue;
    const unsigned bit = static_cast<unsigned>(__builtin_ctzll(~bitmap[w]));
    bitmap[w] |= std::uint64_t{1} << bit;
    used++;
    hint = w;
    *block = w * 64 + bit;
    return true;
  }
  ZS_FATAL("backing bitmap: %llu of %llu blocks used but no free bit",
           static_cast<unsigned long long>(used), static_cast<unsigned long long>(nblocks));
}

void Backing::release(std::uint64_t block) noexcept {
  std::lock_guard<std::mutex> l(mu);
  ZS_CHECK(block >= 1 && block < nblocks, "backing block %llu out of range (%llu blocks)",
           static_cast<unsigned long long>(block), static_cast<unsigned long long>(nblocks));
  std::uint64_t& w = bitmap[block / 64];
  const std::uint64_t bit = std::uint64_t{1} << (block % 64);
  ZS_CHECK(w & bit, "backing block %llu freed twice", static_cast<unsigned long long>(block));
  w &= ~bit;
  used--;
}

bool Backing::drop_direct() noexcept {
  if (!direct.exchange(false)) return true;  // another thread did it
  const int fl = ::fcntl(fd, F_GETFL);
  return fl >= 0 && ::fcntl(fd, F_SETFL, fl & ~O_DIRECT) == 0;
}

// ---- open_backing ----------------------------------------------------------------------------

Result<std::unique_ptr<Backing>> open_backing(const std::string& path, std::string* msg) noexcept {
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
  std::unique_ptr<Backing> b(new (std::nothrow) Backing);
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
  b->size_blocks = bytes / kBlockSize;
  if (b->size_blocks < 2) {
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
  b->path = shown_path(fd, path);
  return b;
}

// ---- I/O --------------------------------------------------------------------------------------

namespace backing_testing {
void set_hooks(PwritevFn pwritev_fn, SyncFn sync_fn) noexcept {
  g_pwritev.store(pwritev_fn, std::memory_order_relaxed);
  g_sync.store(sync_fn, std::memory_order_relaxed);
}
}  // namespace backing_testing

int backing_pwritev(Backing& b, iovec* iov, int cnt, off_t off) noexcept {
  const backing_testing::PwritevFn hook = g_pwritev.load(std::memory_order_relaxed);
  while (cnt > 0) {
    const ssize_t r = hook ? hook(b.fd, iov, cnt, off) : ::pwritev(b.fd, iov, cnt, off);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && b.direct.load(std::memory_order_relaxed) && b.drop_direct()) continue;
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

int backing_pread(Backing& b, void* buf, std::size_t len, off_t off) noexcept {
  auto* p = static_cast<char*>(buf);
  while (len > 0) {
    const ssize_t r = ::pread(b.fd, p, len, off);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && b.direct.load(std::memory_order_relaxed) && b.drop_direct()) continue;
      return errno;
    }
    if (r == 0) return EIO;
    p += r;
    off += r;
    len -= static_cast<std::size_t>(r);
  }
  return 0;
}

int backing_sync(Backing& b) noexcept {
  const backing_testing::SyncFn hook = g_sync.load(std::memory_order_relaxed);
  for (;;) {
    if ((hook ? hook(b.fd) : ::fdatasync(b.fd)) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

}  // namespace uzram

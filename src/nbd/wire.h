// nbd/wire.h - full-length reads and writes on a socket (EINTR retried, never SIGPIPE),
// optionally bounded by a Deadline. Without one, a write blocks at most the socket's
// SO_SNDTIMEO without progress (the server sets ServerOptions::send_timeout).
#ifndef UZRAM_NBD_WIRE_H_
#define UZRAM_NBD_WIRE_H_

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "nbd/deadline.h"

namespace uzram::nbd {

// True when all n bytes arrived; false on EOF, error or the deadline (errno ETIMEDOUT).
inline bool read_full(int fd, void* buf, std::size_t n, const Deadline& d = {}) noexcept {
  auto* p = static_cast<std::uint8_t*>(buf);
  while (n > 0) {
    if (d.set() && !wait_fd(fd, POLLIN, d)) return false;
    const ssize_t r = ::recv(fd, p, n, d.set() ? MSG_DONTWAIT : 0);
    if (r < 0 && (errno == EINTR || (errno == EAGAIN && d.set()))) continue;
    if (r == 0) errno = 0;  // EOF
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// Writes every iovec completely (the array is modified). Bounded by the deadline `d`, and
// with `stall` > 0, failing once no byte could be sent for `stall` (a client that stopped
// reading). False on error or either limit (errno ETIMEDOUT); a blocking send without
// them is still bounded by the socket's SO_SNDTIMEO, if set. With a limit, each send is
// tried first and the socket polled only when it took nothing (EAGAIN): a reply that fits
// the send buffer costs one system call.
inline bool writev_full(int fd, struct iovec* iov, int count, const Deadline& d = {},
                        std::chrono::milliseconds stall = {}) noexcept {
  while (count > 0 && iov[count - 1].iov_len == 0) count--;
  Clock::time_point progress = stall.count() > 0 ? Clock::now() : Clock::time_point{};
  bool must_poll = false;  // the last send took nothing: poll before the next
  while (count > 0) {
    Deadline w = d;
    if (stall.count() > 0 && (!w.set() || progress + stall < w.at()))
      w = Deadline(progress + stall);
    if (w.set() && must_poll && !wait_fd(fd, POLLOUT, w)) return false;
    must_poll = false;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    const ssize_t r = ::sendmsg(fd, &msg, MSG_NOSIGNAL | (w.set() ? MSG_DONTWAIT : 0));
    if (r < 0 && errno == EAGAIN && w.set()) must_poll = true;
    if (r < 0 && (errno == EINTR || (errno == EAGAIN && w.set()))) continue;
    if (r < 0 && errno == EAGAIN) errno = ETIMEDOUT;
    if (r <= 0) return false;
    if (stall.count() > 0) progress = Clock::now();
    auto left = static_cast<std::size_t>(r);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      iov++;
      count--;
    }
    if (count > 0) {
      iov->iov_base = static_cast<std::uint8_t*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

inline bool write_full(int fd, const void* buf, std::size_t n, const Deadline& d = {}) noexcept {
  iovec v{const_cast<void*>(buf), n};
  return writev_full(fd, &v, 1, d);
}

// Reads and drops n bytes.
inline bool skip_full(int fd, std::uint64_t n, const Deadline& d = {}) noexcept {
  std::uint8_t sink[16384];
  while (n > 0) {
    const std::size_t k = n < sizeof sink ? static_cast<std::size_t>(n) : sizeof sink;
    if (!read_full(fd, sink, k, d)) return false;
    n -= k;
  }
  return true;
}

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_WIRE_H_

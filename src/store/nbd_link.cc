// store/nbd_link.cc - libnbd connections driven with poll() and deadlines (nbd_link.h).
#include "store/nbd_link.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "store/libnbd_api.h"
#include "uzram/store.h"

namespace uzram::nbdlink {
namespace {

constexpr char kMagic[] = "uzram backing tier v1\n";

int remaining_ms(Clock::time_point deadline) noexcept {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<std::int64_t>(left.count(), 1000));
}

int errno_of_last() noexcept {
  const int e = libnbd().nbd_get_errno();
  return e != 0 ? e : EIO;
}

}  // namespace

std::string last_error() {
  const char* m = libnbd().nbd_get_error();
  return m ? m : "unknown libnbd error";
}

bool is_uri(std::string_view v) noexcept {
  for (std::string_view s : {"nbd://", "nbds://", "nbd+unix://", "nbds+unix://"}) {
    if (v.substr(0, s.size()) == s) return true;
  }
  return false;
}

nbd_handle* start_connect(const std::string& uri, std::string* err) noexcept {
  nbd_handle* h = libnbd().nbd_create();
  if (!h) {
    if (err) *err = last_error();
    return nullptr;
  }
  if (libnbd().nbd_set_uri_allow_transports(
          h, LIBNBD_ALLOW_TRANSPORT_TCP | LIBNBD_ALLOW_TRANSPORT_UNIX) == -1 ||
      libnbd().nbd_set_uri_allow_local_file(h, true) == -1 ||
      libnbd().nbd_aio_connect_uri(h, uri.c_str()) == -1) {
    if (err) *err = last_error();
    libnbd().nbd_close(h);
    return nullptr;
  }
  return h;
}

void poll_once(nbd_handle* h, int extra_fd, int timeout_ms, bool* extra) noexcept {
  pollfd p[2];
  nfds_t n = 0;
  int fd = -1;
  unsigned dir = 0;
  if (h) {
    fd = libnbd().nbd_aio_get_fd(h);
    dir = libnbd().nbd_aio_get_direction(h);
  }
  if (fd >= 0) {
    p[n].fd = fd;
    p[n].events = static_cast<short>(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                                     ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0));
    p[n].revents = 0;
    n++;
  }
  if (extra_fd >= 0) {
    p[n].fd = extra_fd;
    p[n].events = POLLIN;
    p[n].revents = 0;
    n++;
  }
  if (extra) *extra = false;
  const int r = ::poll(p, n, timeout_ms);
  if (r <= 0) return;
  if (fd >= 0) {
    const short ev = p[0].revents;
    // A hang-up or error: let the state machine read it, and find the connection dead.
    if (ev & (POLLIN | POLLHUP | POLLERR)) libnbd().nbd_aio_notify_read(h);
    if ((ev & POLLOUT) && libnbd().nbd_aio_get_fd(h) >= 0) libnbd().nbd_aio_notify_write(h);
  }
  if (extra_fd >= 0 && (p[n - 1].revents & POLLIN) && extra) *extra = true;
}

int wait_ready(nbd_handle* h, Clock::time_point deadline, std::string* err) noexcept {
  for (;;) {
    if (libnbd().nbd_aio_is_ready(h) == 1) return 0;
    if (libnbd().nbd_aio_is_dead(h) == 1 || libnbd().nbd_aio_is_closed(h) == 1) {
      if (err) *err = last_error();
      return errno_of_last();
    }
    const int ms = remaining_ms(deadline);
    if (ms == 0 && Clock::now() >= deadline) {
      if (err) *err = "no answer within the timeout (backing_timeout_ms)";
      return ETIMEDOUT;
    }
    poll_once(h, -1, ms, nullptr);
  }
}

int wait_command(nbd_handle* h, std::int64_t cookie, Clock::time_point deadline) noexcept {
  if (cookie == -1) return errno_of_last();
  for (;;) {
    const int r = libnbd().nbd_aio_command_completed(h, static_cast<std::uint64_t>(cookie));
    if (r == 1) return 0;
    if (r == -1) return errno_of_last();
    if (libnbd().nbd_aio_is_dead(h) == 1 || libnbd().nbd_aio_is_closed(h) == 1) return ENOTCONN;
    const int ms = remaining_ms(deadline);
    if (ms == 0 && Clock::now() >= deadline) return ETIMEDOUT;
    poll_once(h, -1, ms, nullptr);
  }
}

int pread(nbd_handle* h, void* buf, std::size_t len, std::uint64_t off,
          Clock::time_point deadline) noexcept {
  return wait_command(h, libnbd().nbd_aio_pread(h, buf, len, off, NBD_NULL_COMPLETION, 0),
                      deadline);
}

int pwrite(nbd_handle* h, const void* buf, std::size_t len, std::uint64_t off,
           Clock::time_point deadline) noexcept {
  return wait_command(h, libnbd().nbd_aio_pwrite(h, buf, len, off, NBD_NULL_COMPLETION, 0),
                      deadline);
}

int flush(nbd_handle* h, Clock::time_point deadline) noexcept {
  return wait_command(h, libnbd().nbd_aio_flush(h, NBD_NULL_COMPLETION, 0), deadline);
}

int trim_all(nbd_handle* h, std::uint64_t bytes, Clock::time_point deadline) noexcept {
  constexpr std::uint64_t kPiece = std::uint64_t{1} << 30;  // NBD lengths are 32-bit
  constexpr int kMaxInFlight = 64;
  std::int64_t cookies[kMaxInFlight];
  int err = 0;
  for (std::uint64_t off = 0; off < bytes && err == 0;) {
    int n = 0;
    for (; n < kMaxInFlight && off < bytes; n++) {
      const std::uint64_t len = std::min(kPiece, bytes - off);
      cookies[n] = libnbd().nbd_aio_trim(h, len, off, NBD_NULL_COMPLETION, 0);
      off += len;
    }
    for (int i = 0; i < n; i++) {
      const int e = wait_command(h, cookies[i], deadline);
      if (e != 0 && err == 0) err = e;
    }
  }
  return err;
}

int query(nbd_handle* h, Info* out, std::string* err) noexcept {
  const std::int64_t size = libnbd().nbd_get_size(h);
  const int ro = libnbd().nbd_is_read_only(h);
  const int trim = libnbd().nbd_can_trim(h);
  const int fl = libnbd().nbd_can_flush(h);
  const int mc = libnbd().nbd_can_multi_conn(h);
  const int fua = libnbd().nbd_can_fua(h);
  const std::int64_t min = libnbd().nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
  const std::int64_t max = libnbd().nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
  if (size < 0 || ro < 0 || trim < 0 || fl < 0 || mc < 0 || fua < 0 || min < 0 || max < 0) {
    if (err) *err = last_error();
    return errno_of_last();
  }
  out->size = static_cast<std::uint64_t>(size);
  out->read_only = ro == 1;
  out->can_trim = trim == 1;
  out->can_flush = fl == 1;
  out->multi_conn = mc == 1;
  out->can_fua = fua == 1;
  out->min_block = min > 0 ? static_cast<std::size_t>(min) : 512;
  out->max_payload = max > 0 ? static_cast<std::size_t>(max) : std::size_t{32} << 20;
  return 0;
}

void make_marker(unsigned char* block, const unsigned char* id) noexcept {
  std::memset(block, 0, kBlockSize);
  std::memcpy(block, kMagic, sizeof kMagic - 1);
  std::memcpy(block + 64, id, kIdBytes);
}

bool has_marker(const unsigned char* block, const unsigned char* id) noexcept {
  return std::memcmp(block, kMagic, sizeof kMagic - 1) == 0 &&
         std::memcmp(block + 64, id, kIdBytes) == 0;
}

}  // namespace uzram::nbdlink

// store/nbd_link.h - one libnbd connection, driven without ever blocking past a deadline
// (layer 3): the helpers the remote backing tier (store/backing_nbd.h) uses to connect,
// to run a command synchronously, and to poll a handle. Every libnbd call here is
// non-blocking (the aio API); waiting happens in poll() with a timeout, so a remote that
// stops answering costs at most the deadline. libnbd 1.14 (Debian 12) has no request
// timeout of its own.
#ifndef UZRAM_STORE_NBD_LINK_H_
#define UZRAM_STORE_NBD_LINK_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

struct nbd_handle;

namespace uzram::nbdlink {

using Clock = std::chrono::steady_clock;

// The URI schemes backing_dev takes: nbd://, nbds://, nbd+unix://, nbds+unix://.
bool is_uri(std::string_view v) noexcept;

// A new handle, set up for `uri` (TCP and Unix transports; tls-psk-file and
// tls-certificates allowed in the URI), with its connection started. Null and *err on
// failure (libnbd's message).
nbd_handle* start_connect(const std::string& uri, std::string* err) noexcept;

// Waits up to the timeout for the fd of h (in the direction libnbd wants) or for
// `extra_fd` (POLLIN; -1: none), and tells libnbd what happened. *extra: extra_fd ready.
void poll_once(nbd_handle* h, int extra_fd, int timeout_ms, bool* extra) noexcept;

// Drives h until it is ready (0), dead or closed (ECONNREFUSED-like errno, *err), or the
// deadline passes (ETIMEDOUT).
int wait_ready(nbd_handle* h, Clock::time_point deadline, std::string* err) noexcept;

// Waits for command `cookie` (issued on h) until the deadline: 0, its errno, or ETIMEDOUT
// (then the command may still be running: close h before its buffer goes away).
int wait_command(nbd_handle* h, std::int64_t cookie, Clock::time_point deadline) noexcept;

// Synchronous commands with a deadline (0 or errno; on ETIMEDOUT, close h).
int pread(nbd_handle* h, void* buf, std::size_t len, std::uint64_t off,
          Clock::time_point deadline) noexcept;
int pwrite(nbd_handle* h, const void* buf, std::size_t len, std::uint64_t off,
           Clock::time_point deadline) noexcept;
int flush(nbd_handle* h, Clock::time_point deadline) noexcept;
// Trims [0, bytes) in pieces, all in flight at once.
int trim_all(nbd_handle* h, std::uint64_t bytes, Clock::time_point deadline) noexcept;

// What the server says about the export.
struct Info {
  std::uint64_t size = 0;
  bool read_only = false;
  bool can_trim = false;
  bool can_flush = false;
  bool multi_conn = false;      // connections see one another's flushed writes
  bool can_fua = false;         // a write can be made durable by itself
  std::size_t min_block = 512;  // reads and writes are aligned to it (512 if not said)
  std::size_t max_payload = 0;  // largest read or write (32 MiB if not said)
};
int query(nbd_handle* h, Info* out, std::string* err) noexcept;

// The marker in block 0 of a remote backing tier: a magic line and the tier's random id.
// A remote that no longer holds it after a reconnect lost what it was given.
inline constexpr std::size_t kIdBytes = 16;
void make_marker(unsigned char* block4k, const unsigned char* id) noexcept;
bool has_marker(const unsigned char* block4k, const unsigned char* id) noexcept;

std::string last_error();  // libnbd's message for the last failed call of this thread

}  // namespace uzram::nbdlink

#endif  // UZRAM_STORE_NBD_LINK_H_

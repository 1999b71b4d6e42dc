// nbd/transport.h - the byte stream a connection speaks over: the plain socket, or a TLS
// session after NBD_OPT_STARTTLS (nbd/tls.h). One reader thread and one (mutex-serialised)
// writer thread may use a transport at the same time. No call raises SIGPIPE.
#ifndef UZRAM_NBD_TRANSPORT_H_
#define UZRAM_NBD_TRANSPORT_H_

#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "nbd/deadline.h"
#include "nbd/wire.h"

namespace uzram::nbd {

class Transport {
 public:
  virtual ~Transport() = default;
  // True when all n bytes arrived; false on EOF, error or the deadline.
  virtual bool read_full(void* buf, std::size_t n) noexcept = 0;
  // Writes every iovec completely (the array may be modified).
  virtual bool writev_full(iovec* iov, int count) noexcept = 0;
  virtual bool is_tls() const noexcept { return false; }
  // False only when no byte of the client's is waiting to be read now (the reader's call,
  // between requests); true when some is, or when the transport cannot tell.
  virtual bool input_pending() noexcept { return true; }

  // Bounds every later read and write (the handshake's budget); Deadline{} lifts it. Set
  // only while no other thread uses the transport.
  void set_deadline(const Deadline& d) noexcept { deadline_ = d; }
  // True once the deadline has passed (a failed call may be why).
  [[nodiscard]] bool deadline_passed() const noexcept { return deadline_.passed(); }
  // A write fails once no byte could be sent for `t` (0: no limit). Set before use.
  void set_send_timeout(std::chrono::milliseconds t) noexcept { send_timeout_ = t; }

  bool write_full(const void* buf, std::size_t n) noexcept {
    iovec v{const_cast<void*>(buf), n};
    return writev_full(&v, 1);
  }
  bool skip_full(std::uint64_t n) noexcept {
    std::uint8_t sink[16384];
    while (n > 0) {
      const std::size_t k = n < sizeof sink ? static_cast<std::size_t>(n) : sizeof sink;
      if (!read_full(sink, k)) return false;
      n -= k;
    }
    return true;
  }

 protected:
  Deadline deadline_;
  std::chrono::milliseconds send_timeout_{0};
};

class FdTransport final : public Transport {
 public:
  // `prefix`: bytes the client sent that were read already (at most kMaxPrefix); they are
  // read first.
  static constexpr std::size_t kMaxPrefix = 32;
  explicit FdTransport(int fd, const std::uint8_t* prefix = nullptr, std::size_t n = 0) noexcept
      : fd_(fd), prefix_len_(n < kMaxPrefix ? n : kMaxPrefix) {
    for (std::size_t i = 0; i < prefix_len_; i++) prefix_[i] = prefix[i];
  }
  bool read_full(void* buf, std::size_t n) noexcept override {
    auto* p = static_cast<std::uint8_t*>(buf);
    while (n > 0 && prefix_at_ < prefix_len_) {
      *p++ = prefix_[prefix_at_++];
      n--;
    }
    return n == 0 || nbd::read_full(fd_, p, n, deadline_);
  }
  bool writev_full(iovec* iov, int count) noexcept override {
    return nbd::writev_full(fd_, iov, count, deadline_, send_timeout_);
  }
  bool input_pending() noexcept override {
    if (prefix_at_ < prefix_len_) return true;
    std::uint8_t c;
    const ssize_t r = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));  // data, EOF or an error
  }

 private:
  int fd_;
  std::uint8_t prefix_[kMaxPrefix] = {};
  std::size_t prefix_len_ = 0, prefix_at_ = 0;
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_TRANSPORT_H_

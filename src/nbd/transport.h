// nbd/transport.h - the byte stream a connection speaks over: the plain socket, or a TLS
// session after NBD_OPT_STARTTLS (nbd/tls.h). One reader thread and one (mutex-serialised)
// writer thread may use a transport at the same time.
#ifndef UZRAM_NBD_TRANSPORT_H_
#define UZRAM_NBD_TRANSPORT_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "nbd/wire.h"

namespace uzram::nbd {

class Transport {
 public:
  virtual ~Transport() = default;
  // True when all n bytes arrived; false on EOF or error.
  virtual bool read_full(void* buf, std::size_t n) noexcept = 0;
  // Writes every iovec completely (the array may be modified).
  virtual bool writev_full(iovec* iov, int count) noexcept = 0;
  virtual bool is_tls() const noexcept { return false; }

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
};

class FdTransport final : public Transport {
 public:
  explicit FdTransport(int fd) noexcept : fd_(fd) {}
  bool read_full(void* buf, std::size_t n) noexcept override { return nbd::read_full(fd_, buf, n); }
  bool writev_full(iovec* iov, int count) noexcept override { return nbd::writev_full(fd_, iov, count); }

 private:
  int fd_;
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_TRANSPORT_H_

// nbd/tls.h - TLS for NBD_OPT_STARTTLS, with GnuTLS: pre-shared keys (a psktool/nbdkit
// file of "username:hexkey" lines) and/or X.509 (a directory with server-cert.pem and
// server-key.pem, as nbdkit's --tls-certificates).
#ifndef UZRAM_NBD_TLS_H_
#define UZRAM_NBD_TLS_H_

#include <memory>
#include <string>

#include "nbd/handshake.h"
#include "nbd/transport.h"
#include "uzram/result.h"

namespace uzram::nbd {

struct TlsOptions {
  std::string psk_file;          // empty: no PSK
  std::string certificates_dir;  // empty: no X.509
};

class TlsContext {
 public:
  // Loads the credentials. Errors: invalid_argument (unreadable or malformed files, or
  // neither kind given), io_error (GnuTLS refused); *msg explains.
  [[nodiscard]] static Result<std::unique_ptr<TlsContext>> create(const TlsOptions& options,
                                                                  std::string* msg) noexcept;
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Runs the server side of a TLS handshake on fd; null (reason logged) on failure.
  [[nodiscard]] std::unique_ptr<Transport> accept(int fd, const LogFn& log) noexcept;

  struct State;

 private:
  TlsContext() = default;
  std::unique_ptr<State> state_;
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_TLS_H_

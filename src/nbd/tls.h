// nbd/tls.h - TLS for NBD_OPT_STARTTLS, with GnuTLS: pre-shared keys (a psktool/nbdkit
// file of "username:hexkey" lines) and/or X.509 (a directory with server-cert.pem and
// server-key.pem, and with verify_peer ca-cert.pem, as nbdkit's --tls-certificates and
// --tls-verify-peer).
//
// Who gets in (docs/uzram-serve.md#security): with PSK, only clients that hold a key; with
// verify_peer, only clients whose certificate the CA signed (refused without one); with
// certificates alone, anyone (the channel is encrypted, the client is not authenticated).
// With PSK and certificates but no verify_peer, the certificates are not offered: a
// certificate key exchange would let a client without the key in.
#ifndef UZRAM_NBD_TLS_H_
#define UZRAM_NBD_TLS_H_

#include <memory>
#include <string>

#include "nbd/deadline.h"
#include "nbd/log.h"
#include "nbd/transport.h"
#include "uzram/result.h"

namespace uzram::nbd {

struct TlsOptions {
  std::string psk_file;          // empty: no PSK
  std::string certificates_dir;  // empty: no X.509
  bool verify_peer = false;      // require client certificates signed by DIR/ca-cert.pem
};

class TlsContext {
 public:
  // Loads the credentials. Errors: invalid_argument (unreadable or malformed files,
  // neither kind given, verify_peer without certificates), io_error (GnuTLS refused);
  // *msg explains.
  [[nodiscard]] static Result<std::unique_ptr<TlsContext>> create(const TlsOptions& options,
                                                                  std::string* msg) noexcept;
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // True when every client that completes a handshake was authenticated (a PSK, or a
  // client certificate verified against the CA).
  [[nodiscard]] bool authenticates() const noexcept;
  // True when certificates were given but are not offered (PSK without verify_peer).
  [[nodiscard]] bool certificates_unused() const noexcept;

  // Runs the server side of a TLS handshake on fd, bounded by `deadline` (which stays on
  // the transport until lifted). Null (reason logged) on failure or an unauthenticated
  // client. The session never raises SIGPIPE; its destructor sends close_notify (bounded
  // to 1 s) only when no read or write on it has failed.
  [[nodiscard]] std::unique_ptr<Transport> accept(int fd, const Deadline& deadline,
                                                  const LogFn& log) noexcept;

  struct State;

 private:
  TlsContext() = default;
  std::unique_ptr<State> state_;
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_TLS_H_

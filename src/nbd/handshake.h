// nbd/handshake.h - the fixed-newstyle negotiation phase on one connection.
#ifndef UZRAM_NBD_HANDSHAKE_H_
#define UZRAM_NBD_HANDSHAKE_H_

#include <functional>
#include <memory>
#include <string>

#include "nbd/protocol.h"

namespace uzram::nbd {

class Backend;
class TlsContext;
class Transport;

using LogFn = std::function<void(const std::string&)>;

struct TlsPolicy {
  TlsContext* context = nullptr;  // null: NBD_OPT_STARTTLS is answered NBD_REP_ERR_UNSUP
  bool required = false;          // every option but STARTTLS/ABORT: NBD_REP_ERR_TLS_REQD
};

// Runs the handshake on socket `sock`; *transport becomes the stream to use afterwards (the
// plain socket, or TLS after STARTTLS). True when the client entered transmission
// (NBD_OPT_GO or NBD_OPT_EXPORT_NAME), with what was negotiated in *out; false when the
// client aborted, vanished or broke the protocol (the reason goes to `log`; the caller
// closes sock).
bool handshake(int sock, std::unique_ptr<Transport>& transport, const Backend& backend, const TlsPolicy& tls,
               Negotiated* out, const LogFn& log);

// The transmission flags announced for `backend` (structured: NBD_FLAG_SEND_DF too).
std::uint16_t transmission_flags(const Backend& backend, bool structured) noexcept;

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_HANDSHAKE_H_

// nbd/handshake.h - the fixed-newstyle negotiation phase on one connection.
#ifndef UZRAM_NBD_HANDSHAKE_H_
#define UZRAM_NBD_HANDSHAKE_H_

#include <memory>
#include <span>

#include "nbd/deadline.h"
#include "nbd/log.h"
#include "nbd/protocol.h"

namespace uzram::nbd {

class Backend;
class TlsContext;
class Transport;

struct TlsPolicy {
  TlsContext* context = nullptr;  // null: NBD_OPT_STARTTLS is answered NBD_REP_ERR_UNSUP
  bool required = false;          // every option but STARTTLS/ABORT: NBD_REP_ERR_TLS_REQD
};

class Exports;
class ServerStats;

// What a handshake that entered transmission settled: the options, and the backend of the
// export the client chose (claimed: its open_user succeeded; the caller calls its
// close_user once the session is over, and holds it until then).
struct Handshaken {
  Negotiated neg;
  std::shared_ptr<Backend> backend;
};

// Runs the handshake on socket `sock`, all of it (TLS included) bounded by `deadline`;
// *transport becomes the stream to use afterwards (the plain socket, or TLS after
// STARTTLS), still bounded by the deadline until the caller lifts it. The client names its
// export (NBD_OPT_INFO, GO, EXPORT_NAME) among `exports`; NBD_OPT_LIST lists them. True
// when the client entered transmission (NBD_OPT_GO or NBD_OPT_EXPORT_NAME), with what was
// negotiated and the claimed backend in *out. False when the client aborted, vanished,
// broke the protocol, ran out of time or memory (the reason goes to `log`; the caller
// closes sock). With `greeted`, the greeting was sent already (send_greeting) and
// `preread` holds what the client sent since (at most FdTransport::kMaxPrefix bytes).
// `stats` (may be null) counts the option buffer. Never throws.
bool handshake(int sock, std::unique_ptr<Transport>& transport, Exports& exports,
               const TlsPolicy& tls, const Deadline& deadline, Handshaken* out, const LogFn& log,
               bool greeted = false, std::span<const std::uint8_t> preread = {},
               ServerStats* stats = nullptr) noexcept;

// The same with one backend under every export name (SingleExport): on true, the backend
// counts the connection as a user (its size is out->size) and the caller calls
// backend.close_user() once the session is over.
bool handshake(int sock, std::unique_ptr<Transport>& transport, Backend& backend,
               const TlsPolicy& tls, const Deadline& deadline, Negotiated* out, const LogFn& log,
               bool greeted = false, std::span<const std::uint8_t> preread = {}) noexcept;

// Sends the server's greeting (NBDMAGIC, IHAVEOPT, handshake flags) without blocking;
// false when it could not be sent whole (on a fresh socket it always can).
bool send_greeting(int sock) noexcept;

// The transmission flags announced for `backend` (structured: NBD_FLAG_SEND_DF too).
std::uint16_t transmission_flags(const Backend& backend, bool structured) noexcept;

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_HANDSHAKE_H_

// nbd/session.h - the transmission phase of one connection: a reader (the calling thread)
// parses requests and their payloads and hands them to a few worker threads, which call the
// Backend and send replies (whole replies under a send mutex, so replies never interleave).
// Requests are validated (magic, flags, bounds, sizes) before they reach the backend.
#ifndef UZRAM_NBD_SESSION_H_
#define UZRAM_NBD_SESSION_H_

#include <cstddef>

#include "nbd/log.h"
#include "nbd/protocol.h"

namespace uzram::nbd {

class Backend;
class ServerStats;
class Transport;

struct SessionOptions {
  unsigned workers = 4;                                     // 1-256; 1 when !backend.parallel()
  std::size_t max_in_flight_bytes = std::size_t{64} << 20;  // payload buffers per connection
  ServerStats* stats = nullptr;  // counts requests and buffers when set (nbd/stats.h)
};

// Serves requests until NBD_CMD_DISC, EOF, a protocol violation or a socket error (e.g. the
// server shutting the socket down); waits for the requests in flight, then returns. The
// caller closes fd. When no worker thread can be started, or memory for a request runs
// out, the connection ends (logged); a reply buffer that cannot be had fails only its
// request (ENOMEM). Never throws.
void serve_session(int fd, Transport& transport, Backend& backend, const Negotiated& neg,
                   const LogFn& log, const SessionOptions& options = {}) noexcept;

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_SESSION_H_

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
  // Swap (uzram serve --swap, docs/uzram-serve.md#swap): every buffer the connection uses
  // is allocated when it enters transmission, and no request allocates: max_in_flight_bytes
  // of data buffers in pieces of piece_bytes (a multiple of 4 KiB, at most kMaxPiece),
  // and max_jobs request slots. A READ or WRITE longer than a piece is served piece by
  // piece through one; BLOCK_STATUS answers at most piece_bytes / 8 extents.
  bool preallocate = false;
  std::size_t piece_bytes = std::size_t{256} << 10;
  std::size_t max_jobs = 256;
};
inline constexpr std::size_t kMaxPiece = std::size_t{1} << 20;

// The memory a preallocated session maps when it starts (RequestPool), for budgets.
std::size_t preallocated_bytes(const SessionOptions& options) noexcept;

// Serves requests until NBD_CMD_DISC, EOF, a protocol violation or a socket error (e.g. the
// server shutting the socket down); waits for the requests in flight, then returns. The
// caller closes fd. When no worker thread can be started, or memory for a request (or,
// preallocated, for the connection's buffers) runs out, the connection ends (logged); a
// reply buffer that cannot be had fails only its request (ENOMEM). Never throws.
void serve_session(int fd, Transport& transport, Backend& backend, const Negotiated& neg,
                   const LogFn& log, const SessionOptions& options = {}) noexcept;

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_SESSION_H_

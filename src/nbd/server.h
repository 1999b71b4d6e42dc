// nbd/server.h - the listener: a Unix socket (mode 0600) by default, or TCP on loopback;
// one thread per connection runs the handshake and then the session (which has its own
// workers). Several connections are served in parallel (NBD_FLAG_CAN_MULTI_CONN).
//
// Admission (docs/uzram-serve.md#limits). Every handshake, the TLS one included, must end
// within handshake_timeout of the accept. An accepted connection is greeted and waits,
// without a thread, until the client sent its flags and first option header (every client
// sends them at once; a client that trickles bytes never gets that far), at most
// max_waiting of them. It then gets a thread: at most max_negotiating negotiating, and
// max_connections with those in transmission, which are never closed to make room. When
// a stage is full, a newcomer takes the place of its oldest connection if that one had
// handshake_grace already, else it waits (in the listen queue, first come first served).
// So clients trickling their handshakes, however often they reconnect, hold a place for
// at most handshake_timeout and cannot push out a client that completes its handshake
// within handshake_grace.
#ifndef UZRAM_NBD_SERVER_H_
#define UZRAM_NBD_SERVER_H_

#include <chrono>
#include <memory>
#include <string>

#include "nbd/handshake.h"
#include "nbd/session.h"
#include "nbd/stats.h"
#include "uzram/result.h"

namespace uzram::nbd {

class Backend;
class Exports;

struct ServerOptions {
  std::string unix_path;           // used when port is empty
  std::string port;                // TCP when not empty ("0": any free port)
  std::string bind = "127.0.0.1";  // TCP address
  bool force_insecure = false;     // allow a non-loopback bind without authenticated TLS
  unsigned max_connections = 64;   // at once; more wait in the listen queue or are refused
  unsigned max_negotiating = 16;   // of those, still negotiating (1..max_connections)
  unsigned max_waiting = 1024;     // accepted, before their first 20 bytes (no thread)
  std::chrono::milliseconds handshake_timeout{10'000};  // the whole negotiation, TLS included
  std::chrono::milliseconds handshake_grace{500};       // younger ones are never evicted
  std::chrono::milliseconds send_timeout{30'000};       // a send that makes no progress fails
  SessionOptions session;
  TlsPolicy tls;  // context owned by the caller, outlives the server
  LogFn log;      // may be empty
};

// A Unix connection's send buffer (connection.cc raises it, so that a large READ reply goes
// out in one call and its worker returns to work): what this process gets, probed on a
// socket pair, and what it asks for, in bytes of data (0, 0: the probe failed). Less comes
// from net.core.wmem_max without CAP_NET_ADMIN; `uzram serve` then warns.
struct UnixSendBuffer {
  int got = 0, wanted = 0;
};
[[nodiscard]] UnixSendBuffer probe_unix_send_buffer() noexcept;

class Server {
 public:
  // Binds and starts accepting in a background thread. Errors: busy (a live server on the
  // Unix socket), invalid_argument (bad address; a non-loopback address without an
  // authenticated TLS requirement (PSK, or verified client certificates) or
  // --force-insecure; existing non-socket file), io_error (socket/bind/listen failed, no
  // thread); *msg explains.
  // `exports` (the export names and their backends) must outlive the server.
  [[nodiscard]] static Result<std::unique_ptr<Server>> start(Exports& exports,
                                                             const ServerOptions& options,
                                                             std::string* msg) noexcept;
  // One backend under every export name (SingleExport).
  [[nodiscard]] static Result<std::unique_ptr<Server>> start(Backend& backend,
                                                             const ServerOptions& options,
                                                             std::string* msg) noexcept;
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Stops accepting, shuts every connection down, waits for their threads and removes the
  // Unix socket file. Idempotent.
  void stop() noexcept;
  // nbd+unix:///?socket=ABSPATH or nbd://HOST:PORT/
  [[nodiscard]] const std::string& uri() const noexcept;
  // TCP on a loopback address (every local user can connect), and TCP on another address.
  [[nodiscard]] bool tcp_loopback() const noexcept;
  [[nodiscard]] bool tcp_network() const noexcept;
  // Connections now and the counters of nbd/stats.h, for metrics and the memory lines.
  [[nodiscard]] StatsSnapshot stats() const noexcept;
  // Request and reply buffers allocated now (lock-free: the memory breakdown calls it).
  [[nodiscard]] std::uint64_t buffer_bytes() const noexcept;

 private:
  Server() = default;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_SERVER_H_

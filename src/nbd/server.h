// nbd/server.h - the listener: a Unix socket (mode 0600) by default, or TCP on loopback;
// one thread per connection runs the handshake and then the session (which has its own
// workers). Several connections are served in parallel (NBD_FLAG_CAN_MULTI_CONN).
#ifndef UZRAM_NBD_SERVER_H_
#define UZRAM_NBD_SERVER_H_

#include <memory>
#include <string>

#include "nbd/handshake.h"
#include "nbd/session.h"
#include "uzram/result.h"

namespace uzram::nbd {

class Backend;

struct ServerOptions {
  std::string unix_path;               // used when port is empty
  std::string port;                    // TCP when not empty ("0": any free port)
  std::string bind = "127.0.0.1";      // TCP address
  bool force_insecure = false;         // allow a non-loopback bind without TLS
  unsigned max_connections = 64;       // more are closed at once (logged)
  unsigned handshake_timeout_s = 30;   // a client silent this long while negotiating is closed
  SessionOptions session;
  TlsPolicy tls;                       // context owned by the caller, outlives the server
  LogFn log;                           // may be empty
};

class Server {
 public:
  // Binds and starts accepting in a background thread. Errors: busy (a live server on the
  // Unix socket), invalid_argument (bad address, non-loopback without TLS required or --force-insecure,
  // existing non-socket file), io_error (socket/bind/listen failed); *msg explains.
  [[nodiscard]] static Result<std::unique_ptr<Server>> start(Backend& backend, const ServerOptions& options,
                                                             std::string* msg) noexcept;
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Stops accepting, shuts every connection down, waits for their threads and removes the
  // Unix socket file. Idempotent.
  void stop() noexcept;
  // nbd+unix:///?socket=ABSPATH or nbd://HOST:PORT/
  [[nodiscard]] const std::string& uri() const noexcept;

 private:
  Server() = default;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_SERVER_H_

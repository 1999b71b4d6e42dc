// cli/serve.h - `uzram serve`: a store exported over NBD, with its control socket.
#ifndef UZRAM_CLI_SERVE_H_
#define UZRAM_CLI_SERVE_H_

#include <string>
#include <vector>

#include "cli/cli.h"

namespace uzram::cli {

struct ServeOptions {
  std::string socket;        // -U; empty: <default_control_dir()>/nbd.socket; "-": a temporary one
  std::string control;       // --control; empty: default_control_socket()
  std::string size = "1G";   // --size
  std::string algo = "lz4";  // --algo
  std::vector<std::string> attrs;  // -o attr=value
  std::string policy;              // --policy VALUE: -o policy=VALUE
  std::string run;                 // --run CMD (captive mode)
  std::string port;                // --port: TCP instead of a Unix socket
  std::string bind = "127.0.0.1";  // --bind
  bool force_insecure = false;
  std::string tls;               // --tls off|on|require; empty: require with credentials, else off
  std::string tls_psk;           // --tls-psk FILE (username:hexkey lines)
  std::string tls_certificates;  // --tls-certificates DIR (server-cert.pem, server-key.pem)
  bool tls_verify_peer = false;  // --tls-verify-peer: client certificates signed by DIR/ca-cert.pem
  std::string handshake_timeout;  // --handshake-timeout SECONDS; empty: 10
  std::string send_timeout;       // --send-timeout SECONDS; empty: 30
  std::string metrics;            // --metrics [ADDR:]PORT: OpenMetrics over HTTP
  bool verbose = false;
  unsigned threads = 4;  // workers per connection
  bool swap = false;     // --swap: locked in memory, preallocated (cli/swap.h)
};
int run_serve(const ServeOptions& options, const Io& io) noexcept;

}  // namespace uzram::cli

#endif  // UZRAM_CLI_SERVE_H_

// cli/metrics.h - `uzram serve --metrics [ADDR:]PORT`: the stores' statistics, where the
// memory goes, and the NBD server's counters, as OpenMetrics text over HTTP (layer 5,
// cli: it reads both the store registry and the NBD server).
//
// metrics.cc renders the exposition: per store (label store="zramN") one series per field
// of the statistics attributes, driven by ONE table (kStatFields: attribute, field index,
// name, type, unit, help), so a new statistics attribute (unit_stat, policy_stat) is
// exported by adding rows; the rows of an attribute a store does not have are left out.
// Then the memory breakdown (uzram/memory.h) and the server's connections, requests,
// bytes, errors and latency histograms (nbd/stats.h). metrics_http.cc serves it with
// libmicrohttpd: GET /metrics, OpenMetrics 1.0.0 unless the Accept header asks for the
// Prometheus text format (text/plain; version=0.0.4) only. docs/uzram-serve.md#metrics
// lists every series.
#ifndef UZRAM_CLI_METRICS_H_
#define UZRAM_CLI_METRICS_H_

#include <memory>
#include <string>
#include <string_view>

#include "uzram/result.h"

namespace uzram {
class StoreRegistry;
namespace nbd {
class Server;
}
}  // namespace uzram

namespace uzram::cli {

struct MetricsAddress {
  std::string host = "127.0.0.1";  // numeric IPv4 or IPv6 (brackets stripped)
  std::string port;                // 0-65535; 0: any free port
};

// "PORT", "ADDR:PORT" or "[IPV6]:PORT"; false with the reason in *why.
bool parse_metrics_address(const std::string& text, MetricsAddress* out, std::string* why);

enum class MetricsFormat { openmetrics, prometheus };
inline constexpr const char* kOpenMetricsType =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
inline constexpr const char* kPrometheusType = "text/plain; version=0.0.4; charset=utf-8";

// OpenMetrics unless `accept` (the Accept header; may be null) names text/plain and not
// application/openmetrics-text.
MetricsFormat negotiate_format(const char* accept) noexcept;

// The exposition now. `server` may be null (no NBD series).
std::string render_metrics(const StoreRegistry& registry, const nbd::Server* server,
                           MetricsFormat format);

class MetricsServer {
 public:
  // Listens on the address (any address may be given: metrics carry no data) and serves
  // from libmicrohttpd's own thread. registry and server must outlive it. Errors: the
  // address is unusable (EADDRINUSE, EADDRNOTAVAIL...), *msg says which.
  [[nodiscard]] static Result<std::unique_ptr<MetricsServer>> start(const MetricsAddress& address,
                                                                    const StoreRegistry& registry,
                                                                    const nbd::Server* server,
                                                                    std::string* msg) noexcept;
  ~MetricsServer();  // stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  void stop() noexcept;                                   // idempotent
  [[nodiscard]] const std::string& url() const noexcept;  // http://HOST:PORT/metrics

 private:
  MetricsServer() = default;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace uzram::cli

#endif  // UZRAM_CLI_METRICS_H_

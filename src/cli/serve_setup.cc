// cli/serve_setup.cc - ServeSetup (serve_setup.h): `uzram serve`'s options parsed and
// checked before anything is created.
#include "cli/serve_setup.h"

#include <algorithm>
#include <cmath>

#include "nbd/server.h"
#include "uzram/store.h"

namespace uzram::cli {
namespace {

// --port: a number 0-65535 (0: any free port).
bool valid_port(const std::string& p) {
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos)
    return false;
  return std::stoul(p) <= 65535;
}

// --handshake-timeout: seconds, > 0 and at most a day; fractions allowed.
bool parse_seconds(const std::string& text, std::chrono::milliseconds* out) {
  if (text.empty() || text.find_first_not_of("0123456789.") != std::string::npos) return false;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v) || v <= 0 || v > 86400) return false;
  *out = std::chrono::milliseconds(static_cast<long long>(std::ceil(v * 1000)));
  return true;
}

// -o ATTR=VALUE: split by the attribute table's before_init flag.
int parse_attrs(const ServeOptions& o, const Io& io, ServeSetup* setup) {
  for (const std::string& a : o.attrs) {
    const std::size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0)
      return usage_error(io, "serve: -o expects attr=value, got '" + a + "'");
    std::string attr = a.substr(0, eq), value = a.substr(eq + 1);
    if (attr == "disksize") return usage_error(io, "serve: -o disksize: use --size");
    if (attr == "reset")
      return usage_error(io, "serve: -o reset: the store is created fresh; nothing to reset");
    const auto info = Store::attr_info(attr);
    if (!info) return usage_error(io, "serve: -o " + attr + ": no such attribute");
    (info->before_init ? setup->before : setup->after)
        .emplace_back(std::move(attr), std::move(value));
  }
  if (!o.policy.empty()) {  // --policy VALUE: -o policy=VALUE
    for (const auto& [attr, value] : setup->after) {
      if (attr == "policy")
        return usage_error(io, "serve: --policy and -o policy= exclude each other");
    }
    setup->after.emplace_back("policy", o.policy);
  }
  return kExitOk;
}

// --size, -U/--port, the timeouts.
int parse_limits(const ServeOptions& o, const Io& io, ServeSetup* setup) {
  auto size = parse_size(o.size);
  if (!size || *size == 0) return usage_error(io, "serve: --size: invalid size '" + o.size + "'");
  setup->size = *size;
  if (!o.port.empty() && !o.socket.empty())
    return usage_error(io, "serve: -U and --port exclude each other");
  if (!o.port.empty() && !valid_port(o.port)) {
    return usage_error(
        io,
        "serve: --port: want a TCP port number 0-65535 (0: any free port), got '" + o.port + "'");
  }
  if (!o.handshake_timeout.empty() &&
      !parse_seconds(o.handshake_timeout, &setup->handshake_timeout)) {
    return usage_error(io, "serve: --handshake-timeout: want seconds (> 0, at most 86400), got '" +
                               o.handshake_timeout + "'");
  }
  if (!o.send_timeout.empty() && !parse_seconds(o.send_timeout, &setup->send_timeout)) {
    return usage_error(io, "serve: --send-timeout: want seconds (> 0, at most 86400), got '" +
                               o.send_timeout + "'");
  }
  return kExitOk;
}

// --tls and its credentials: require when credentials are given, else off.
int parse_tls(const ServeOptions& o, const Io& io, ServeSetup* setup) {
  if (o.tls_verify_peer && o.tls_certificates.empty()) {
    return usage_error(
        io,
        "serve: --tls-verify-peer needs --tls-certificates DIR (client certificates are "
        "verified against DIR/ca-cert.pem)");
  }
  const bool creds = !o.tls_psk.empty() || !o.tls_certificates.empty();
  setup->tls_mode = o.tls.empty() ? (creds ? "require" : "off") : o.tls;
  const std::string& mode = setup->tls_mode;
  if (mode != "off" && mode != "on" && mode != "require") {
    return usage_error(io, "serve: --tls: want off, on or require, got '" + mode + "'");
  }
  if (mode != "off" && !creds)
    return usage_error(io, "serve: --tls=" + mode + " needs --tls-psk or --tls-certificates");
  return kExitOk;
}

// --swap: a mem_limit is required and written before disksize (the pool is sized for it);
// TLS and a remote backing_dev are refused (GnuTLS and libnbd allocate for every record
// or request).
int parse_swap(const ServeOptions& o, const Io& io, ServeSetup* setup) {
  if (!o.swap) return kExitOk;
  if (setup->tls_mode != "off") {
    return usage_error(io,
                       "serve: --swap with TLS: GnuTLS allocates memory for every record, so a "
                       "TLS connection cannot serve swap without asking the kernel for memory; "
                       "serve swap on the Unix socket");
  }
  for (const auto& [attr, v] : setup->before) {
    if (attr == "backing_dev" && v.rfind("nbd", 0) == 0 && v.find("://") != std::string::npos) {
      return usage_error(io,
                         "serve: --swap with a remote backing_dev: libnbd allocates memory for "
                         "every request, so writeback to it cannot serve swap without asking "
                         "the kernel for memory; give a local file or block device");
    }
  }
  std::string value;
  auto& after = setup->after;
  for (auto it = after.begin(); it != after.end();) {
    if (it->first != "mem_limit") {
      ++it;
      continue;
    }
    value = it->second;
    setup->before.push_back(std::move(*it));
    it = after.erase(it);
  }
  if (value.empty()) {
    return usage_error(io,
                       "serve: --swap needs -o mem_limit=SIZE: the pool is sized for it and its "
                       "memory locked (docs/uzram-serve.md#swap)");
  }
  const auto bytes = parse_size(value);
  if (!bytes) return usage_error(io, "serve: -o mem_limit: invalid size '" + value + "'");
  if (*bytes == 0) {
    return usage_error(io, "serve: --swap: mem_limit=0 means no limit, and swap needs one");
  }
  setup->swap_mem_limit = (*bytes + kBlockSize - 1) / kBlockSize * kBlockSize;
  return kExitOk;
}

// --metrics [ADDR:]PORT.
int parse_metrics(const ServeOptions& o, const Io& io, ServeSetup* setup) {
  if (o.metrics.empty()) return kExitOk;
  std::string why;
  if (!parse_metrics_address(o.metrics, &setup->metrics, &why))
    return usage_error(io, "serve: --metrics: " + why);
  return kExitOk;
}

}  // namespace

int parse_serve_options(const ServeOptions& o, const Io& io, ServeSetup* setup) {
  int rc = parse_attrs(o, io, setup);
  if (rc == kExitOk) rc = parse_limits(o, io, setup);
  if (rc == kExitOk) rc = parse_tls(o, io, setup);
  if (rc == kExitOk) rc = parse_swap(o, io, setup);
  if (rc == kExitOk) rc = parse_metrics(o, io, setup);
  return rc;
}

SwapBudget swap_budget(const ServeOptions& o, const ServeSetup& setup) {
  nbd::ServerOptions so;
  swap_server_options(&so);
  SwapBudget b;
  b.mem_limit = setup.swap_mem_limit;
  b.per_connection = nbd::preallocated_bytes(so.session) +
                     (1 + std::max(1u, o.threads)) * kSwapStackBytes + (std::size_t{256} << 10);
  b.connections = so.max_connections;
  b.extra_threads = 0;  // the acceptor, control and metrics threads run already
  return b;
}

}  // namespace uzram::cli

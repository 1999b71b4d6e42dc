// cli/metrics_http.cc - MetricsServer (metrics.h): GET /metrics over HTTP with
// libmicrohttpd (Debian: libmicrohttpd-dev), from the library's own polling thread. At
// most 16 connections at once, each closed after 10 s idle; the exposition is rendered
// per request (a scrape reads the stores' statistics and /proc/self/smaps).
//
// libmicrohttpd is loaded with dlopen when --metrics is given, not linked: it pulls in
// GnuTLS, and a server without metrics and TLS maps neither (nbd/tls.cc does the same).
#include <arpa/inet.h>

#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "cli/metrics.h"
#include "util/dynlib.h"
#include "util/errno_text.h"

namespace uzram::cli {

namespace {

#define UZRAM_MHD_FUNCTIONS(X)        \
  X(MHD_add_response_header);         \
  X(MHD_create_response_from_buffer); \
  X(MHD_destroy_response);            \
  X(MHD_get_daemon_info);             \
  X(MHD_lookup_connection_value);     \
  X(MHD_queue_response);              \
  X(MHD_start_daemon);                \
  X(MHD_stop_daemon);

struct MhdLib {
// NOLINTNEXTLINE(bugprone-macro-parentheses): `name` is a declarator, not an expression
#define UZRAM_MHD_MEMBER(name) decltype(&::name) name = nullptr
  UZRAM_MHD_FUNCTIONS(UZRAM_MHD_MEMBER)
#undef UZRAM_MHD_MEMBER
  std::string error;  // why loading failed; empty when loaded
};

MhdLib load_mhd() noexcept {
  MhdLib m;
  // Never unloaded: a daemon thread may still be winding down.
  DynLib lib("libmicrohttpd.so.12", "libmicrohttpd");
#define UZRAM_MHD_LOAD(name) m.name = reinterpret_cast<decltype(m.name)>(lib.sym(#name))
  UZRAM_MHD_FUNCTIONS(UZRAM_MHD_LOAD)
#undef UZRAM_MHD_LOAD
  m.error = lib.error();
  return m;
}

// The library, loaded once by the first MetricsServer::start (thread-safe static
// initialisation); every call below goes through mhd().
const MhdLib& mhd() noexcept {
  static const MhdLib lib = load_mhd();
  return lib;
}

// What the request handler reads (from libmicrohttpd's thread).
struct Context {
  const StoreRegistry* registry = nullptr;
  const nbd::Server* server = nullptr;
};

MHD_Result send(MHD_Connection* c, unsigned status, const std::string& body, const char* type) {
  MHD_Response* r = mhd().MHD_create_response_from_buffer(
      body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (r == nullptr) return MHD_NO;
  mhd().MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  const MHD_Result ok = mhd().MHD_queue_response(c, status, r);
  mhd().MHD_destroy_response(r);
  return ok;
}

MHD_Result handle(void* cls, MHD_Connection* c, const char* url, const char* method,
                  const char* /*version*/, const char* /*upload*/, size_t* upload_size,
                  void** /*con_cls*/) noexcept {
  const auto* st = static_cast<const Context*>(cls);
  try {
    if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0) {
      return send(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n", "text/plain");
    }
    if (*upload_size != 0) return MHD_NO;  // a GET with a body: drop the connection
    if (std::strcmp(url, "/metrics") != 0) {
      return send(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n", "text/plain");
    }
    const MetricsFormat f = negotiate_format(
        mhd().MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT));
    return send(c, MHD_HTTP_OK, render_metrics(*st->registry, st->server, f),
                f == MetricsFormat::openmetrics ? kOpenMetricsType : kPrometheusType);
  } catch (...) {  // out of memory: this request fails, the server goes on
    return MHD_NO;
  }
}

}  // namespace

struct MetricsServer::State {
  Context context;
  MHD_Daemon* daemon = nullptr;
  std::string url;
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const MetricsAddress& address,
                                                            const StoreRegistry& registry,
                                                            const nbd::Server* server,
                                                            std::string* msg) noexcept try {
  sockaddr_storage ss{};
  socklen_t len = 0;
  bool v6 = false;
  const auto port = static_cast<std::uint16_t>(std::stoul(address.port));
  auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, address.host.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    len = sizeof *in;
  } else if (::inet_pton(AF_INET6, address.host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    len = sizeof *in6;
    v6 = true;
  } else {
    if (msg) *msg = address.host + ": not a numeric IPv4 or IPv6 address";
    return Errc::invalid_argument;
  }
  if (const MhdLib& lib = mhd(); !lib.error.empty()) {
    if (msg) *msg = lib.error;
    return Errc::not_supported;
  }
  std::unique_ptr<MetricsServer> m(new MetricsServer);
  m->state_ = std::make_unique<State>();
  State& st = *m->state_;
  st.context.registry = &registry;
  st.context.server = server;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
  if (v6) flags |= MHD_USE_IPv6;
  errno = 0;
  st.daemon = mhd().MHD_start_daemon(flags, port, nullptr, nullptr, &handle, &st.context,
                                     MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&ss),
                                     MHD_OPTION_CONNECTION_LIMIT, 16u,
                                     MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
  (void)len;
  if (st.daemon == nullptr) {
    const int e = errno ? errno : EADDRNOTAVAIL;
    if (msg) *msg = address.host + ":" + address.port + ": cannot listen: " + errno_text(e);
    return std::error_code(e, std::generic_category());
  }
  const MHD_DaemonInfo* info = mhd().MHD_get_daemon_info(st.daemon, MHD_DAEMON_INFO_BIND_PORT);
  const unsigned bound = info ? info->port : port;
  st.url = "http://" + (v6 ? "[" + address.host + "]" : address.host) + ":" +
           std::to_string(bound) + "/metrics";
  return m;
} catch (...) {
  if (msg) *msg = "out of memory";
  return Errc::no_memory;
}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::stop() noexcept {
  if (state_ && state_->daemon) {
    mhd().MHD_stop_daemon(state_->daemon);
    state_->daemon = nullptr;
  }
}

const std::string& MetricsServer::url() const noexcept { return state_->url; }

}  // namespace uzram::cli

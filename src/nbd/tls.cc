// nbd/tls.cc - GnuTLS server sessions with PSK and/or X.509 credentials, on our own
// transport functions: send(MSG_NOSIGNAL) and recv bounded by the connection's deadline.
//
// GnuTLS is loaded with dlopen when the first TlsContext is created, not linked: a server
// without TLS never maps it and the libraries it pulls in (p11-kit, nettle, hogweed, gmp,
// tasn1, unistring, idn2: 2.3 MiB of resident memory; docs/uzram-serve.md#memory). Only
// its headers are used at build time, for the types, constants and prototypes.
#include "nbd/tls.h"
#include "util/dynlib.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <new>
#include <vector>

static_assert(GNUTLS_VERSION_MAJOR == 3, "libgnutls.so.30 is GnuTLS 3's soname");

namespace uzram::nbd {
namespace {

// Every GnuTLS function this file calls, as a pointer of the prototype's exact type.
#define UZRAM_GNUTLS_FUNCTIONS(X)                  \
  X(gnutls_alert_send);                            \
  X(gnutls_auth_get_type);                         \
  X(gnutls_bye);                                   \
  X(gnutls_certificate_allocate_credentials);      \
  X(gnutls_certificate_free_credentials);          \
  X(gnutls_certificate_server_set_request);        \
  X(gnutls_certificate_set_x509_crl_file);         \
  X(gnutls_certificate_set_x509_key_file);         \
  X(gnutls_certificate_set_x509_trust_file);       \
  X(gnutls_certificate_verification_status_print); \
  X(gnutls_certificate_verify_peers);              \
  X(gnutls_credentials_set);                       \
  X(gnutls_deinit);                                \
  X(gnutls_error_is_fatal);                        \
  X(gnutls_handshake);                             \
  X(gnutls_handshake_set_timeout);                 \
  X(gnutls_init);                                  \
  X(gnutls_priority_set_direct);                   \
  X(gnutls_psk_allocate_server_credentials);       \
  X(gnutls_psk_free_server_credentials);           \
  X(gnutls_psk_set_server_credentials_function);   \
  X(gnutls_record_recv);                           \
  X(gnutls_record_send);                           \
  X(gnutls_session_get_ptr);                       \
  X(gnutls_session_set_ptr);                       \
  X(gnutls_strerror);                              \
  X(gnutls_transport_set_errno);                   \
  X(gnutls_transport_set_ptr);                     \
  X(gnutls_transport_set_pull_function);           \
  X(gnutls_transport_set_pull_timeout_function);   \
  X(gnutls_transport_set_vec_push_function);

struct GnutlsLib {
// NOLINTNEXTLINE(bugprone-macro-parentheses): `name` is a declarator, not an expression
#define UZRAM_GNUTLS_MEMBER(name) decltype(&::name) name = nullptr
  UZRAM_GNUTLS_FUNCTIONS(UZRAM_GNUTLS_MEMBER)
#undef UZRAM_GNUTLS_MEMBER
  // gnutls_malloc and gnutls_free are variables (allocator hooks), not functions.
  gnutls_alloc_function malloc_fn = nullptr;
  gnutls_free_function free_fn = nullptr;
  std::string error;  // why loading failed; empty when loaded
};

GnutlsLib load_gnutls() noexcept {
  GnutlsLib g;
  // Never unloaded: its destructors would run under live sessions.
  DynLib lib("libgnutls.so.30", "GnuTLS");
#define UZRAM_GNUTLS_LOAD(name) g.name = reinterpret_cast<decltype(g.name)>(lib.sym(#name))
  UZRAM_GNUTLS_FUNCTIONS(UZRAM_GNUTLS_LOAD)
#undef UZRAM_GNUTLS_LOAD
  if (auto* m = static_cast<gnutls_alloc_function*>(lib.sym("gnutls_malloc"))) g.malloc_fn = *m;
  if (auto* f = static_cast<gnutls_free_function*>(lib.sym("gnutls_free"))) g.free_fn = *f;
  g.error = lib.error();
  return g;
}

// The library, loaded once (thread-safe static initialisation) by the first call. Every
// call below goes through gnutls(): only a TlsContext that was created (and so loaded
// it) leads there.
const GnutlsLib& gnutls() noexcept {
  static const GnutlsLib lib = load_gnutls();
  return lib;
}

}  // namespace

struct TlsContext::State {
  // PSK username -> key. std::less<>: the lookup takes GnuTLS's char* without a copy.
  std::map<std::string, std::vector<std::uint8_t>, std::less<>> keys;
  gnutls_psk_server_credentials_t psk = nullptr;
  gnutls_certificate_credentials_t x509 = nullptr;
  bool verify_peer = false;
  bool offer_x509 = false;  // certificate key exchanges allowed
  const char* priority = "NORMAL";
};

namespace {

// PSK only: no certificate key exchange (and none is possible: no certificate is set).
constexpr const char* kPskOnly = "NORMAL:-KX-ALL:+ECDHE-PSK:+DHE-PSK:+PSK";
constexpr const char* kPskAndX509 = "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK";
constexpr auto kByeBudget = std::chrono::seconds(1);

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int psk_lookup(gnutls_session_t session, const char* username, gnutls_datum_t* key) {
  const auto* st = static_cast<const TlsContext::State*>(gnutls().gnutls_session_get_ptr(session));
  const auto it = st->keys.find(std::string_view(username));
  if (it == st->keys.end()) return -1;
  key->data = static_cast<unsigned char*>(gnutls().malloc_fn(it->second.size()));
  if (key->data == nullptr) return -1;
  std::memcpy(key->data, it->second.data(), it->second.size());
  key->size = static_cast<unsigned>(it->second.size());
  return 0;
}

class TlsTransport final : public Transport {
 public:
  TlsTransport(int fd, const Deadline& d) noexcept : fd_(fd) { deadline_ = d; }
  ~TlsTransport() override {
    if (s_ == nullptr) return;
    if (!failed_.load(std::memory_order_relaxed)) {  // a healthy session: say goodbye, briefly
      deadline_ = Deadline::after(kByeBudget);
      gnutls().gnutls_bye(s_, GNUTLS_SHUT_WR);
    }
    gnutls().gnutls_deinit(s_);
  }
  bool is_tls() const noexcept override { return true; }

  bool read_full(void* buf, std::size_t n) noexcept override {
    auto* p = static_cast<std::uint8_t*>(buf);
    while (n > 0) {
      const ssize_t r = gnutls().gnutls_record_recv(s_, p, n);
      if (r == GNUTLS_E_INTERRUPTED || (r == GNUTLS_E_AGAIN && !deadline_passed())) continue;
      if (r <= 0) {  // EOF (close_notify or not), rehandshake request, error, deadline
        failed_.store(true, std::memory_order_relaxed);
        return false;
      }
      p += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }
  bool writev_full(iovec* iov, int count) noexcept override {
    for (int i = 0; i < count; i++) {
      auto* p = static_cast<const std::uint8_t*>(iov[i].iov_base);
      std::size_t n = iov[i].iov_len;
      while (n > 0) {
        const ssize_t r = gnutls().gnutls_record_send(s_, p, n);
        if (r == GNUTLS_E_INTERRUPTED) continue;
        if (r <= 0) {
          failed_.store(true, std::memory_order_relaxed);
          return false;
        }
        p += r;
        n -= static_cast<std::size_t>(r);
      }
    }
    return true;
  }

  // Session setup and handshake; false (logged) on failure.
  bool handshake(const TlsContext::State& st, const LogFn& log) noexcept;

 private:
  // Transport functions (gnutls_transport_set_*). Failures set the session's errno: a
  // timeout (the deadline, or the send timeout without progress) is ETIMEDOUT, never
  // EAGAIN, so GnuTLS treats it as fatal.
  static ssize_t push(gnutls_transport_ptr_t p, const giovec_t* iov, int count) noexcept {
    auto* t = static_cast<TlsTransport*>(p);
    Deadline d = t->deadline_;  // and the send timeout, from the start of this call
    if (t->send_timeout_.count() > 0) {
      const Deadline stall = Deadline::after(t->send_timeout_);
      if (!d.set() || stall.at() < d.at()) d = stall;
    }
    const bool bounded = d.set();
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(iov);
    m.msg_iovlen = static_cast<std::size_t>(count);
    for (;;) {
      if (bounded && !wait_fd(t->fd_, POLLOUT, d)) return t->fail(ETIMEDOUT);
      const ssize_t r = ::sendmsg(t->fd_, &m, MSG_NOSIGNAL | (bounded ? MSG_DONTWAIT : 0));
      if (r >= 0) return r;
      if (errno == EINTR || (errno == EAGAIN && bounded)) continue;
      return t->fail(errno == EAGAIN ? ETIMEDOUT : errno);
    }
  }
  static ssize_t pull(gnutls_transport_ptr_t p, void* buf, std::size_t n) noexcept {
    auto* t = static_cast<TlsTransport*>(p);
    const bool bounded = t->deadline_.set();
    for (;;) {
      if (bounded && !wait_fd(t->fd_, POLLIN, t->deadline_)) return t->fail(ETIMEDOUT);
      const ssize_t r = ::recv(t->fd_, buf, n, bounded ? MSG_DONTWAIT : 0);
      if (r >= 0) return r;
      if (errno == EINTR || (errno == EAGAIN && bounded)) continue;
      return t->fail(errno == EAGAIN ? ETIMEDOUT : errno);
    }
  }
  static int pull_timeout(gnutls_transport_ptr_t p, unsigned ms) noexcept {
    auto* t = static_cast<TlsTransport*>(p);
    int wait = ms == GNUTLS_INDEFINITE_TIMEOUT ? -1
               : ms > 1'000'000'000            ? 1'000'000'000
                                               : static_cast<int>(ms);
    const int left = t->deadline_.poll_ms();
    if (left >= 0 && (wait < 0 || left < wait)) wait = left;
    pollfd pf{t->fd_, POLLIN, 0};
    for (;;) {
      const int r = ::poll(&pf, 1, wait);
      if (r < 0 && errno == EINTR) continue;
      return r;
    }
  }
  ssize_t fail(int e) noexcept {
    gnutls().gnutls_transport_set_errno(s_, e);
    errno = e;
    return -1;
  }

  const int fd_;
  gnutls_session_t s_ = nullptr;
  // Set by the reader or the writer when a call failed: no close_notify then (the peer is
  // gone or misbehaving; writing to it could block or fail). Relaxed: read after both
  // threads are joined.
  std::atomic<bool> failed_{false};
};

bool TlsTransport::handshake(const TlsContext::State& st, const LogFn& log) noexcept {
  int r = gnutls().gnutls_init(&s_, GNUTLS_SERVER | GNUTLS_NO_SIGNAL);
  if (r < 0) {
    s_ = nullptr;
    logf(log, "TLS setup: %s; closing", gnutls().gnutls_strerror(r));
    return false;
  }
  failed_.store(true, std::memory_order_relaxed);  // until the handshake succeeds
  gnutls().gnutls_session_set_ptr(s_, const_cast<TlsContext::State*>(&st));
  const char* err = nullptr;
  r = gnutls().gnutls_priority_set_direct(s_, st.priority, &err);
  if (r >= 0 && st.psk) r = gnutls().gnutls_credentials_set(s_, GNUTLS_CRD_PSK, st.psk);
  if (r >= 0 && st.offer_x509)
    r = gnutls().gnutls_credentials_set(s_, GNUTLS_CRD_CERTIFICATE, st.x509);
  if (r >= 0 && st.offer_x509 && st.verify_peer)
    gnutls().gnutls_certificate_server_set_request(s_, GNUTLS_CERT_REQUIRE);
  if (r < 0) {
    logf(log, "TLS setup: %s; closing", gnutls().gnutls_strerror(r));
    return false;
  }
  gnutls().gnutls_transport_set_ptr(s_, this);
  gnutls().gnutls_transport_set_vec_push_function(s_, push);
  gnutls().gnutls_transport_set_pull_function(s_, pull);
  gnutls().gnutls_transport_set_pull_timeout_function(s_, pull_timeout);
  do {
    const int left = deadline_.poll_ms();
    gnutls().gnutls_handshake_set_timeout(s_, left < 0   ? GNUTLS_DEFAULT_HANDSHAKE_TIMEOUT
                                              : left > 0 ? left
                                                         : 1);
    r = gnutls().gnutls_handshake(s_);
  } while (r < 0 && gnutls().gnutls_error_is_fatal(r) == 0 && !deadline_passed());
  if (r < 0) {
    logf(log, "TLS handshake failed: %s%s", gnutls().gnutls_strerror(r),
         deadline_passed() ? " (handshake deadline passed)" : "");
    return false;
  }
  switch (gnutls().gnutls_auth_get_type(s_)) {
    case GNUTLS_CRD_PSK: break;  // the client proved it holds a key
    case GNUTLS_CRD_CERTIFICATE:
      if (st.verify_peer) {
        gnutls_typed_vdata_st purpose{};
        purpose.type = GNUTLS_DT_KEY_PURPOSE_OID;
        purpose.data =
            reinterpret_cast<unsigned char*>(const_cast<char*>(GNUTLS_KP_TLS_WWW_CLIENT));
        unsigned status = 0;
        r = gnutls().gnutls_certificate_verify_peers(s_, &purpose, 1, &status);
        if (r < 0 || status != 0) {
          gnutls_datum_t why{};
          if (r >= 0)
            gnutls().gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
          logf(log, "TLS: client certificate refused: %s",
               r < 0      ? gnutls().gnutls_strerror(r)
               : why.data ? reinterpret_cast<const char*>(why.data)
                          : "invalid");
          if (why.data) gnutls().free_fn(why.data);
          gnutls().gnutls_alert_send(s_, GNUTLS_AL_FATAL, GNUTLS_A_BAD_CERTIFICATE);
          return false;
        }
      }
      break;
    default: logf(log, "TLS: unexpected authentication type; closing"); return false;
  }
  failed_.store(false, std::memory_order_relaxed);
  return true;
}

Result<void> load_psk(const std::string& file, TlsContext::State& st, std::string* msg) {
  std::ifstream in(file);
  if (!in) {
    *msg = file + ": cannot read the PSK file";
    return Errc::invalid_argument;
  }
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t colon = line.find(':');
    std::vector<std::uint8_t> key;
    bool ok = colon != std::string::npos && colon > 0 && (line.size() - colon - 1) % 2 == 0;
    for (std::size_t i = colon + 1; ok && i < line.size(); i += 2) {
      const int hi = hexval(line[i]), lo = hexval(line[i + 1]);
      if (hi < 0 || lo < 0) ok = false;
      key.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
    }
    if (!ok || key.empty()) {
      *msg = file + ": malformed line (want username:hexkey)";
      return Errc::invalid_argument;
    }
    st.keys[line.substr(0, colon)] = std::move(key);
  }
  if (st.keys.empty()) {
    *msg = file + ": no keys";
    return Errc::invalid_argument;
  }
  if (gnutls().gnutls_psk_allocate_server_credentials(&st.psk) < 0) {
    *msg = "GnuTLS: cannot allocate PSK credentials";
    return Errc::io_error;
  }
  gnutls().gnutls_psk_set_server_credentials_function(st.psk, psk_lookup);
  return {};
}

Result<void> load_x509(const std::string& dir, TlsContext::State& st, std::string* msg) {
  const std::string cert = dir + "/server-cert.pem";
  const std::string key = dir + "/server-key.pem";
  if (gnutls().gnutls_certificate_allocate_credentials(&st.x509) < 0) {
    *msg = "GnuTLS: cannot allocate certificate credentials";
    return Errc::io_error;
  }
  if (int r = gnutls().gnutls_certificate_set_x509_key_file(st.x509, cert.c_str(), key.c_str(),
                                                            GNUTLS_X509_FMT_PEM);
      r < 0) {
    *msg = cert + ": " + gnutls().gnutls_strerror(r);
    return Errc::invalid_argument;
  }
  if (!st.verify_peer) return {};
  const std::string ca = dir + "/ca-cert.pem";
  const int n =
      gnutls().gnutls_certificate_set_x509_trust_file(st.x509, ca.c_str(), GNUTLS_X509_FMT_PEM);
  if (n <= 0) {
    *msg = ca + ": " + (n < 0 ? gnutls().gnutls_strerror(n) : "no certificate") +
           " (--tls-verify-peer needs the CA that signs client certificates)";
    return Errc::invalid_argument;
  }
  const std::string crl = dir + "/ca-crl.pem";  // optional, as nbdkit
  struct stat sb {};
  if (::stat(crl.c_str(), &sb) == 0) {
    if (int r = gnutls().gnutls_certificate_set_x509_crl_file(st.x509, crl.c_str(),
                                                              GNUTLS_X509_FMT_PEM);
        r < 0) {
      *msg = crl + ": " + gnutls().gnutls_strerror(r);
      return Errc::invalid_argument;
    }
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<TlsContext>> TlsContext::create(const TlsOptions& o,
                                                       std::string* msg) noexcept {
  std::unique_ptr<TlsContext> c(new (std::nothrow) TlsContext());
  if (c == nullptr) {
    *msg = "out of memory";
    return Errc::no_memory;
  }
  c->state_ = std::make_unique<State>();
  State& st = *c->state_;
  if (o.psk_file.empty() && o.certificates_dir.empty()) {
    *msg = "TLS needs --tls-psk or --tls-certificates";
    return Errc::invalid_argument;
  }
  if (o.verify_peer && o.certificates_dir.empty()) {
    *msg = "--tls-verify-peer needs --tls-certificates DIR (with DIR/ca-cert.pem)";
    return Errc::invalid_argument;
  }
  if (!gnutls().error.empty()) {  // the first TLS context loads the library
    *msg = gnutls().error;
    return Errc::not_supported;
  }
  st.verify_peer = o.verify_peer;
  if (!o.psk_file.empty()) {
    if (auto r = load_psk(o.psk_file, st, msg); !r) return r.error();
  }
  if (!o.certificates_dir.empty()) {
    if (auto r = load_x509(o.certificates_dir, st, msg); !r) return r.error();
  }
  st.offer_x509 = st.x509 != nullptr && (st.psk == nullptr || st.verify_peer);
  st.priority = st.psk == nullptr ? "NORMAL" : st.offer_x509 ? kPskAndX509 : kPskOnly;
  return c;
}

TlsContext::~TlsContext() {
  if (!state_) return;
  if (state_->psk) gnutls().gnutls_psk_free_server_credentials(state_->psk);
  if (state_->x509) gnutls().gnutls_certificate_free_credentials(state_->x509);
}

bool TlsContext::authenticates() const noexcept {
  return state_->psk != nullptr || state_->verify_peer;
}

bool TlsContext::certificates_unused() const noexcept {
  return state_->x509 != nullptr && !state_->offer_x509;
}

std::unique_ptr<Transport> TlsContext::accept(int fd, const Deadline& deadline,
                                              const LogFn& log) noexcept {
  std::unique_ptr<TlsTransport> t(new (std::nothrow) TlsTransport(fd, deadline));
  if (!t) {
    logf(log, "TLS setup: out of memory; closing");
    return nullptr;
  }
  if (!t->handshake(*state_, log)) return nullptr;
  return t;
}

}  // namespace uzram::nbd

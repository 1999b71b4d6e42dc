// nbd/tls.cc - GnuTLS server sessions with PSK and/or X.509 credentials.
#include "nbd/tls.h"

#include <gnutls/gnutls.h>

#include <cstring>
#include <fstream>
#include <map>
#include <vector>

namespace uzram::nbd {

struct TlsContext::State {
  std::map<std::string, std::vector<std::uint8_t>> keys;  // PSK username -> key
  gnutls_psk_server_credentials_t psk = nullptr;
  gnutls_certificate_credentials_t x509 = nullptr;
};

namespace {

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int psk_lookup(gnutls_session_t session, const char* username, gnutls_datum_t* key) {
  const auto* st = static_cast<const TlsContext::State*>(gnutls_session_get_ptr(session));
  const auto it = st->keys.find(username);
  if (it == st->keys.end()) return -1;
  key->data = static_cast<unsigned char*>(gnutls_malloc(it->second.size()));
  if (key->data == nullptr) return -1;
  std::memcpy(key->data, it->second.data(), it->second.size());
  key->size = static_cast<unsigned>(it->second.size());
  return 0;
}

class TlsTransport final : public Transport {
 public:
  explicit TlsTransport(gnutls_session_t s) noexcept : s_(s) {}
  ~TlsTransport() override {
    gnutls_bye(s_, GNUTLS_SHUT_WR);
    gnutls_deinit(s_);
  }
  bool is_tls() const noexcept override { return true; }
  bool read_full(void* buf, std::size_t n) noexcept override {
    auto* p = static_cast<std::uint8_t*>(buf);
    while (n > 0) {
      const ssize_t r = gnutls_record_recv(s_, p, n);
      if (r == GNUTLS_E_INTERRUPTED) continue;  // AGAIN: a receive timeout on a blocking socket
      if (r <= 0) return false;
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
        const ssize_t r = gnutls_record_send(s_, p, n);
        if (r == GNUTLS_E_INTERRUPTED) continue;  // AGAIN: a receive timeout on a blocking socket
        if (r <= 0) return false;
        p += r;
        n -= static_cast<std::size_t>(r);
      }
    }
    return true;
  }

 private:
  gnutls_session_t s_;
};

}  // namespace

Result<std::unique_ptr<TlsContext>> TlsContext::create(const TlsOptions& o, std::string* msg) noexcept {
  std::unique_ptr<TlsContext> c(new TlsContext());
  c->state_ = std::make_unique<State>();
  State& st = *c->state_;
  if (o.psk_file.empty() && o.certificates_dir.empty()) {
    *msg = "TLS needs --tls-psk or --tls-certificates";
    return Errc::invalid_argument;
  }
  if (!o.psk_file.empty()) {
    std::ifstream in(o.psk_file);
    if (!in) {
      *msg = o.psk_file + ": cannot read the PSK file";
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
        *msg = o.psk_file + ": malformed line (want username:hexkey)";
        return Errc::invalid_argument;
      }
      st.keys[line.substr(0, colon)] = std::move(key);
    }
    if (gnutls_psk_allocate_server_credentials(&st.psk) < 0) {
      *msg = "GnuTLS: cannot allocate PSK credentials";
      return Errc::io_error;
    }
    gnutls_psk_set_server_credentials_function(st.psk, psk_lookup);
  }
  if (!o.certificates_dir.empty()) {
    const std::string cert = o.certificates_dir + "/server-cert.pem";
    const std::string key = o.certificates_dir + "/server-key.pem";
    if (gnutls_certificate_allocate_credentials(&st.x509) < 0) {
      *msg = "GnuTLS: cannot allocate certificate credentials";
      return Errc::io_error;
    }
    if (int r = gnutls_certificate_set_x509_key_file(st.x509, cert.c_str(), key.c_str(), GNUTLS_X509_FMT_PEM);
        r < 0) {
      *msg = cert + ": " + gnutls_strerror(r);
      return Errc::invalid_argument;
    }
  }
  return c;
}

TlsContext::~TlsContext() {
  if (!state_) return;
  if (state_->psk) gnutls_psk_free_server_credentials(state_->psk);
  if (state_->x509) gnutls_certificate_free_credentials(state_->x509);
}

std::unique_ptr<Transport> TlsContext::accept(int fd, const LogFn& log) noexcept {
  gnutls_session_t s = nullptr;
  if (gnutls_init(&s, GNUTLS_SERVER) < 0) return nullptr;
  gnutls_session_set_ptr(s, state_.get());
  const char* err = nullptr;
  int r = gnutls_priority_set_direct(
      s, state_->psk ? "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK" : "NORMAL", &err);
  if (r >= 0 && state_->psk) r = gnutls_credentials_set(s, GNUTLS_CRD_PSK, state_->psk);
  if (r >= 0 && state_->x509) r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, state_->x509);
  if (r < 0) {
    if (log) log(std::string("TLS setup: ") + gnutls_strerror(r));
    gnutls_deinit(s);
    return nullptr;
  }
  gnutls_transport_set_int(s, fd);
  gnutls_handshake_set_timeout(s, GNUTLS_DEFAULT_HANDSHAKE_TIMEOUT);
  do {
    r = gnutls_handshake(s);
  } while (r < 0 && gnutls_error_is_fatal(r) == 0);
  if (r < 0) {
    if (log) log(std::string("TLS handshake failed: ") + gnutls_strerror(r));
    gnutls_deinit(s);
    return nullptr;
  }
  return std::make_unique<TlsTransport>(s);
}

}  // namespace uzram::nbd

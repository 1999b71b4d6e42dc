// cli/serve.cc - `uzram serve`: creates and configures a store (-o attributes before or
// after disksize as the kernel requires), serves it over NBD and on a control socket, and
// runs until SIGINT/SIGTERM or, in captive mode (--run), until the command exits.
#include "cli/serve.h"

#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "cli/log_sink.h"
#include "control/control.h"
#include "nbd/server.h"
#include "nbd/store_backend.h"
#include "nbd/tls.h"
#include "uzram/store.h"

extern char** environ;

namespace uzram::cli {
namespace {

bool apply(Store& store, const std::string& attr, const std::string& value, const Io& io) {
  std::string msg;
  if (auto r = store.write_attr(attr, value, &msg); !r) {
    report(io, "serve", r.error(), msg.empty() ? attr + ": " + r.error().message() : msg);
    return false;
  }
  return true;
}

std::string default_socket() {
  return (std::filesystem::path(default_control_dir()) / "nbd.socket").string();
}

// fprintf, not fmt::print: `uzram serve | head -1` closes stdout, and fmt::print throws on
// a failed write (run_serve is noexcept).
void print_examples(const Io& io, const std::string& uri, const std::string& control) {
  const char* u = uri.c_str();
  std::fprintf(io.out,
               "uzram serve: %s\n"
               "  nbdinfo   nbdinfo '%s'\n"
               "  nbdcopy   nbdcopy disk.img '%s'\n"
               "  nbdsh     nbdsh -u '%s' -c 'print(h.get_size())'\n"
               "  qemu-img  qemu-img info '%s'\n"
               "  qemu-io   qemu-io -f raw -c 'write -P 0xab 0 1M' '%s'\n"
               "  nbdfuse   mkdir -p mnt && nbdfuse mnt/disk '%s' &\n"
               "  fio       fio --ioengine=nbd --uri='%s' --name=r --rw=randread --bs=4k\n"
               "  control   uzram ctl --control %s mm_stat\n",
               u, u, u, u, u, u, u, u, control.c_str());
  std::fflush(io.out);
}

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

}  // namespace

int run_serve(const ServeOptions& o, const Io& io) noexcept {
  std::vector<std::pair<std::string, std::string>> before, after;
  for (const std::string& a : o.attrs) {
    const std::size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) return usage_error(io, "serve: -o expects attr=value, got '" + a + "'");
    std::string attr = a.substr(0, eq), value = a.substr(eq + 1);
    if (attr == "disksize") return usage_error(io, "serve: -o disksize: use --size");
    if (attr == "reset")
      return usage_error(io, "serve: -o reset: the store is created fresh; nothing to reset");
    const auto info = Store::attr_info(attr);
    if (!info) return usage_error(io, "serve: -o " + attr + ": no such attribute");
    (info->before_init ? before : after).emplace_back(std::move(attr), std::move(value));
  }
  auto size = parse_size(o.size);
  if (!size || *size == 0) return usage_error(io, "serve: --size: invalid size '" + o.size + "'");
  if (!o.port.empty() && o.socket.size()) return usage_error(io, "serve: -U and --port exclude each other");
  if (!o.port.empty() && !valid_port(o.port)) {
    return usage_error(
        io,
        "serve: --port: want a TCP port number 0-65535 (0: any free port), got '" + o.port + "'");
  }
  std::chrono::milliseconds handshake_timeout{10'000}, send_timeout{30'000};
  if (!o.handshake_timeout.empty() && !parse_seconds(o.handshake_timeout, &handshake_timeout)) {
    return usage_error(io, "serve: --handshake-timeout: want seconds (> 0, at most 86400), got '" +
                               o.handshake_timeout + "'");
  }
  if (!o.send_timeout.empty() && !parse_seconds(o.send_timeout, &send_timeout)) {
    return usage_error(io, "serve: --send-timeout: want seconds (> 0, at most 86400), got '" +
                               o.send_timeout + "'");
  }
  if (o.tls_verify_peer && o.tls_certificates.empty()) {
    return usage_error(
        io,
        "serve: --tls-verify-peer needs --tls-certificates DIR (client certificates are "
        "verified against DIR/ca-cert.pem)");
  }

  std::string tls_mode = o.tls;
  const bool creds = !o.tls_psk.empty() || !o.tls_certificates.empty();
  if (tls_mode.empty()) tls_mode = creds ? "require" : "off";
  if (tls_mode != "off" && tls_mode != "on" && tls_mode != "require") {
    return usage_error(io, "serve: --tls: want off, on or require, got '" + tls_mode + "'");
  }
  if (tls_mode != "off" && !creds) return usage_error(io, "serve: --tls=" + tls_mode + " needs --tls-psk or --tls-certificates");
  std::unique_ptr<nbd::TlsContext> tls;
  if (tls_mode != "off") {
    std::string m;
    auto t = nbd::TlsContext::create({o.tls_psk, o.tls_certificates, o.tls_verify_peer}, &m);
    if (!t) {
      report(io, "serve", t.error(), m);
      return kExitFailed;
    }
    tls = std::move(*t);
  }

  auto created = Store::create("zram0");
  if (!created) {
    report(io, "serve", created.error(), "");
    return kExitFailed;
  }
  Store& store = **created;
  if (!o.algo.empty() && !apply(store, "comp_algorithm", o.algo, io)) return kExitFailed;
  for (const auto& [a, v] : before) {
    if (!apply(store, a, v, io)) return kExitFailed;
  }
  if (!apply(store, "disksize", std::to_string(*size), io)) return kExitFailed;
  for (const auto& [a, v] : after) {
    if (!apply(store, a, v, io)) return kExitFailed;
  }

  // Nothing a client does may kill the server: a write to a vanished peer, a closed log
  // pipe, is an EPIPE error and never a SIGPIPE, in every thread (children get it back).
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, nullptr);

  // Each connection waiting for its first bytes holds a descriptor: allow a few thousand
  // (the server sizes its waiting room to the limit).
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max &&
      nofile.rlim_cur < 65536) {
    nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, 65536);
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }

  // Signals are taken synchronously by this thread: block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGCHLD);
  sigaddset(&sigs, SIGHUP);
  sigset_t old_mask;
  pthread_sigmask(SIG_BLOCK, &sigs, &old_mask);
  struct Restore {
    sigset_t m;
    ~Restore() { pthread_sigmask(SIG_SETMASK, &m, nullptr); }
  } restore{old_mask};

  const std::string control_path = o.control.empty() ? default_control_socket() : o.control;
  std::string msg;
  auto control = ControlServer::start(control_path, {&store}, &msg);
  if (!control) {
    report(io, "serve", control.error(), "control socket " + msg);
    return kExitFailed;
  }

  std::string tmpdir;
  nbd::ServerOptions so;
  so.port = o.port;
  so.bind = o.bind;
  so.force_insecure = o.force_insecure;
  so.handshake_timeout = handshake_timeout;
  so.send_timeout = send_timeout;
  so.session.workers = std::max(1u, o.threads);
  so.tls.context = tls.get();
  so.tls.required = tls_mode == "require";
  if (o.socket == "-") {
    char tmpl[] = "/tmp/uzram-nbd-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      report(io, "serve", {errno, std::generic_category()}, std::string("mkdtemp: ") + std::strerror(errno));
      return kExitFailed;
    }
    tmpdir = tmpl;
    so.unix_path = tmpdir + "/nbd.socket";
  } else {
    so.unix_path = o.socket.empty() ? default_socket() : o.socket;
  }
  LogSink sink(io.err);
  if (o.verbose) so.log = [&sink](std::string_view m) { sink.write(m); };
  nbd::StoreBackend backend(store);
  auto server = nbd::Server::start(backend, so, &msg);
  if (!server) {
    report(io, "serve", server.error(), msg);
    if (!tmpdir.empty()) ::rmdir(tmpdir.c_str());
    return kExitFailed;
  }
  const std::string uri = (*server)->uri();
  if (tls && tls->certificates_unused()) {
    sink.write(
        "warning: --tls-certificates is not used: with --tls-psk, certificate key exchanges would "
        "let "
        "clients without a key in; add --tls-verify-peer to accept verified client certificates "
        "too");
  }
  const bool authenticated = tls && tls_mode == "require" && tls->authenticates();
  if (!authenticated && (*server)->tcp_loopback()) {
    sink.write(
        "warning: TCP on a loopback address without TLS authentication: every local user can read "
        "and write this disk (use a Unix socket, or --tls=require with --tls-psk)");
  }
  if (!authenticated && (*server)->tcp_network()) {
    sink.write("warning: --force-insecure: every host that can reach " + o.bind +
               " can read and write this disk");
  }

  pid_t child = -1;
  if (!o.run.empty()) {
    ::setenv("uri", uri.c_str(), 1);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t empty, deflt;
    sigemptyset(&empty);
    sigemptyset(&deflt);
    sigaddset(&deflt, SIGINT);
    sigaddset(&deflt, SIGTERM);
    sigaddset(&deflt, SIGCHLD);
    sigaddset(&deflt, SIGHUP);
    sigaddset(&deflt, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &deflt);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    const char* argv[] = {"/bin/sh", "-c", o.run.c_str(), nullptr};
    const int rc = ::posix_spawn(&child, "/bin/sh", nullptr, &attr, const_cast<char**>(argv), environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      report(io, "serve", {rc, std::generic_category()}, std::string("--run: /bin/sh: ") + std::strerror(rc));
      (*server)->stop();
      return kExitFailed;
    }
  } else {
    print_examples(io, uri, control_path);
  }

  int status = kExitOk;
  for (;;) {
    siginfo_t info{};
    const int sig = ::sigwaitinfo(&sigs, &info);
    if (sig < 0) continue;
    if (sig == SIGCHLD) {
      if (child < 0) continue;
      int ws = 0;
      const pid_t r = ::waitpid(child, &ws, WNOHANG);
      if (r != child) continue;
      status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
      break;
    }
    if (o.verbose) sink.write(std::string(strsignal(sig)) + ": shutting down");
    if (child > 0) {  // captive: the command goes first, and its status is ours
      ::kill(child, SIGTERM);
      int ws = 0;
      while (::waitpid(child, &ws, 0) < 0 && errno == EINTR) {
      }
      status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    }
    break;
  }
  (*server)->stop();
  (*control)->stop();
  if (!tmpdir.empty()) ::rmdir(tmpdir.c_str());
  return status;
}

}  // namespace uzram::cli

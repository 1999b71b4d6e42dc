// cli/serve.cc - `uzram serve`: creates and configures a store (-o attributes before or
// after disksize as the kernel requires), serves it over NBD and on a control socket, and
// runs until SIGINT/SIGTERM or, in captive mode (--run), until the command exits.
#include "cli/serve.h"

#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "nbd/server.h"
#include "nbd/store_backend.h"
#include "nbd/tls.h"
#include "store/control.h"
#include "uzram/store.h"

extern char** environ;

namespace uzram::cli {
namespace {

constexpr std::string_view kPreInit[] = {"comp_algorithm", "algorithm_params", "recomp_algorithm",
                                         "backing_dev", "compressed_writeback"};

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

void print_examples(const Io& io, const std::string& uri, const std::string& control) {
  fmt::print(io.out,
             "uzram serve: {}\n"
             "  nbdinfo   nbdinfo '{}'\n"
             "  nbdcopy   nbdcopy disk.img '{}'\n"
             "  nbdsh     nbdsh -u '{}' -c 'print(h.get_size())'\n"
             "  qemu-img  qemu-img info '{}'\n"
             "  qemu-io   qemu-io -f raw -c 'write -P 0xab 0 1M' '{}'\n"
             "  nbdfuse   mkdir -p mnt && nbdfuse mnt/disk '{}' &\n"
             "  fio       fio --ioengine=nbd --uri='{}' --name=r --rw=randread --bs=4k\n"
             "  control   uzram ctl --control {} mm_stat\n",
             uri, uri, uri, uri, uri, uri, uri, uri, control);
  std::fflush(io.out);
}

}  // namespace

int run_serve(const ServeOptions& o, const Io& io) noexcept {
  std::vector<std::pair<std::string, std::string>> before, after;
  const auto names = Store::attr_names();
  for (const std::string& a : o.attrs) {
    const std::size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) return usage_error(io, "serve: -o expects attr=value, got '" + a + "'");
    std::string attr = a.substr(0, eq), value = a.substr(eq + 1);
    if (attr == "disksize") return usage_error(io, "serve: -o disksize: use --size");
    if (std::find(names.begin(), names.end(), attr) == names.end()) {
      return usage_error(io, "serve: -o " + attr + ": no such attribute");
    }
    const bool pre = std::find(std::begin(kPreInit), std::end(kPreInit), attr) != std::end(kPreInit);
    (pre ? before : after).emplace_back(std::move(attr), std::move(value));
  }
  auto size = parse_size(o.size);
  if (!size || *size == 0) return usage_error(io, "serve: --size: invalid size '" + o.size + "'");
  if (!o.port.empty() && o.socket.size()) return usage_error(io, "serve: -U and --port exclude each other");

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
    auto t = nbd::TlsContext::create({o.tls_psk, o.tls_certificates}, &m);
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
  std::mutex log_mu;
  if (o.verbose) {
    so.log = [&](const std::string& m) {
      std::lock_guard l(log_mu);
      fmt::print(io.err, "uzram serve: {}\n", m);
    };
  }
  nbd::StoreBackend backend(store);
  auto server = nbd::Server::start(backend, so, &msg);
  if (!server) {
    report(io, "serve", server.error(), msg);
    if (!tmpdir.empty()) ::rmdir(tmpdir.c_str());
    return kExitFailed;
  }
  const std::string uri = (*server)->uri();

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
    if (o.verbose) fmt::print(io.err, "uzram serve: {}: shutting down\n", strsignal(sig));
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

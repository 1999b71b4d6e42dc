// cli/serve.cc - `uzram serve`: creates and configures zram0 (-o attributes before or after
// disksize as the kernel requires) in a store registry (more stores come with `uzram ctl
// hot_add`), serves them over NBD (the export name picks the store) and on a control
// socket, optionally metrics over HTTP, and runs until SIGINT/SIGTERM or, in captive mode
// (--run), until the command exits.
#include "cli/serve.h"

#include <fmt/format.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <cstdlib>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "cli/log_sink.h"
#include "cli/metrics.h"
#include "cli/notify.h"
#include "cli/serve_setup.h"
#include "cli/swap.h"
#include "control/control.h"
#include "nbd/exports.h"
#include "nbd/server.h"
#include "nbd/store_backend.h"
#include "nbd/tls.h"
#include "util/errno_text.h"
#include "util/text_drop.h"
#include "uzram/memory.h"
#include "uzram/store.h"
#include "uzram/store_registry.h"

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

bool make_tls(const ServeOptions& o, const ServeSetup& setup, const Io& io,
              std::unique_ptr<nbd::TlsContext>* tls) {
  if (setup.tls_mode == "off") return true;
  std::string m;
  auto t = nbd::TlsContext::create({o.tls_psk, o.tls_certificates, o.tls_verify_peer}, &m);
  if (!t) {
    report(io, "serve", t.error(), m);
    return false;
  }
  *tls = std::move(*t);
  return true;
}

// zram0, the store the options configure: the registry's first (hot_add).
std::shared_ptr<Store> create_first_store(StoreRegistry& registry, const Io& io) {
  std::string msg;
  auto n = registry.hot_add(&msg);
  if (!n) {
    report(io, "serve", n.error(), msg);
    return nullptr;
  }
  return registry.find(*n);
}

// --algo, the before-init -o settings, disksize, then the rest.
bool configure_store(Store& store, const ServeOptions& o, const ServeSetup& setup, const Io& io) {
  if (!o.algo.empty() && !apply(store, "comp_algorithm", o.algo, io)) return false;
  for (const auto& [a, v] : setup.before) {
    if (!apply(store, a, v, io)) return false;
  }
  if (!apply(store, "disksize", std::to_string(setup.size), io)) return false;
  for (const auto& [a, v] : setup.after) {
    if (!apply(store, a, v, io)) return false;
  }
  return true;
}

void harden_process() {
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
}

// SIGINT, SIGTERM, SIGCHLD and SIGHUP, taken synchronously by this thread (sigwaitinfo):
// blocked before any thread starts, the old mask restored on destruction.
class SignalMask {
 public:
  SignalMask() noexcept {
    sigemptyset(&set_);
    for (int sig : {SIGINT, SIGTERM, SIGCHLD, SIGHUP}) sigaddset(&set_, sig);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SignalMask() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  SignalMask(const SignalMask&) = delete;
  SignalMask& operator=(const SignalMask&) = delete;
  const sigset_t& set() const noexcept { return set_; }

 private:
  sigset_t set_, old_;
};

// -v: every store's log (its policy's decisions) on the sink while this lives, each line
// prefixed with the store's name; stores added later too (StoreRegistry::set_log_hook).
class StoreLog {
 public:
  StoreLog(StoreRegistry& registry, LogSink* sink) noexcept : registry_(registry) {
    if (sink) registry_.set_log_hook([sink](std::string_view m) { sink->write(m); });
  }
  ~StoreLog() { registry_.set_log_hook(nullptr); }  // before the sink goes
  StoreLog(const StoreLog&) = delete;
  StoreLog& operator=(const StoreLog&) = delete;

 private:
  StoreRegistry& registry_;
};

// -U -: a private temporary directory for the socket, removed on destruction.
struct TempSocketDir {
  std::string dir;
  ~TempSocketDir() {
    if (!dir.empty()) ::rmdir(dir.c_str());
  }
};

// The NBD server's options; for -U - the socket goes in a new temporary directory.
bool server_options(const ServeOptions& o, const ServeSetup& setup, nbd::TlsContext* tls,
                    const Io& io, TempSocketDir* tmp, nbd::ServerOptions* so) {
  so->port = o.port;
  so->bind = o.bind;
  so->force_insecure = o.force_insecure;
  so->handshake_timeout = setup.handshake_timeout;
  so->send_timeout = setup.send_timeout;
  so->session.workers = std::max(1u, o.threads);
  so->tls.context = tls;
  so->tls.required = setup.tls_mode == "require";
  if (o.swap) swap_server_options(so);
  if (o.socket != "-") {
    so->unix_path = o.socket.empty() ? default_socket() : o.socket;
    return true;
  }
  char tmpl[] = "/tmp/uzram-nbd-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    report(io, "serve", {errno, std::generic_category()},
           std::string("mkdtemp: ") + errno_text(errno));
    return false;
  }
  tmp->dir = tmpl;
  so->unix_path = tmp->dir + "/nbd.socket";
  return true;
}

// Who can reach the disk without authenticating, said on the log.
void warn_exposure(const ServeOptions& o, const ServeSetup& setup, const nbd::TlsContext* tls,
                   const nbd::Server& server, LogSink& sink) {
  if (tls && tls->certificates_unused()) {
    sink.write(
        "warning: --tls-certificates is not used: with --tls-psk, certificate key exchanges would "
        "let "
        "clients without a key in; add --tls-verify-peer to accept verified client certificates "
        "too");
  }
  const bool authenticated = tls && setup.tls_mode == "require" && tls->authenticates();
  if (!authenticated && server.tcp_loopback()) {
    sink.write(
        "warning: TCP on a loopback address without TLS authentication: every local user can read "
        "and write this disk (use a Unix socket, or --tls=require with --tls-psk)");
  }
  if (!authenticated && server.tcp_network()) {
    sink.write("warning: --force-insecure: every host that can reach " + o.bind +
               " can read and write this disk");
  }
}

// A Unix socket's send buffer below what the server asks for (connection.cc), said once.
void warn_send_buffer(const nbd::Server& server, LogSink& sink) {
  if (!server.tcp_loopback() && !server.tcp_network()) {
    const nbd::UnixSendBuffer b = nbd::probe_unix_send_buffer();
    if (b.got > 0 && b.got < b.wanted) {
      sink.write("warning: Unix connections get a " + std::to_string(b.got >> 10) +
                 " KiB send buffer, not " + std::to_string(b.wanted >> 10) +
                 " KiB (net.core.wmem_max; more needs CAP_NET_ADMIN): reads of large requests "
                 "wait on the client and use fewer CPUs (docs/uzram-serve.md#protocol)");
    }
  }
}

// Captive mode: runs CMD under /bin/sh with $uri (and $metrics with --metrics) set and
// default signal handling; -1 and a report when it cannot be started. The child gets its
// own environment: setenv here would race the server's threads reading theirs.
pid_t spawn_captive(const std::string& cmd, const std::string& uri, const std::string& metrics,
                    const Io& io) {
  std::vector<std::string> vars;
  for (char** e = environ; *e != nullptr; e++) {
    const std::string_view v(*e);
    if (v.starts_with("uri=") || v.starts_with("metrics=")) continue;
    vars.emplace_back(v);
  }
  vars.push_back("uri=" + uri);
  if (!metrics.empty()) vars.push_back("metrics=" + metrics);
  std::vector<char*> envp;
  envp.reserve(vars.size() + 1);
  for (std::string& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty, deflt;
  sigemptyset(&empty);
  sigemptyset(&deflt);
  for (int sig : {SIGINT, SIGTERM, SIGCHLD, SIGHUP, SIGPIPE}) sigaddset(&deflt, sig);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &deflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  pid_t child = -1;
  const int rc =
      ::posix_spawn(&child, "/bin/sh", nullptr, &attr, const_cast<char**>(argv), envp.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    report(io, "serve", {rc, std::generic_category()},
           std::string("--run: /bin/sh: ") + errno_text(rc));
    return -1;
  }
  return child;
}

int exit_status(int ws) { return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws); }

// The NBD server's request and reply buffers, as the `nbd_buffers` line of the memory
// breakdown (uzram/memory.h). Unregistered before the server goes (declared after it).
MemorySourceHandle count_nbd_buffers(const nbd::Server& server) {
  auto h = add_memory_source([&server](std::vector<MemoryLine>* out) {
    out->push_back({"nbd_buffers", server.buffer_bytes()});
  });
  return h ? std::move(h).value() : MemorySourceHandle();  // no memory: the line is missing
}

// --metrics: the HTTP endpoint (cli/metrics.h), started after the NBD server it reports.
bool start_metrics(const ServeSetup& setup, StoreRegistry& registry, const nbd::Server& server,
                   const Io& io, std::unique_ptr<MetricsServer>* out) {
  if (setup.metrics.port.empty()) return true;
  std::string msg;
  auto m = MetricsServer::start(setup.metrics, registry, &server, &msg);
  if (!m) {
    report(io, "serve", m.error(), "--metrics " + msg);
    return false;
  }
  *out = std::move(*m);
  return true;
}

// Waits for SIGINT or SIGTERM, or for the captive command to exit; returns the exit status
// (the command's, in captive mode: on a signal it is terminated first). SIGHUP stops
// nothing: the store holds its users' only copy, and there is nothing to reload (the
// configuration is the command line and the control socket); it is logged, and told to
// the service manager as a reload.
int wait_for_end(const SignalMask& mask, pid_t child, bool verbose, LogSink& sink) {
  for (;;) {
    siginfo_t info{};
    const int sig = ::sigwaitinfo(&mask.set(), &info);
    if (sig < 0) continue;
    if (sig == SIGCHLD) {
      int ws = 0;
      if (child < 0 || ::waitpid(child, &ws, WNOHANG) != child) continue;
      return exit_status(ws);
    }
    if (sig == SIGHUP) {
      notify_reloading();
      sink.write("SIGHUP: nothing to reload (change attributes with uzram ctl); still serving");
      notify_ready("serving");
      continue;
    }
    if (verbose) sink.write(std::string(sigdescr_np(sig)) + ": shutting down");
    if (child <= 0) return kExitOk;
    ::kill(child, SIGTERM);  // captive: the command goes first, and its status is ours
    int ws = 0;
    while (::waitpid(child, &ws, 0) < 0 && errno == EINTR) {
    }
    return exit_status(ws);
  }
}

// Ready to serve: the mappings of code and read-only data that only startup touched go
// (util/text_drop.h; docs/uzram-serve.md, "Memory"). Not under --swap: its server must
// not fault. -v logs what it gave back.
void drop_startup_mappings(bool verbose, LogSink& sink) {
  const auto r = drop_startup_text();
  if (!verbose) return;
  if (!r) {
    sink.write("startup text: not dropped: " + r.error().message());
    return;
  }
  sink.write(fmt::format(
      "startup text: {} ranges of {} objects dropped, file mappings' RSS "
      "{:.1f} -> {:.1f} MiB (still in the page cache)",
      r->ranges, r->objects, r->file_rss_before / 1048576.0, r->file_rss_after / 1048576.0));
}

}  // namespace

int run_serve(const ServeOptions& o, const Io& io) noexcept {
  ServeSetup setup;
  if (const int rc = parse_serve_options(o, io, &setup); rc != kExitOk) return rc;
  std::unique_ptr<nbd::TlsContext> tls;
  if (!make_tls(o, setup, io, &tls)) return kExitFailed;
  notify_prepare();  // libsystemd mapped now, under systemd: before --swap budgets and locks
  if (o.swap && (!swap_precheck(swap_budget(o, setup), setup.size, io) || !swap_prepare(io))) {
    return kExitFailed;  // before any thread starts
  }
  StoreOptions store_options;
  store_options.swap = o.swap;            // every store, zram0 and those hot_add creates
  StoreRegistry registry(store_options);  // declared first: outlives every server of its stores
  LogSink sink(io.err);
  const StoreLog store_log(registry, o.verbose ? &sink : nullptr);  // policy decisions
  const std::shared_ptr<Store> store = create_first_store(registry, io);
  if (!store) return kExitFailed;
  harden_process();
  const SignalMask mask;  // before any thread starts (a swap store's start at disksize)
  if (!configure_store(*store, o, setup, io)) return kExitFailed;

  const std::string control_path = o.control.empty() ? default_control_socket() : o.control;
  std::string msg;
  auto control = ControlServer::start(control_path, ControlTargets(registry), &msg);
  if (!control) {
    report(io, "serve", control.error(), "control socket " + msg);
    return kExitFailed;
  }
  TempSocketDir tmp;  // declared before the server: removed after it stops
  nbd::ServerOptions so;
  if (!server_options(o, setup, tls.get(), io, &tmp, &so)) return kExitFailed;
  if (o.verbose) so.log = [&sink](std::string_view m) { sink.write(m); };
  nbd::StoreExports exports(registry);  // the export name picks the store
  auto server = nbd::Server::start(exports, so, &msg);
  if (!server) {
    report(io, "serve", server.error(), msg);
    return kExitFailed;
  }
  warn_exposure(o, setup, tls.get(), **server, sink);
  warn_send_buffer(**server, sink);
  const MemorySourceHandle buffers = count_nbd_buffers(**server);
  std::unique_ptr<MetricsServer> metrics;
  if (!start_metrics(setup, registry, **server, io, &metrics)) return kExitFailed;
  // --swap locks once every thread and library is there (libmicrohttpd is loaded by
  // --metrics), before any client is told the server is ready.
  if (o.swap && !swap_lock(swap_budget(o, setup), io, sink)) return kExitFailed;
  if (!o.swap) drop_startup_mappings(o.verbose, sink);

  pid_t child = -1;
  if (!o.run.empty()) {
    child = spawn_captive(o.run, (*server)->uri(), metrics ? metrics->url() : std::string(), io);
    if (child < 0) return kExitFailed;
  } else {
    print_examples(io, (*server)->uri(), control_path);
    if (metrics) {
      std::fprintf(io.out, "  metrics   curl -s %s\n", metrics->url().c_str());
      std::fflush(io.out);
    }
  }
  notify_ready("serving " + (*server)->uri());
  const int status = wait_for_end(mask, child, o.verbose, sink);
  notify_stopping();
  if (metrics) metrics->stop();
  (*server)->stop();
  (*control)->stop();
  return status;
}

}  // namespace uzram::cli

// cli/app.cc - parses the `uzram` command line (CLI11) and dispatches to a subcommand. The
// only place exceptions are allowed (B6): CLI11 throws, run() catches.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "cli/cli.h"
#include "cli/columns.h"
#include "cli/serve.h"
#include "control/control.h"

#ifndef UZRAM_VERSION
#define UZRAM_VERSION "unknown"
#endif

namespace uzram::cli {
namespace {

constexpr const char* kTryHelp = "Try 'uzram --help' for more information.\n";

int dispatch(int argc, const char* const* argv, const Io& io) {
  CLI::App app{"uzram: userspace zsmalloc + zram. Offline tools and the control-socket client."};
  app.name("uzram");
  app.set_version_flag("-V,--version", "uzram " UZRAM_VERSION);
  app.require_subcommand(1);
  const std::string socket_rule =
      "default: " + default_control_socket() +
      " ($XDG_RUNTIME_DIR/uzram/control.sock, or ./run/uzram/control.sock)";

  LoadOptions load;
  CLI::App* l = app.add_subcommand(
      "load", "Load IMAGE into a fresh in-process store and report what zram would cost for it");
  l->add_option("IMAGE", load.image, "file to load (memory dump, swap image, disk image)")
      ->required();
  l->add_option("-a,--algo", load.algo,
                "compression algorithm: lz4, lz4hc, zstd, deflate, lzo, lzo-rle");
  l->add_option("-s,--size", load.size,
                "disksize (K/M/G/T suffixes); default: the image size rounded up to 4 KiB");
  l->add_option("-o,--attr", load.attrs,
                "attr=value: write a store attribute (before disksize if the kernel requires)")
      ->allow_extra_args(false);
  l->add_option("--then", load.then,
                "'attr [value]' written after loading (bare attr: value 1), e.g. compact")
      ->allow_extra_args(false);
  l->add_option("--unit-size", load.unit_sizes,
                "compression unit(s): 4K, 16K, 32K or 64K; several (4K,32K) load the image once "
                "per size and compare them");
  l->add_flag("-J,--json", load.json, "print one JSON object");
  l->add_option("-j,--jobs", load.jobs, "loader threads (default 1)")->check(CLI::Range(1u, 1024u));

  CtlOptions ctl;
  CLI::App* c =
      app.add_subcommand("ctl", "Read (no VALUE) or write an attribute of a running store");
  c->add_option("--control", ctl.control, "control socket; " + socket_rule);
  c->add_option("--store,-d,--device", ctl.device,
                "store on that socket, e.g. zram1 (default: zram0); zram-control: hot_add, "
                "hot_remove");
  c->add_option("ATTR", ctl.attr,
                "attribute, as in /sys/block/zramN/; hot_add (prints the new store's number) "
                "and hot_remove N act on the server's zram-control")
      ->required();
  c->add_option("VALUE", ctl.value, "value to write (words are joined with spaces)");

  StatusOptions st;
  CLI::App* s = app.add_subcommand(
      "status", "zramctl-style table of the stores reachable through control sockets");
  s->add_option("--control", st.control,
                "control socket (repeatable); default: every *.sock in " + default_control_dir())
      ->allow_extra_args(false);
  CLI::Option* out =
      s->add_option("-o,--output", st.output, "columns to print (+LIST adds to the defaults)");
  s->add_flag("--output-all", st.output_all, "print all columns")->excludes(out);
  s->add_flag("-b,--bytes", st.bytes, "print sizes in bytes, not in human-readable format");
  s->add_flag("-n,--noheadings", st.noheadings, "don't print headings");
  CLI::Option* raw = s->add_flag("--raw", st.raw, "use the raw output format");
  s->add_flag("-J,--json", st.json, "use the JSON output format")->excludes(raw);
  s->add_option("-w,--watch", st.watch,
                "refresh every SECONDS (0.1 to 86400) with read/write/compaction/writeback "
                "rates, until interrupted; colour only on a terminal (NO_COLOR disables it)");
  s->footer(columns_help());

  ServeOptions sv;
  CLI::App* v = app.add_subcommand(
      "serve",
      "Serve a fresh store over NBD (and its control socket) until signalled or --run exits");
  v->add_option("-U,--unix", sv.socket,
                "NBD Unix socket (mode 0600; '-': a temporary one); default: " +
                    default_control_dir() + "/nbd.socket");
  v->add_option("--control", sv.control, "control socket; " + socket_rule);
  v->add_option("-s,--size", sv.size, "disksize (K/M/G/T suffixes; default 1G)");
  v->add_option("-a,--algo", sv.algo, "compression algorithm (default lz4)");
  v->add_option("-o,--attr", sv.attrs,
                "attr=value: write a store attribute (before disksize if the kernel requires)")
      ->allow_extra_args(false);
  v->add_option("--policy", sv.policy,
                "tiering policy: off, chromeos or 'custom KEY=VALUE ...' (-o policy=VALUE)");
  v->add_option("--run", sv.run,
                "captive mode: run CMD with /bin/sh, $uri set; exit with its status");
  v->add_option("-p,--port", sv.port,
                "listen on TCP PORT (0-65535; 0: any free port) instead of a Unix socket");
  v->add_option("--bind", sv.bind,
                "TCP address (default 127.0.0.1; others need TLS that authenticates clients, or "
                "--force-insecure)");
  v->add_flag("--force-insecure", sv.force_insecure,
              "allow a non-loopback --bind without TLS authentication");
  v->add_option(
      "--tls", sv.tls,
      "off, on (STARTTLS offered) or require; default: require when credentials are given");
  v->add_option("--tls-psk", sv.tls_psk,
                "TLS pre-shared keys file (psktool format: username:hexkey lines)");
  v->add_option("--tls-certificates", sv.tls_certificates,
                "TLS X.509 directory (server-cert.pem, server-key.pem)");
  v->add_flag(
      "--tls-verify-peer", sv.tls_verify_peer,
      "require client certificates signed by DIR/ca-cert.pem (with --tls-certificates DIR)");
  v->add_option("--handshake-timeout", sv.handshake_timeout,
                "seconds a client has for the whole handshake, TLS included (default 10)");
  v->add_option(
      "--send-timeout", sv.send_timeout,
      "seconds a reply may make no progress before its connection is closed (default 30)");
  v->add_option("-t,--threads", sv.threads, "worker threads per connection (default 4)")
      ->check(CLI::Range(1u, 256u));
  v->add_option("--metrics", sv.metrics,
                "serve OpenMetrics at http://[ADDR:]PORT/metrics (ADDR default 127.0.0.1; "
                "port 0: any free port; --run: $metrics holds the URL)");
  v->add_flag("-v,--verbose", sv.verbose, "log connections and protocol errors on stderr");
  v->add_flag("--swap", sv.swap,
              "serve swap safely: lock the server in memory (mlockall), mark it an I/O flusher, "
              "preallocate every buffer; needs -o mem_limit=SIZE");
  bool foreground = false;  // accepted for nbdkit compatibility; serve never daemonises
  v->add_flag("-f,--foreground", foreground,
              "compatibility: uzram serve always runs in the foreground");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    fmt::print(io.out, "{}", app.help());
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    fmt::print(io.out, "{}", app.help("", CLI::AppFormatMode::All));
    return kExitOk;
  } catch (const CLI::CallForVersion& e) {
    fmt::print(io.out, "{}\n", e.what());
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    fmt::print(io.err, "uzram: {}\n{}", e.what(), kTryHelp);
    return kExitUsage;
  }
  if (l->parsed()) return run_load(load, io);
  if (c->parsed()) return run_ctl(ctl, io);
  if (v->parsed()) {
    if (v->count("--port") > 0 && sv.port.empty())
      return usage_error(io, "serve: --port: empty port number");
    if (v->count("--metrics") > 0 && sv.metrics.empty())
      return usage_error(io, "serve: --metrics: empty address");
    for (const char* o : {"--handshake-timeout", "--send-timeout"}) {
      if (v->count(o) > 0 && v->get_option(o)->as<std::string>().empty()) {
        return usage_error(io, std::string("serve: ") + o + ": empty value");
      }
    }
    return run_serve(sv, io);
  }
  return run_status(st, io);
}

}  // namespace

int usage_error(const Io& io, const std::string& message) {
  fmt::print(io.err, "uzram: {}\n{}", message, kTryHelp);
  return kExitUsage;
}

void report(const Io& io, const char* sub, std::error_code ec, const std::string& message) {
  // fwrite, not fmt::print: a closed stderr must not throw (fmt::print does on EPIPE).
  const std::string line =
      fmt::format("uzram {}: {}\n", sub, message.empty() ? ec.message() : message);
  (void)std::fwrite(line.data(), 1, line.size(), io.err);
}

int run(int argc, const char* const* argv, const Io& io) noexcept {
  try {
    return dispatch(argc, argv, io);
  } catch (const std::exception& e) {  // allocation failure, fmt errors: not usage errors
    std::fprintf(io.err, "uzram: %s\n", e.what());
    return kExitFailed;
  }
}

}  // namespace uzram::cli

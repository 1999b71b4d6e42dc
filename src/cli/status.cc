// cli/status.cc - `uzram status`: the zramctl-style table of every initialised store reachable
// through control sockets (--control, repeatable; default every *.sock in the default
// directory). Stale sockets found by the default scan are skipped silently; an explicit
// --control that cannot be reached is reported and gives exit status 3. With --watch
// SECONDS it refreshes the table every SECONDS, with the read, write, compaction and
// writeback rates of the last interval, until interrupted; colour only on a terminal.
#include <fmt/format.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <thread>

#include "cli/cli.h"
#include "cli/columns.h"
#include "control/control.h"

namespace uzram::cli {
namespace {

constexpr int kStatusTimeoutMs = 5000;

// Parses INFO's "key value" lines.
StoreRow parse_info(std::string_view payload) {
  StoreRow r;
  while (!payload.empty()) {
    const std::size_t nl = std::min(payload.find('\n'), payload.size());
    const std::string_view line = payload.substr(0, nl);
    payload.remove_prefix(std::min(nl + 1, payload.size()));
    const std::size_t sp = line.find(' ');
    if (sp == std::string_view::npos) continue;
    const std::string_view k = line.substr(0, sp), v = line.substr(sp + 1);
    std::uint64_t n = 0;
    std::from_chars(v.data(), v.data() + v.size(), n);
    if (k == "name")
      r.name = std::string(v);
    else if (k == "algorithm")
      r.algorithm = std::string(v);
    else if (k == "initstate")
      r.initialized = n != 0;
    else if (k == "disksize")
      r.disksize = n;
    else if (k == "unit_size")
      r.unit_size = n;
    else if (k == "streams")
      r.streams = static_cast<unsigned>(n);
    else if (k == "orig_data_size")
      r.mm.orig_data_size = n;
    else if (k == "compr_data_size")
      r.mm.compr_data_size = n;
    else if (k == "mem_used_total")
      r.mm.mem_used_total = n;
    else if (k == "mem_limit")
      r.mm.mem_limit = n;
    else if (k == "mem_used_max")
      r.mm.mem_used_max = n;
    else if (k == "same_pages")
      r.mm.same_pages = n;
    else if (k == "pages_compacted")
      r.mm.pages_compacted = n;
    else if (k == "huge_pages")
      r.mm.huge_pages = n;
    else if (k == "huge_pages_since")
      r.mm.huge_pages_since = n;
    else if (k == "zspages")
      r.zspages = n;
    else if (k == "objs_allocated")
      r.objs_allocated = n;
    else if (k == "objs_used")
      r.objs_used = n;
    else if (k == "users")
      r.users = n;
    else if (k == "blocks_read")
      r.io.blocks_read = n;
    else if (k == "blocks_written")
      r.io.blocks_written = n;
    else if (k == "bd_writes")
      r.bd_writes = n;
    else if (k == "mem_pool_frames")
      r.mem.pool_frames = n;
    else if (k == "mem_pool_idle_frames")
      r.mem.pool_idle_frames = n;
    else if (k == "mem_pool_metadata")
      r.mem.pool_metadata = n;
    else if (k == "mem_slot_table")
      r.mem.slot_table = n;
    else if (k == "mem_streams")
      r.mem.streams = n;
  }
  return r;
}

std::vector<std::string> default_sockets() {
  std::vector<std::string> r;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(default_control_dir(), ec)) {
    if (e.path().extension() == ".sock" && e.is_socket(ec)) r.push_back(e.path().string());
  }
  std::sort(r.begin(), r.end());
  return r;
}

// Appends the initialised stores behind `path`. False when the socket cannot be used.
bool collect(const std::string& path, std::vector<StoreRow>* rows, std::string* msg,
             std::vector<std::string>* keys = nullptr) {
  auto c = ControlClient::connect(path, msg, kStatusTimeoutMs);
  if (!c) return false;
  auto names = c->list(msg);
  if (!names) return false;
  for (const std::string& name : *names) {
    if (!c->use(name, msg)) return false;
    auto info = c->call("INFO", msg);
    if (!info) return false;
    StoreRow row = parse_info(*info);
    if (!row.initialized) continue;
    if (keys) keys->push_back(path + "\n" + row.name);
    rows->push_back(std::move(row));
  }
  return true;
}

// One snapshot: the rows of every socket, keyed "socket\nname" (for the rates).
struct Snapshot {
  std::vector<StoreRow> rows;
  std::vector<std::string> keys;
  std::chrono::steady_clock::time_point at;
  int status = kExitOk;
};

Snapshot take(const StatusOptions& o, const Io& io, bool quiet) {
  Snapshot snap;
  const bool explicit_sockets = !o.control.empty();
  const std::vector<std::string> sockets = explicit_sockets ? o.control : default_sockets();
  for (const std::string& path : sockets) {
    std::string msg;
    if (!collect(path, &snap.rows, &msg, &snap.keys) && explicit_sockets) {
      if (!quiet) report(io, "status", {}, msg.empty() ? path + ": unusable control socket" : msg);
      snap.status = kExitUnreachable;
    }
  }
  snap.at = std::chrono::steady_clock::now();
  return snap;
}

// The rates of `now` against `before` (same socket and store), in MB/s.
void add_rates(Snapshot* now, const Snapshot& before) {
  const double dt = std::chrono::duration<double>(now->at - before.at).count();
  if (dt <= 0) return;
  std::map<std::string, const StoreRow*> prev;
  for (std::size_t i = 0; i < before.rows.size(); i++) prev[before.keys[i]] = &before.rows[i];
  const auto rate = [dt](std::uint64_t a, std::uint64_t b, std::uint64_t unit) {
    return b >= a ? static_cast<double>(b - a) * static_cast<double>(unit) / dt / 1e6
                  : __builtin_nan("");  // a counter went back (reset): no rate
  };
  for (std::size_t i = 0; i < now->rows.size(); i++) {
    auto it = prev.find(now->keys[i]);
    if (it == prev.end()) continue;
    const StoreRow& p = *it->second;
    StoreRow& r = now->rows[i];
    r.read_rate = rate(p.io.blocks_read, r.io.blocks_read, kBlockSize);
    r.write_rate = rate(p.io.blocks_written, r.io.blocks_written, kBlockSize);
    r.compact_rate = rate(p.mm.pages_compacted, r.mm.pages_compacted, kBlockSize);
    r.wb_rate = rate(p.bd_writes, r.bd_writes, kBlockSize);
  }
}

volatile sig_atomic_t g_interrupted = 0;
void on_interrupt(int) { g_interrupted = 1; }

bool colour_wanted(std::FILE* out) {
  // getenv: nothing in uzram writes its environment (serve gives --run its own).
  // no-color.org: any non-empty value
  const char* no = std::getenv("NO_COLOR");  // NOLINT(concurrency-mt-unsafe)
  const char* term = std::getenv("TERM");    // NOLINT(concurrency-mt-unsafe)
  return ::isatty(::fileno(out)) && !(no && *no) && !(term && std::string_view(term) == "dumb");
}

// --watch: refreshes until SIGINT/SIGTERM (exit 0) or an unwritable output.
int watch(const StatusOptions& o, std::vector<std::size_t> cols, RenderOptions ro, const Io& io,
          double interval) {
  if (o.output.empty() && !o.output_all) {  // the defaults, then the rates
    std::string ignored;
    (void)parse_columns("+READ-MB/S,WRITE-MB/S,COMPACT-MB/S,WB-MB/S", &cols, &ignored);
  }
  const bool tty = ::isatty(::fileno(io.out));
  ro.colour = !ro.raw && !ro.json && colour_wanted(io.out);
  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = on_interrupt;
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  g_interrupted = 0;
  Snapshot before = take(o, io, false);
  const auto period = std::chrono::duration<double>(interval);
  for (bool first = true; !g_interrupted; first = false) {
    Snapshot now = first ? before : take(o, io, true);
    if (!first) add_rates(&now, before);
    std::string text = tty ? "\033[H\033[2J" : (first ? "" : "\n");  // clear, as watch(1)
    char stamp[64];
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    std::strftime(stamp, sizeof stamp, "%F %T", ::localtime_r(&t, &tm));
    text += fmt::format("Every {:g}s: uzram status    {}\n\n", interval, stamp);
    text += now.rows.empty() ? std::string("(no initialised store reachable)\n")
                             : render(now.rows, cols, ro);
    if (std::fwrite(text.data(), 1, text.size(), io.out) != text.size() || std::fflush(io.out) != 0)
      break;  // the reader went away (`| head`)
    before = std::move(now);
    const auto until = std::chrono::steady_clock::now() + period;
    while (!g_interrupted && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::min<std::chrono::duration<double>>(
          std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return kExitOk;
}

}  // namespace

int run_status(const StatusOptions& o, const Io& io) noexcept {
  std::vector<std::size_t> cols = default_columns();
  if (o.output_all) cols = all_columns();
  std::string error;
  if (!o.output.empty() && !parse_columns(o.output, &cols, &error))
    return usage_error(io, "status: " + error);
  double interval = 0;
  if (!o.watch.empty()) {
    char* end = nullptr;
    interval = std::strtod(o.watch.c_str(), &end);
    if (o.watch.find_first_not_of("0123456789.") != std::string::npos ||
        end != o.watch.c_str() + o.watch.size() || !(interval >= 0.1) || interval > 86400) {
      return usage_error(io, "status: --watch: want seconds, 0.1 to 86400, got '" + o.watch + "'");
    }
  }
  RenderOptions ro;
  ro.bytes = o.bytes;
  ro.noheadings = o.noheadings;
  ro.raw = o.raw;
  ro.json = o.json;
  if (interval > 0) return watch(o, cols, ro, io, interval);
  Snapshot snap = take(o, io, false);
  if (snap.rows.empty()) return snap.status;  // zramctl prints nothing when no device is set up
  const std::string text = render(snap.rows, cols, ro);
  std::fwrite(text.data(), 1, text.size(), io.out);
  return snap.status;
}

}  // namespace uzram::cli

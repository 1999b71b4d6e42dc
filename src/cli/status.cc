// cli/status.cc - `uzram status`: the zramctl-style table of every initialised store reachable
// through control sockets (--control, repeatable; default every *.sock in the default
// directory). Stale sockets found by the default scan are skipped silently; an explicit
// --control that cannot be reached is reported and gives exit status 3.
#include <algorithm>
#include <charconv>
#include <filesystem>

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
    if (k == "name") r.name = std::string(v);
    else if (k == "algorithm") r.algorithm = std::string(v);
    else if (k == "initstate") r.initialized = n != 0;
    else if (k == "disksize") r.disksize = n;
    else if (k == "streams") r.streams = static_cast<unsigned>(n);
    else if (k == "orig_data_size") r.mm.orig_data_size = n;
    else if (k == "compr_data_size") r.mm.compr_data_size = n;
    else if (k == "mem_used_total") r.mm.mem_used_total = n;
    else if (k == "mem_limit") r.mm.mem_limit = n;
    else if (k == "mem_used_max") r.mm.mem_used_max = n;
    else if (k == "same_pages") r.mm.same_pages = n;
    else if (k == "pages_compacted") r.mm.pages_compacted = n;
    else if (k == "huge_pages") r.mm.huge_pages = n;
    else if (k == "huge_pages_since") r.mm.huge_pages_since = n;
    else if (k == "zspages") r.zspages = n;
    else if (k == "objs_allocated") r.objs_allocated = n;
    else if (k == "objs_used") r.objs_used = n;
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
bool collect(const std::string& path, std::vector<StoreRow>* rows, std::string* msg) {
  auto c = ControlClient::connect(path, msg, kStatusTimeoutMs);
  if (!c) return false;
  auto names = c->list(msg);
  if (!names) return false;
  for (const std::string& name : *names) {
    if (!c->use(name, msg)) return false;
    auto info = c->call("INFO", msg);
    if (!info) return false;
    StoreRow row = parse_info(*info);
    if (row.initialized) rows->push_back(std::move(row));
  }
  return true;
}

}  // namespace

int run_status(const StatusOptions& o, const Io& io) noexcept {
  std::vector<std::size_t> cols = default_columns();
  if (o.output_all) cols = all_columns();
  std::string error;
  if (!o.output.empty() && !parse_columns(o.output, &cols, &error)) return usage_error(io, "status: " + error);
  const bool explicit_sockets = !o.control.empty();
  const std::vector<std::string> sockets = explicit_sockets ? o.control : default_sockets();
  std::vector<StoreRow> rows;
  int status = kExitOk;
  for (const std::string& path : sockets) {
    std::string msg;
    if (!collect(path, &rows, &msg) && explicit_sockets) {
      report(io, "status", {}, msg.empty() ? path + ": unusable control socket" : msg);
      status = kExitUnreachable;
    }
  }
  if (rows.empty()) return status;  // zramctl prints nothing when no device is set up
  RenderOptions ro;
  ro.bytes = o.bytes;
  ro.noheadings = o.noheadings;
  ro.raw = o.raw;
  ro.json = o.json;
  const std::string text = render(rows, cols, ro);
  std::fwrite(text.data(), 1, text.size(), io.out);
  return status;
}

}  // namespace uzram::cli

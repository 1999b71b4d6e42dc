// cli/metrics.cc - the metrics exposition (metrics.h): the statistics table, the memory
// breakdown and the NBD server's counters, in OpenMetrics 1.0.0 or Prometheus 0.0.4 text.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "cli/metrics.h"
#include "nbd/server.h"
#include "uzram/memory.h"
#include "uzram/store.h"
#include "uzram/store_registry.h"

namespace uzram::cli {
namespace {

enum class Kind { gauge, counter, histogram };

// One field of a statistics attribute, exported per store. `name` is the family name
// (a counter's samples get _total); a unit, when given, ends the name (OpenMetrics).
struct StatField {
  std::string_view attr;  // the attribute holding the field, read with Store::read_attr
  unsigned index;         // its position among the attribute's whitespace-separated numbers
  std::string_view name;
  Kind kind;
  std::string_view unit;
  std::string_view help;
  std::uint64_t divisor = 1;  // the field's value over this is the sample (ms -> seconds)
};

// THE table. A statistics attribute that is added later is exported by adding its rows
// here; stores without the attribute export none of them.
constexpr StatField kStatFields[] = {
    {"initstate", 0, "uzram_initialized", Kind::gauge, "", "1 when the store has a disksize"},
    {"disksize", 0, "uzram_disksize_bytes", Kind::gauge, "bytes", "disksize"},
    {"unit_size", 0, "uzram_unit_size_bytes", Kind::gauge, "bytes",
     "unit_size: the compression unit (4096: 4 KiB blocks)"},
    {"mm_stat", 0, "uzram_orig_data_size_bytes", Kind::gauge, "bytes",
     "mm_stat orig_data_size: uncompressed bytes stored"},
    {"mm_stat", 1, "uzram_compr_data_size_bytes", Kind::gauge, "bytes",
     "mm_stat compr_data_size: compressed bytes stored"},
    {"mm_stat", 2, "uzram_mem_used_total_bytes", Kind::gauge, "bytes",
     "mm_stat mem_used_total: pool memory, fragmentation and metadata included"},
    {"mm_stat", 3, "uzram_mem_limit_bytes", Kind::gauge, "bytes",
     "mm_stat mem_limit: the pool's limit, 0 for none"},
    {"mm_stat", 4, "uzram_mem_used_max_bytes", Kind::gauge, "bytes",
     "mm_stat mem_used_max: high-water mark of mem_used_total"},
    {"mm_stat", 5, "uzram_same_pages", Kind::gauge, "",
     "mm_stat same_pages: same-filled blocks, stored without memory"},
    {"mm_stat", 6, "uzram_pages_compacted", Kind::counter, "",
     "mm_stat pages_compacted: frames freed by compaction"},
    {"mm_stat", 7, "uzram_huge_pages", Kind::gauge, "",
     "mm_stat huge_pages: incompressible blocks stored raw"},
    {"mm_stat", 8, "uzram_huge_pages_since", Kind::counter, "",
     "mm_stat huge_pages_since: raw stores since init"},
    {"io_stat", 0, "uzram_failed_reads", Kind::counter, "", "io_stat failed_reads"},
    {"io_stat", 1, "uzram_failed_writes", Kind::counter, "",
     "io_stat failed_writes (mem_limit, no memory, codec errors)"},
    {"io_stat", 2, "uzram_invalid_io", Kind::counter, "", "io_stat invalid_io (always 0)"},
    {"io_stat", 3, "uzram_notify_free", Kind::counter, "",
     "io_stat notify_free: blocks freed by discard, write-zeroes, free notification"},
    {"unit_stat", 0, "uzram_units", Kind::gauge, "",
     "unit_stat units: unit objects stored (raw ones included)"},
    {"unit_stat", 1, "uzram_unit_whole_reads", Kind::counter, "",
     "unit_stat whole_reads: whole-unit reads (one decompression into the reply)"},
    {"unit_stat", 2, "uzram_unit_partial_reads", Kind::counter, "",
     "unit_stat partial_reads: block reads of a unit's member"},
    {"unit_stat", 3, "uzram_unit_cache_hits", Kind::counter, "",
     "unit_stat cache_hits: partial reads served from a decoded-unit cache"},
    {"unit_stat", 4, "uzram_unit_rmw_writes", Kind::counter, "",
     "unit_stat rmw_writes: partial writes and discards that re-encoded their unit"},
    {"unit_stat", 5, "uzram_unit_split_writes", Kind::counter, "",
     "unit_stat split_writes: partial writes and discards that split their unit"},
    {"unit_stat", 6, "uzram_unit_splits", Kind::counter, "",
     "unit_stat splits: units split into 4 KiB blocks, by any cause"},
    {"bd_stat", 0, "uzram_bd_count_pages", Kind::gauge, "",
     "bd_stat bd_count: 4 KiB blocks on the backing device"},
    {"bd_stat", 1, "uzram_bd_reads_pages", Kind::counter, "",
     "bd_stat bd_reads: 4 KiB blocks read from the backing device"},
    {"bd_stat", 2, "uzram_bd_writes_pages", Kind::counter, "",
     "bd_stat bd_writes: 4 KiB blocks written back"},
    {"policy_stat", 0, "uzram_policy_rounds", Kind::counter, "",
     "policy_stat rounds: time-driven rounds run"},
    {"policy_stat", 1, "uzram_policy_rounds_skipped", Kind::counter, "",
     "policy_stat rounds_skipped: rounds that wrote nothing back"},
    {"policy_stat", 2, "uzram_policy_idle_marked_pages", Kind::counter, "",
     "policy_stat idle_marked: blocks marked idle by rounds"},
    {"policy_stat", 3, "uzram_policy_recompressed_pages", Kind::counter, "",
     "policy_stat recompressed: blocks recompressed into a smaller class"},
    {"policy_stat", 4, "uzram_policy_recompress_saved_bytes", Kind::counter, "bytes",
     "policy_stat recomp_saved: pool bytes recompression saved"},
    {"policy_stat", 5, "uzram_policy_wb_huge_idle_pages", Kind::counter, "",
     "policy_stat wb_huge_idle: blocks written back by rounds' huge_idle passes"},
    {"policy_stat", 6, "uzram_policy_wb_idle_pages", Kind::counter, "",
     "policy_stat wb_idle: blocks written back by rounds' idle passes"},
    {"policy_stat", 7, "uzram_policy_wb_huge_pages", Kind::counter, "",
     "policy_stat wb_huge: blocks written back by rounds' huge passes"},
    {"policy_stat", 8, "uzram_policy_wb_incompressible_pages", Kind::counter, "",
     "policy_stat wb_incompressible: blocks written back by rounds' incompressible passes"},
    {"policy_stat", 9, "uzram_policy_wb_pressure_pages", Kind::counter, "",
     "policy_stat wb_pressure: blocks written back by the memory reaction"},
    {"policy_stat", 10, "uzram_policy_wb_freed_bytes", Kind::counter, "bytes",
     "policy_stat wb_bytes: pool bytes freed by the policy's writebacks"},
    {"policy_stat", 11, "uzram_policy_passes", Kind::counter, "",
     "policy_stat passes: writeback and recompress passes run"},
    {"policy_stat", 12, "uzram_policy_pass_errors", Kind::counter, "",
     "policy_stat pass_errors: passes that failed"},
    {"policy_stat", 13, "uzram_policy_reactions", Kind::counter, "",
     "policy_stat triggers: memory reactions"},
    {"policy_stat", 14, "uzram_policy_waited_writes", Kind::counter, "",
     "policy_stat waited: writes that met mem_limit and waited"},
    {"policy_stat", 15, "uzram_policy_wait_seconds", Kind::counter, "seconds",
     "policy_stat wait_ms: their total wait", 1000},
    {"policy_stat", 16, "uzram_policy_limit_failed_writes", Kind::counter, "",
     "policy_stat limit_failed: writes failed at mem_limit with the reaction on"},
    {"policy_stat", 17, "uzram_policy_idle_age_seconds", Kind::gauge, "seconds",
     "policy_stat idle_age: the last round's idle age"},
};

// Label values, escaped as both formats want (backslash, quote, newline).
std::string escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Exposition {
 public:
  explicit Exposition(MetricsFormat f) : om_(f == MetricsFormat::openmetrics) {}

  void family(std::string_view name, Kind kind, std::string_view unit, std::string_view help) {
    name_ = std::string(name);
    kind_ = kind;
    const std::string shown = kind == Kind::counter && !om_ ? name_ + "_total" : name_;
    const char* type = kind == Kind::gauge     ? "gauge"
                       : kind == Kind::counter ? "counter"
                                               : "histogram";
    out_ += "# TYPE " + shown + " " + type + "\n";
    if (om_ && !unit.empty()) out_ += "# UNIT " + shown + " " + std::string(unit) + "\n";
    out_ += "# HELP " + shown + " " + std::string(help) + "\n";
  }
  // A sample of the current family; suffix "" (gauge), or _total/_bucket/_count/_sum.
  void sample(std::string_view suffix, const std::string& labels, const std::string& value) {
    out_ += name_;
    out_ += suffix;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += " " + value + "\n";
  }
  void value(const std::string& labels, std::uint64_t v) {
    sample(kind_ == Kind::counter ? "_total" : "", labels, std::to_string(v));
  }
  std::string finish() {
    if (om_) out_ += "# EOF\n";
    return std::move(out_);
  }

 private:
  const bool om_;
  std::string out_, name_;
  Kind kind_ = Kind::gauge;
};

std::string seconds(double s) {
  char b[64];
  std::snprintf(b, sizeof b, "%.9g", s);
  return b;
}

// The numbers of an attribute's text ("   4096  1024 ..." -> {4096, 1024, ...}).
std::vector<std::uint64_t> numbers(const std::string& text) {
  std::vector<std::uint64_t> out;
  const char* p = text.c_str();
  for (;;) {
    while (*p == ' ' || *p == '\n' || *p == '\t') p++;
    if (*p < '0' || *p > '9') break;  // the end, or not a number
    char* stop = nullptr;
    out.push_back(std::strtoull(p, &stop, 10));
    p = stop;
  }
  return out;
}

void store_fields(Exposition& x, const std::vector<std::shared_ptr<Store>>& stores) {
  // Each store's attributes, read once: attribute -> numbers (absent: not readable).
  std::vector<std::map<std::string_view, std::vector<std::uint64_t>>> values(stores.size());
  for (std::size_t i = 0; i < stores.size(); i++) {
    for (const StatField& f : kStatFields) {
      if (values[i].count(f.attr)) continue;
      if (auto text = stores[i]->read_attr(f.attr)) values[i][f.attr] = numbers(*text);
    }
  }
  for (const StatField& f : kStatFields) {
    bool any = false;
    for (std::size_t i = 0; i < stores.size(); i++) {
      auto it = values[i].find(f.attr);
      if (it == values[i].end() || f.index >= it->second.size()) continue;
      if (!any) x.family(f.name, f.kind, f.unit, f.help);
      any = true;
      const std::string labels = "store=\"" + escape(stores[i]->name()) + "\"";
      if (f.divisor == 1) {
        x.value(labels, it->second[f.index]);
      } else {
        x.sample(
            f.kind == Kind::counter ? "_total" : "", labels,
            seconds(static_cast<double>(it->second[f.index]) / static_cast<double>(f.divisor)));
      }
    }
  }
  x.family("uzram_users", Kind::gauge, "",
           "open users of the store: NBD connections in transmission");
  for (const auto& s : stores) x.value("store=\"" + escape(s->name()) + "\"", s->users());
  x.family("uzram_read_bytes", Kind::counter, "bytes",
           "4 KiB blocks read from the store, in bytes, since it was created");
  for (const auto& s : stores)
    x.value("store=\"" + escape(s->name()) + "\"", s->io_counts().blocks_read * kBlockSize);
  x.family("uzram_written_bytes", Kind::counter, "bytes",
           "4 KiB blocks written to the store, in bytes, since it was created");
  for (const auto& s : stores)
    x.value("store=\"" + escape(s->name()) + "\"", s->io_counts().blocks_written * kBlockSize);
}

void memory_fields(Exposition& x) {
  auto lines = memory_breakdown();
  if (!lines) return;
  x.family("uzram_store_memory_bytes", Kind::gauge, "bytes",
           "resident memory of a store, by part (the memory attribute's zramN.* lines)");
  for (const MemoryLine& m : *lines) {
    const std::size_t dot = m.name.find('.');
    if (dot == std::string::npos) continue;
    x.value("store=\"" + escape(m.name.substr(0, dot)) + "\",part=\"" +
                escape(m.name.substr(dot + 1)) + "\"",
            m.bytes);
  }
  x.family("uzram_process_memory_bytes", Kind::gauge, "bytes",
           "resident memory of the process outside the stores, by part, and rss (VmRSS)");
  for (const MemoryLine& m : *lines) {
    if (m.name.find('.') == std::string::npos) x.value("part=\"" + escape(m.name) + "\"", m.bytes);
  }
}

void server_fields(Exposition& x, const nbd::Server& server) {
  const nbd::StatsSnapshot s = server.stats();
  x.family("uzram_nbd_connections_accepted", Kind::counter, "", "NBD connections accepted");
  x.value("", s.connections_accepted);
  x.family("uzram_nbd_sessions", Kind::counter, "",
           "NBD connections that entered transmission (NBD_OPT_GO, EXPORT_NAME)");
  x.value("", s.sessions);
  x.family("uzram_nbd_connections", Kind::gauge, "", "NBD connections with a thread now, by state");
  x.value("state=\"negotiating\"", s.negotiating);
  x.value("state=\"transmission\"", s.transmitting);
  const auto per_command = [&](const char* name, const char* unit, const char* help, auto get) {
    x.family(name, Kind::counter, unit, help);
    for (unsigned c = 0; c < nbd::kStatCmds; c++) {
      x.value(std::string("command=\"") + nbd::kStatCmdNames[c] + "\"", get(s.commands[c]));
    }
  };
  per_command("uzram_nbd_requests", "", "NBD requests answered, by command",
              [](const nbd::CommandSnapshot& c) { return c.requests; });
  per_command("uzram_nbd_request_bytes", "bytes",
              "bytes of successful requests: READ/WRITE payloads, TRIM/WRITE_ZEROES ranges",
              [](const nbd::CommandSnapshot& c) { return c.bytes; });
  per_command("uzram_nbd_request_errors", "", "NBD requests answered with an error",
              [](const nbd::CommandSnapshot& c) { return c.errors; });
  x.family("uzram_nbd_request_duration_seconds", Kind::histogram, "seconds",
           "from reading a request to sending its reply, by command");
  for (unsigned c = 0; c < nbd::kStatCmds; c++) {
    const nbd::CommandSnapshot& k = s.commands[c];
    const std::string cmd = std::string("command=\"") + nbd::kStatCmdNames[c] + "\"";
    std::uint64_t cumulative = 0;
    for (unsigned b = 0; b + 1 < nbd::kLatencyBuckets; b++) {  // bucket b ends at 2^(b+1) us
      cumulative += k.buckets[b];
      const double le = static_cast<double>(std::uint64_t{2} << b) * 1e-6;
      x.sample("_bucket", cmd + ",le=\"" + seconds(le) + "\"", std::to_string(cumulative));
    }
    x.sample("_bucket", cmd + ",le=\"+Inf\"", std::to_string(k.requests));
    x.sample("_count", cmd, std::to_string(k.requests));
    x.sample("_sum", cmd, seconds(static_cast<double>(k.latency_ns) * 1e-9));
  }
}

}  // namespace

MetricsFormat negotiate_format(const char* accept) noexcept {
  if (accept == nullptr) return MetricsFormat::openmetrics;
  const std::string_view a(accept);
  if (a.find("application/openmetrics-text") != std::string_view::npos)
    return MetricsFormat::openmetrics;
  if (a.find("text/plain") != std::string_view::npos) return MetricsFormat::prometheus;
  return MetricsFormat::openmetrics;
}

std::string render_metrics(const StoreRegistry& registry, const nbd::Server* server,
                           MetricsFormat format) {
  Exposition x(format);
  store_fields(x, registry.stores());
  memory_fields(x);
  if (server) server_fields(x, *server);
  return x.finish();
}

bool parse_metrics_address(const std::string& text, MetricsAddress* out, std::string* why) {
  MetricsAddress a;
  std::string port = text;
  const std::size_t colon = text.rfind(':');
  if (colon != std::string::npos) {
    std::string host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    if (host.empty()) {
      *why = "empty address in '" + text + "' (give ADDR:PORT or PORT)";
      return false;
    }
    a.host = host;
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) {
    *why = "want [ADDR:]PORT with a port 0-65535 (0: any free port), got '" + text + "'";
    return false;
  }
  a.port = port;
  *out = a;
  return true;
}

}  // namespace uzram::cli

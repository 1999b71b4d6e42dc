// cli/load_report.cc - what `uzram load` prints. Definitions (docs/uzram.md#load):
//   ratio     = orig_data_size / compr_data_size   (what the algorithm achieves)
//   mem_ratio = orig_data_size / mem_used_total    (what the RAM bill achieves; COMP-RATIO)
//   overhead  = (mem_used_total - compr_data_size) / compr_data_size   (the allocator's cost)
//   slot table: 16 bytes per 4 KiB block of disksize, the kernel's zram table entry, which
//   mem_used_total does not include.
#include "cli/load_report.h"

#include <fmt/format.h>

#include <cmath>
#include <utility>

#include "cli/json.h"
#include "uzram/pool.h"

namespace uzram::cli {
namespace {

constexpr std::uint64_t kSlotTableEntryBytes = 16;

double div(std::uint64_t a, std::uint64_t b) {
  return b ? static_cast<double>(a) / static_cast<double>(b) : std::nan("");
}

std::vector<std::pair<const char*, std::uint64_t>> fields(const MmStat& m) {
  return {{"orig_data_size", m.orig_data_size},    {"compr_data_size", m.compr_data_size},
          {"mem_used_total", m.mem_used_total},    {"mem_limit", m.mem_limit},
          {"mem_used_max", m.mem_used_max},        {"same_pages", m.same_pages},
          {"pages_compacted", m.pages_compacted},  {"huge_pages", m.huge_pages},
          {"huge_pages_since", m.huge_pages_since}};
}

std::vector<std::pair<const char*, std::uint64_t>> fields(const UnitStat& u) {
  return {{"units", u.units},
          {"whole_reads", u.whole_reads},
          {"partial_reads", u.partial_reads},
          {"cache_hits", u.cache_hits},
          {"rmw_writes", u.rmw_writes},
          {"split_writes", u.split_writes},
          {"splits", u.splits}};
}

std::string fixed(double v, int decimals, const char* suffix = "") {
  return std::isfinite(v) ? fmt::format("{:.{}f}{}", v, decimals, suffix) : std::string("-");
}

double mb_per_s(const LoadResult& res) {
  return res.seconds > 0 ? static_cast<double>(res.image_bytes) / 1e6 / res.seconds : std::nan("");
}

}  // namespace

StoreRow row_of(const Store& s) {
  StoreRow r;
  r.name = s.name();
  r.initialized = s.initialized();
  r.disksize = s.disksize();
  r.algorithm = s.comp_algorithm();
  r.unit_size = s.unit_size();
  r.streams = s.streams();
  r.mm = s.mm_stat();
  if (const Pool* p = s.pool()) {
    const PoolStats ps = p->stats();
    r.zspages = ps.zspages;
    r.objs_allocated = ps.objs_allocated;
    r.objs_used = ps.objs_used;
  }
  return r;
}

std::string load_report_text(const Store& store, const LoadResult& res) {
  const MmStat m = store.mm_stat();
  const std::uint64_t blocks = (res.image_bytes + kBlockSize - 1) / kBlockSize;
  std::string out;
  out += fmt::format("image       {}: {} bytes, {} blocks of 4 KiB\n", res.image, res.image_bytes,
                     blocks);
  out += fmt::format("algorithm   {}, {} streams, disksize {}\n", store.comp_algorithm(),
                     store.streams(), store.disksize());
  out += fmt::format("unit_size   {} ({})\n", store.unit_size(), human_size(store.unit_size()));
  std::string us = "unit_stat  ";
  for (const auto& [name, v] : fields(store.unit_stat())) us += fmt::format(" {} {}", name, v);
  out += us + "\n";
  auto mm = store.read_attr("mm_stat");
  out += "mm_stat     " + (mm ? *mm : std::string("?\n"));
  for (const auto& [name, v] : fields(m)) {
    const bool bytes = std::string_view(name).find("size") != std::string_view::npos ||
                       std::string_view(name).rfind("mem_", 0) == 0;
    out += bytes ? fmt::format("  {:<17} {:>14}  {}\n", name, v, human_size(v))
                 : fmt::format("  {:<17} {:>14}\n", name, v);
  }
  if (auto bd = store.read_attr("backing_dev"); bd && *bd != "none\n") {
    auto bs = store.read_attr("bd_stat");
    out += "bd_stat     " + (bs ? *bs : std::string("?\n"));
  }
  out += fmt::format(
      "ratio       {} (orig_data_size/compr_data_size), {} (orig_data_size/mem_used_total)\n",
      fixed(div(m.orig_data_size, m.compr_data_size), 2),
      fixed(div(m.orig_data_size, m.mem_used_total), 2));
  out += fmt::format(
      "overhead    {} (mem_used_total - compr_data_size, of compr_data_size)\n",
      fixed(100.0 * div(m.mem_used_total - std::min(m.mem_used_total, m.compr_data_size),
                        m.compr_data_size),
            1, "%"));
  const std::uint64_t table = store.disksize() / kBlockSize * kSlotTableEntryBytes;
  out += fmt::format("slot table  {} bytes ({}; 16 B per block, not in mem_used_total)\n", table,
                     human_size(table));
  out += fmt::format("failed      {} writes\n", res.failed_writes);
  for (const LoadResult::Then& t : res.then)
    out += fmt::format("then        {}: {:.3f} s\n", t.command, t.seconds);
  out += fmt::format("time        {:.3f} s, {} MB/s\n\n", res.seconds, fixed(mb_per_s(res), 1));
  const StoreRow row = row_of(store);
  std::vector<std::size_t> cols;
  std::string ignored;
  (void)parse_columns(
      "NAME,DISKSIZE,DATA,COMPR,ALGORITHM,STREAMS,ZERO-PAGES,TOTAL,MEM-LIMIT,MEM-USED,MIGRATED,"
      "COMP-RATIO",
      &cols, &ignored);
  out += render(std::span(&row, 1), cols, RenderOptions{});
  return out;
}

std::string load_report_json(const Store& store, const LoadResult& res) {
  return json_text(load_report_doc(store, res));
}

Json load_report_doc(const Store& store, const LoadResult& res) {
  const MmStat m = store.mm_stat();
  const IoStat io = store.io_stat();
  const BdStat bd = store.bd_stat();
  Json doc = Json::object();
  doc["image"] = res.image;
  doc["image_bytes"] = res.image_bytes;
  doc["blocks"] = (res.image_bytes + kBlockSize - 1) / kBlockSize;
  doc["disksize"] = store.disksize();
  doc["algorithm"] = store.comp_algorithm();
  doc["streams"] = store.streams();
  doc["unit_size"] = store.unit_size();
  Json& mm = doc["mm_stat"] = Json::object();
  for (const auto& [name, v] : fields(m)) mm[name] = v;
  doc["io_stat"] = {{"failed_reads", io.failed_reads},
                    {"failed_writes", io.failed_writes},
                    {"notify_free", io.notify_free}};
  doc["bd_stat"] = {
      {"bd_count", bd.bd_count}, {"bd_reads", bd.bd_reads}, {"bd_writes", bd.bd_writes}};
  Json& us = doc["unit_stat"] = Json::object();
  for (const auto& [name, v] : fields(store.unit_stat())) us[name] = v;
  doc["ratio"] = fixed_number(div(m.orig_data_size, m.compr_data_size), 4);
  doc["mem_ratio"] = fixed_number(div(m.orig_data_size, m.mem_used_total), 4);
  doc["overhead"] = fixed_number(
      div(m.mem_used_total - std::min(m.mem_used_total, m.compr_data_size), m.compr_data_size), 4);
  doc["slot_table_bytes"] = store.disksize() / kBlockSize * kSlotTableEntryBytes;
  doc["failed_writes"] = res.failed_writes;
  Json& then = doc["then"] = Json::array();
  for (const LoadResult::Then& t : res.then) {
    then.push_back({{"command", t.command}, {"seconds", fixed_number(t.seconds, 6)}});
  }
  doc["seconds"] = fixed_number(res.seconds, 6);
  doc["mb_per_s"] = fixed_number(mb_per_s(res), 1);
  return doc;
}

std::string unit_comparison_text(const std::vector<UnitRun>& runs) {
  std::string out;
  const LoadResult& r0 = runs.front().result;
  out += fmt::format("image       {}: {} bytes, {} blocks of 4 KiB\n", r0.image, r0.image_bytes,
                     (r0.image_bytes + kBlockSize - 1) / kBlockSize);
  out += fmt::format("algorithm   {}, {} streams, disksize {}\n\n", runs.front().algorithm,
                     runs.front().streams, runs.front().disksize);
  out += fmt::format("{:<5} {:>15} {:>15} {:>6} {:>9} {:>8} {:>7} {:>7} {:>8} {:>8}\n", "UNIT",
                     "COMPR", "TOTAL", "RATIO", "MEM-RATIO", "TOTAL-VS", "UNITS", "FAILED",
                     "SECONDS", "MB/S");
  const std::uint64_t base = runs.front().mm.mem_used_total;
  for (const UnitRun& u : runs) {
    const double vs = 100.0 * (div(u.mm.mem_used_total, base) - 1.0);
    out += fmt::format("{:<5} {:>15} {:>15} {:>6} {:>9} {:>8} {:>7} {:>7} {:>8.3f} {:>8}\n",
                       human_size(u.unit_size), u.mm.compr_data_size, u.mm.mem_used_total,
                       fixed(div(u.mm.orig_data_size, u.mm.compr_data_size), 2),
                       fixed(div(u.mm.orig_data_size, u.mm.mem_used_total), 2),
                       &u == &runs.front() ? std::string("-") : fixed(vs, 1, "%"), u.units.units,
                       u.result.failed_writes, u.result.seconds, fixed(mb_per_s(u.result), 1));
  }
  out += fmt::format(
      "\nCOMPR: compr_data_size; TOTAL: mem_used_total (bytes); RATIO: "
      "orig/COMPR; MEM-RATIO: orig/TOTAL;\nTOTAL-VS: TOTAL against the {} "
      "row; UNITS: unit objects stored (unit_stat).\n",
      human_size(runs.front().unit_size));
  return out;
}

std::string unit_comparison_json(const std::vector<UnitRun>& runs) {
  Json doc = Json::object();
  doc["image"] = runs.front().result.image;
  doc["image_bytes"] = runs.front().result.image_bytes;
  Json& list = doc["runs"] = Json::array();
  for (const UnitRun& u : runs) list.push_back(Json::parse(u.json));  // our own output
  return json_text(doc);
}

}  // namespace uzram::cli

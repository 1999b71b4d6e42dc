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
  return {{"orig_data_size", m.orig_data_size}, {"compr_data_size", m.compr_data_size},
          {"mem_used_total", m.mem_used_total}, {"mem_limit", m.mem_limit},
          {"mem_used_max", m.mem_used_max},     {"same_pages", m.same_pages},
          {"pages_compacted", m.pages_compacted}, {"huge_pages", m.huge_pages},
          {"huge_pages_since", m.huge_pages_since}};
}

std::string fixed(double v, int decimals, const char* suffix = "") {
  return std::isfinite(v) ? fmt::format("{:.{}f}{}", v, decimals, suffix) : std::string("-");
}

}  // namespace

StoreRow row_of(const Store& s) {
  StoreRow r;
  r.name = s.name();
  r.initialized = s.initialized();
  r.disksize = s.disksize();
  r.algorithm = s.comp_algorithm();
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
  out += fmt::format("image       {}: {} bytes, {} blocks of 4 KiB\n", res.image, res.image_bytes, blocks);
  out += fmt::format("algorithm   {}, {} streams, disksize {}\n", store.comp_algorithm(), store.streams(),
                     store.disksize());
  auto mm = store.read_attr("mm_stat");
  out += "mm_stat     " + (mm ? *mm : std::string("?\n"));
  for (const auto& [name, v] : fields(m)) {
    const bool bytes = std::string_view(name).find("size") != std::string_view::npos ||
                       std::string_view(name).rfind("mem_", 0) == 0;
    out += bytes ? fmt::format("  {:<17} {:>14}  {}\n", name, v, human_size(v)) : fmt::format("  {:<17} {:>14}\n", name, v);
  }
  if (auto bd = store.read_attr("backing_dev"); bd && *bd != "none\n") {
    auto bs = store.read_attr("bd_stat");
    out += "bd_stat     " + (bs ? *bs : std::string("?\n"));
  }
  out += fmt::format("ratio       {} (orig_data_size/compr_data_size), {} (orig_data_size/mem_used_total)\n",
                     fixed(div(m.orig_data_size, m.compr_data_size), 2), fixed(div(m.orig_data_size, m.mem_used_total), 2));
  out += fmt::format("overhead    {} (mem_used_total - compr_data_size, of compr_data_size)\n",
                     fixed(100.0 * div(m.mem_used_total - std::min(m.mem_used_total, m.compr_data_size), m.compr_data_size), 1, "%"));
  const std::uint64_t table = store.disksize() / kBlockSize * kSlotTableEntryBytes;
  out += fmt::format("slot table  {} bytes ({}; 16 B per block, not in mem_used_total)\n", table, human_size(table));
  out += fmt::format("failed      {} writes\n", res.failed_writes);
  for (const LoadResult::Then& t : res.then) out += fmt::format("then        {}: {:.3f} s\n", t.command, t.seconds);
  out += fmt::format("time        {:.3f} s, {} MB/s\n\n", res.seconds,
                     fixed(res.seconds > 0 ? static_cast<double>(res.image_bytes) / 1e6 / res.seconds : std::nan(""), 1));
  const StoreRow row = row_of(store);
  std::vector<std::size_t> cols;
  std::string ignored;
  (void)parse_columns("NAME,DISKSIZE,DATA,COMPR,ALGORITHM,STREAMS,ZERO-PAGES,TOTAL,MEM-LIMIT,MEM-USED,MIGRATED,COMP-RATIO",
                      &cols, &ignored);
  out += render(std::span(&row, 1), cols, RenderOptions{});
  return out;
}

std::string load_report_json(const Store& store, const LoadResult& res) {
  const MmStat m = store.mm_stat();
  const IoStat io = store.io_stat();
  JsonWriter w;
  w.begin_object();
  w.field("image", res.image).field("image_bytes", res.image_bytes);
  w.field("blocks", (res.image_bytes + kBlockSize - 1) / kBlockSize);
  w.field("disksize", store.disksize()).field("algorithm", store.comp_algorithm());
  w.field("streams", store.streams());
  w.key("mm_stat").begin_object();
  for (const auto& [name, v] : fields(m)) w.field(name, v);
  w.end_object();
  w.key("io_stat").begin_object();
  w.field("failed_reads", io.failed_reads).field("failed_writes", io.failed_writes).field("notify_free", io.notify_free);
  w.end_object();
  const BdStat bd = store.bd_stat();
  w.key("bd_stat").begin_object();
  w.field("bd_count", bd.bd_count).field("bd_reads", bd.bd_reads).field("bd_writes", bd.bd_writes);
  w.end_object();
  w.key("ratio").value(div(m.orig_data_size, m.compr_data_size), 4);
  w.key("mem_ratio").value(div(m.orig_data_size, m.mem_used_total), 4);
  w.key("overhead").value(div(m.mem_used_total - std::min(m.mem_used_total, m.compr_data_size), m.compr_data_size), 4);
  w.field("slot_table_bytes", store.disksize() / kBlockSize * kSlotTableEntryBytes);
  w.field("failed_writes", res.failed_writes);
  w.key("then").begin_array();
  for (const LoadResult::Then& t : res.then) {
    w.begin_object().field("command", t.command).key("seconds").value(t.seconds, 6);
    w.end_object();
  }
  w.end_array();
  w.key("seconds").value(res.seconds, 6);
  w.key("mb_per_s").value(res.seconds > 0 ? static_cast<double>(res.image_bytes) / 1e6 / res.seconds : std::nan(""), 1);
  w.end_object();
  return w.str();
}

}  // namespace uzram::cli

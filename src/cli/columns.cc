// cli/columns.cc - the column table and the three renderers (aligned table, --raw, --json).
#include "cli/columns.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <utility>

#include "cli/json.h"

namespace uzram::cli {
namespace {

ColumnValue num(std::uint64_t n) {
  ColumnValue v;
  v.number = n;
  return v;
}

ColumnValue frac(double f) {
  ColumnValue v;
  v.fraction = f;
  return v;
}

ColumnValue text(std::string t) {
  ColumnValue v;
  v.text = std::move(t);
  return v;
}

double ratio(std::uint64_t a, std::uint64_t b) {
  return b ? static_cast<double>(a) / static_cast<double>(b) : __builtin_nan("");
}

using R = const StoreRow&;
using K = ColumnKind;

// THE table. zramctl's columns keep its names and meanings; ours follow.
constexpr Column kColumns[] = {
    {"NAME", K::text, "store name", [](R r) { return text(r.name); }},
    {"DISKSIZE", K::bytes, "limit on the uncompressed amount of data",
     [](R r) { return num(r.disksize); }},
    {"DATA", K::bytes, "uncompressed size of stored data (orig_data_size)",
     [](R r) { return num(r.mm.orig_data_size); }},
    {"COMPR", K::bytes, "compressed size of stored data (compr_data_size)",
     [](R r) { return num(r.mm.compr_data_size); }},
    {"ALGORITHM", K::text, "the selected compression algorithm",
     [](R r) { return text(r.algorithm); }},
    {"UNIT", K::bytes, "compression unit (unit_size): 4K, or 16K-64K multi-page units",
     [](R r) { return num(r.unit_size); }},
    {"STREAMS", K::count, "number of concurrent compress operations",
     [](R r) { return num(r.streams); }},
    {"ZERO-PAGES", K::count, "same-filled pages, no memory allocated (same_pages)",
     [](R r) { return num(r.mm.same_pages); }},
    {"TOTAL", K::bytes,
     "all memory including allocator fragmentation and metadata overhead (mem_used_total)",
     [](R r) { return num(r.mm.mem_used_total); }},
    {"MEM-LIMIT", K::bytes, "memory limit used to store compressed data (mem_limit)",
     [](R r) { return num(r.mm.mem_limit); }},
    {"MEM-USED", K::bytes, "high-water mark of memory used (mem_used_max)",
     [](R r) { return num(r.mm.mem_used_max); }},
    {"MIGRATED", K::count, "pages freed by compaction (pages_compacted)",
     [](R r) { return num(r.mm.pages_compacted); }},
    {"COMP-RATIO", K::ratio, "compression ratio: DATA/TOTAL",
     [](R r) { return frac(ratio(r.mm.orig_data_size, r.mm.mem_used_total)); }},
    {"HUGE-PAGES", K::count, "incompressible pages stored raw (huge_pages)",
     [](R r) { return num(r.mm.huge_pages); }},
    {"ZSPAGES", K::count, "zspages in the pool", [](R r) { return num(r.zspages); }},
    {"FRAG%", K::percent, "unused object slots in the pool's zspages (what compaction can recover)",
     [](R r) {
       const std::uint64_t used = std::min(r.objs_used, r.objs_allocated);
       return frac(r.objs_allocated ? 100.0 * ratio(r.objs_allocated - used, r.objs_allocated)
                                    : 0.0);
     }},
    {"USERS", K::count, "open NBD connections (the kernel's open count)",
     [](R r) { return num(r.users); }},
    {"RESIDENT", K::bytes, "resident memory of the store: the sum of the five below",
     [](R r) { return num(r.mem.total()); }},
    {"POOL-FRAMES", K::bytes, "resident pool frames in zspages (memory: pool_frames)",
     [](R r) { return num(r.mem.pool_frames); }},
    {"POOL-IDLE", K::bytes, "resident pool frames held idle (memory: pool_idle_frames)",
     [](R r) { return num(r.mem.pool_idle_frames); }},
    {"POOL-META", K::bytes, "the pool's tables (memory: pool_metadata)",
     [](R r) { return num(r.mem.pool_metadata); }},
    {"SLOT-TABLE", K::bytes, "written pages of the slot table (memory: slot_table)",
     [](R r) { return num(r.mem.slot_table); }},
    {"STREAMS-MEM", K::bytes, "compression streams and their codecs (memory: streams)",
     [](R r) { return num(r.mem.streams); }},
    {"READ-MB/S", K::rate, "blocks read, MB/s over the last --watch interval",
     [](R r) { return frac(r.read_rate); }},
    {"WRITE-MB/S", K::rate, "blocks written, MB/s over the last --watch interval",
     [](R r) { return frac(r.write_rate); }},
    {"COMPACT-MB/S", K::rate, "frames freed by compaction, MB/s over the last --watch interval",
     [](R r) { return frac(r.compact_rate); }},
    {"WB-MB/S", K::rate, "blocks written back, MB/s over the last --watch interval",
     [](R r) { return frac(r.wb_rate); }},
};
constexpr std::size_t kNumColumns = std::size(kColumns);
// zramctl's defaults, in its order (EXPORT joins them with `uzram serve`).
// UNIT (uzram's) after ALGORITHM.
constexpr const char* kDefaultColumns[] = {"NAME", "ALGORITHM", "UNIT",  "DISKSIZE",
                                           "DATA", "COMPR",     "TOTAL", "STREAMS"};

std::string upper(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return r;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::size_t find_column(std::string_view name) {
  for (std::size_t i = 0; i < kNumColumns; i++) {
    if (name == kColumns[i].name) return i;
  }
  return kNumColumns;
}

std::string cell_text(const StoreRow& r, std::size_t col, bool bytes) {
  const ColumnValue v = kColumns[col].get(r);
  switch (kColumns[col].kind) {
    case ColumnKind::text: return v.text;
    case ColumnKind::bytes: return bytes ? std::to_string(v.number) : human_size(v.number);
    case ColumnKind::count: return std::to_string(v.number);
    case ColumnKind::ratio:
    case ColumnKind::rate:
      return v.fraction == v.fraction ? fmt::format("{:.2f}", v.fraction) : "-";
    case ColumnKind::percent: return fmt::format("{:.1f}", v.fraction);
  }
  return {};
}

// --raw: util-linux style escaping, so a cell is always one word.
std::string raw_escape(std::string_view s) {
  std::string r;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == '\\' || c == 0x7f) {
      r += fmt::format("\\x{:02x}", c);
    } else {
      r += ch;
    }
  }
  return r.empty() ? "-" : r;
}

std::string render_json(std::span<const StoreRow> rows, std::span<const std::size_t> cols,
                        bool bytes) {
  Json stores = Json::array();
  for (const StoreRow& r : rows) {
    Json store = Json::object();
    for (const std::size_t c : cols) {
      const ColumnValue v = kColumns[c].get(r);
      Json& cell = store[lower(kColumns[c].name)];
      switch (kColumns[c].kind) {
        case ColumnKind::text: cell = v.text; break;
        case ColumnKind::bytes: cell = bytes ? Json(v.number) : Json(human_size(v.number)); break;
        case ColumnKind::count: cell = v.number; break;
        case ColumnKind::ratio:
        case ColumnKind::rate: cell = fixed_number(v.fraction, 2); break;
        case ColumnKind::percent: cell = fixed_number(v.fraction, 1); break;
      }
    }
    stores.push_back(std::move(store));
  }
  Json doc = Json::object();
  doc["stores"] = std::move(stores);
  return json_text(doc);
}

}  // namespace

std::span<const Column> columns() { return kColumns; }

std::vector<std::size_t> default_columns() {
  std::vector<std::size_t> r;
  for (const char* name : kDefaultColumns) r.push_back(find_column(name));
  return r;
}

std::vector<std::size_t> all_columns() {
  std::vector<std::size_t> r;
  for (std::size_t i = 0; i < kNumColumns; i++) r.push_back(i);
  return r;
}

bool parse_columns(std::string_view list, std::vector<std::size_t>* out, std::string* error) {
  std::vector<std::size_t> cols;
  if (!list.empty() && list.front() == '+') {
    cols = default_columns();
    list.remove_prefix(1);
  }
  while (true) {
    const std::size_t comma = std::min(list.find(','), list.size());
    const std::string name = upper(list.substr(0, comma));
    const std::size_t col = find_column(name);
    if (col == kNumColumns) {
      *error = name.empty() ? "empty column name in '" + std::string(list) + "'"
                            : "unknown column: " + name;
      return false;
    }
    cols.push_back(col);
    if (comma == list.size()) break;
    list.remove_prefix(comma + 1);
  }
  *out = std::move(cols);
  return true;
}

std::string columns_help() {
  std::string r = "Available output columns:\n";
  for (const Column& c : kColumns) r += fmt::format("  {:>12}  {}\n", c.name, c.help);
  return r;
}

std::string human_size(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{}B", bytes);
  static constexpr char kUnits[] = "KMGTPE";
  unsigned exp = 0;
  double v = static_cast<double>(bytes) / 1024.0;
  while (v >= 1024.0 && exp < 5) {
    v /= 1024.0;
    exp++;
  }
  double tenths = std::nearbyint(v * 10.0);
  if (tenths >= 10240.0 && exp < 5) {  // 1023.96K rounds up to 1M
    exp++;
    tenths = std::nearbyint(v * 10.0 / 1024.0);
  }
  const auto t = static_cast<std::uint64_t>(tenths);
  return t % 10 ? fmt::format("{}.{}{}", t / 10, t % 10, kUnits[exp])
                : fmt::format("{}{}", t / 10, kUnits[exp]);
}

std::string render(std::span<const StoreRow> rows, std::span<const std::size_t> cols,
                   const RenderOptions& o) {
  if (o.json) return render_json(rows, cols, o.bytes);
  std::vector<std::vector<std::string>> cells;
  if (!o.noheadings) {
    cells.emplace_back();
    for (const std::size_t c : cols) cells.back().push_back(kColumns[c].name);
  }
  for (const StoreRow& r : rows) {
    cells.emplace_back();
    for (const std::size_t c : cols) cells.back().push_back(cell_text(r, c, o.bytes));
  }
  std::string out;
  if (o.raw) {
    for (const auto& line : cells) {
      for (std::size_t i = 0; i < line.size(); i++) out += (i ? " " : "") + raw_escape(line[i]);
      out += '\n';
    }
    return out;
  }
  std::vector<std::size_t> width(cols.size(), 0);
  for (const auto& line : cells) {
    for (std::size_t i = 0; i < line.size(); i++) width[i] = std::max(width[i], line[i].size());
  }
  for (std::size_t n = 0; n < cells.size(); n++) {
    const auto& line = cells[n];
    const bool header = n == 0 && !o.noheadings;
    std::string l;
    for (std::size_t i = 0; i < line.size(); i++) {
      if (i) l += ' ';
      const std::size_t pad = width[i] - line[i].size();
      const bool text_kind = kColumns[cols[i]].kind == ColumnKind::text;
      const bool last = i + 1 == line.size();
      // Colour wraps the cell, not its padding, so the columns stay aligned.
      const char* on =
          !o.colour ? nullptr
          : header  ? "\033[1m"
          : kColumns[cols[i]].kind == ColumnKind::rate && line[i] != "-" && line[i] != "0.00"
              ? "\033[32m"
              : nullptr;
      const std::string cell = on ? on + line[i] + "\033[0m" : line[i];
      if (text_kind) {
        l += cell + (last ? "" : std::string(pad, ' '));
      } else {
        l += std::string(pad, ' ') + cell;
      }
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + '\n';
  }
  return out;
}

}  // namespace uzram::cli

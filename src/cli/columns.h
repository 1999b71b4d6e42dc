// cli/columns.h - the zramctl-style table of `uzram status` and of `uzram load`'s summary
// (layer 5, cli). ONE column table (columns.cc) drives rendering, -o parsing and the
// COLUMNS section of `uzram status --help`.
#ifndef UZRAM_CLI_COLUMNS_H_
#define UZRAM_CLI_COLUMNS_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "uzram/store.h"

namespace uzram::cli {

// One store as the table sees it (from the control protocol's INFO, or from a Store).
struct StoreRow {
  std::string name;
  bool initialized = false;
  std::uint64_t disksize = 0;
  std::string algorithm;
  std::uint64_t unit_size = 4096;  // compression unit (a server without units: 4 KiB)
  unsigned streams = 0;
  MmStat mm;
  std::uint64_t zspages = 0;
  std::uint64_t objs_allocated = 0;
  std::uint64_t objs_used = 0;
  std::uint64_t users = 0;  // open NBD connections
  StoreMemory mem;          // where its resident memory is
  IoCounts io;              // blocks read and written (cumulative)
  std::uint64_t bd_writes = 0;
  // Rates in MB/s (10^6 bytes) over the last `uzram status --watch` interval; NaN (shown
  // "-") without one.
  double read_rate = __builtin_nan("");
  double write_rate = __builtin_nan("");
  double compact_rate = __builtin_nan("");  // frames freed by compaction
  double wb_rate = __builtin_nan("");       // blocks written back
};

// What a cell holds: text (left-aligned), a size in bytes (human-readable unless -b),
// a count, or a fraction (COMP-RATIO, FRAG%, the MB/s rates; "-" / null when undefined).
enum class ColumnKind { text, bytes, count, ratio, percent, rate };

// A cell's value: `number` for bytes and counts, `fraction` for ratio and percent (NaN when
// undefined), `text` for text.
struct ColumnValue {
  std::uint64_t number = 0;
  double fraction = 0;
  std::string text;
};

struct Column {
  const char* name;  // header, and (lowercased) the JSON key
  ColumnKind kind;
  const char* help;
  ColumnValue (*get)(const StoreRow& row);
};

// The table, in --output-all order.
[[nodiscard]] std::span<const Column> columns();
[[nodiscard]] std::vector<std::size_t> default_columns();
[[nodiscard]] std::vector<std::size_t> all_columns();

// Parses an -o list: comma-separated names, case-insensitive; a leading '+' appends to
// the defaults. Returns false and fills *error ("unknown column: FOO") on a bad list.
[[nodiscard]] bool parse_columns(std::string_view list, std::vector<std::size_t>* out,
                                 std::string* error);

// "Available output columns:" and one line per column, for --help.
[[nodiscard]] std::string columns_help();

struct RenderOptions {
  bool bytes = false;       // -b: sizes in bytes
  bool noheadings = false;  // -n
  bool raw = false;         // --raw: no alignment, one space between cells, escaped
  bool json = false;        // -J: {"stores": [{...}]}
  bool colour = false;      // ANSI colour: bold header, active rates (aligned table only)
};

// The whole table (or JSON document) for `rows`, with a final newline.
[[nodiscard]] std::string render(std::span<const StoreRow> rows, std::span<const std::size_t> cols,
                                 const RenderOptions& options);

// IEC size with one-letter suffix, one decimal where it matters: 0B, 512B, 4K, 1.5M, 64G.
[[nodiscard]] std::string human_size(std::uint64_t bytes);

}  // namespace uzram::cli

#endif  // UZRAM_CLI_COLUMNS_H_

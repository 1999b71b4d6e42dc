// store/attr_table.h - the attribute table (layer 3): ONE row per /sys/block/zramN
// attribute, with its mode, its place around init, and the functions that parse, write and
// read it. Store::write_attr / read_attr dispatch through it (attrs.cc), and the public
// queries (Store::attr_names, attr_info, attr_readable, attr_writable) read it: what an
// attribute is, is said here and nowhere else.
//
// A write goes: look the name up (ENOENT-like invalid_argument), refuse a read-only one
// (not_supported), trim the value, give a trigger's empty value "1"; for an attribute that
// acts on stored data (kNeedsInit) take init_lock_ shared and refuse an uninitialised
// device; then parse (text -> AttrArg, or the refusal with its message) and write. Every
// other writer takes the locks it needs itself, after parsing.
#ifndef UZRAM_STORE_ATTR_TABLE_H_
#define UZRAM_STORE_ATTR_TABLE_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/codec.h"
#include "store/policy_spec.h"
#include "uzram/result.h"

namespace uzram {

class StoreImpl;

// ---- What the parsers make of a value -------------------------------------------------

// algorithm_params: "priority=N algo=NAME level=N dict=PATH deflate.winbits=N".
struct AlgoParams {
  int priority = -1;  // -1: the priority of algo=, else 0
  std::string algo;
  CodecSpec spec;  // name filled in by the writer (from the priority)
};

// recomp_algorithm: "algo=NAME [priority=N]".
struct RecompAlgo {
  std::string algo;
  int priority = 1;
};

// writeback: "type=MODE", "page_index=N", "page_indexes=LO-HI" (and bare MODE words).
struct WbCommand {
  unsigned mode = 0;  // kPpIdle | kPpHuge | kPpIncompressible (pp_pass.h); 0: every slot
  bool has_mode = false;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // inclusive; empty = device
  // Internal callers only (the policy, pp_run.h): at most this many blocks are written
  // (largest first); 0: no cap. The attribute's grammar has no such key.
  std::uint64_t max_pages = 0;
};

// recompress: "type=MODE max_pages=N threshold=N algo=NAME priority=N", resolved against
// the configured algorithms.
struct RecompCommand {
  unsigned mode = 0;            // kPpIdle | kPpHuge; 0: every allocated slot
  std::uint64_t max_pages = 0;  // 0: no budget
  std::uint64_t threshold = 0;  // 0: none
  unsigned prio_lo = 1;         // priorities tried: [max(prio_lo, object's + 1), prio_max)
  unsigned prio_max = 0;
  bool tries_highest = false;  // the highest configured priority is among those tried
};

// A parsed value: the parser of a row fills the field its writer reads (none for compact,
// whose value is not read, and mem_used_max, whose value is only checked).
struct AttrArg {
  std::uint64_t number = 0;  // sizes, counts, 0/1 switches, idle's age (0: "all"), percents
  std::string text;          // an algorithm (comp_algorithm), a path (backing_dev)
  AlgoParams params;         // algorithm_params
  RecompAlgo recomp;         // recomp_algorithm
  WbCommand writeback;       // writeback
  RecompCommand recompress;  // recompress
  PolicySpec policy;         // policy
};

// ---- The table ---------------------------------------------------------------------------

enum class AttrMode { ro, wo, rw };

namespace attrf {
// Configuration the kernel takes only before disksize: written once initialised, busy.
// Front ends (uzram serve -o, uzram load -o) write these before disksize.
inline constexpr unsigned kBeforeInit = 1;
// A write-only action whose value only says "do it": an empty value means "1" (compact).
// reset is not one: it discards every stored block, and needs its value as in the kernel.
inline constexpr unsigned kTrigger = 2;
// Acts on the stored blocks: refused before disksize ("device not initialised"). Parsed
// and written with init_lock_ held shared (the parser may read the configuration).
inline constexpr unsigned kNeedsInit = 4;
}  // namespace attrf

// Parses the (trimmed) text into *out, or refuses it with a message naming the attribute.
// Reads the store only with kNeedsInit (then under init_lock_ shared).
using AttrParseFn = Result<void>(const StoreImpl& s, std::string_view text, AttrArg* out,
                                 std::string* msg) noexcept;
// Applies a parsed value. kNeedsInit: called with init_lock_ shared held and the device
// initialised; otherwise with no lock held (it takes what it needs).
using AttrWriteFn = Result<void>(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept;
// The attribute's text, in the kernel's exact format; takes the locks it needs.
using AttrReadFn = Result<std::string>(const StoreImpl& s, std::string* msg) noexcept;

struct AttrDef {
  std::string_view name;
  AttrMode mode;
  unsigned flags;      // attrf::
  AttrParseFn* parse;  // null: the value is not read (compact)
  AttrWriteFn* write;  // null exactly when not writable
  AttrReadFn* read;    // null exactly when not readable
};

// Every attribute, in the order attr_names() lists them.
std::span<const AttrDef> attr_table() noexcept;
// The row of `name`; null when there is none.
const AttrDef* find_attr(std::string_view name) noexcept;

// ---- Rows: the functions the table names, by the file that holds them -------------------

namespace attr {
// attr_config.cc: the configuration attributes.
AttrParseFn parse_disksize, parse_reset, parse_mem_limit, parse_mem_used_max, parse_comp_algorithm,
    parse_algorithm_params, parse_recomp_algorithm, parse_compressed_writeback,
    parse_writeback_limit, parse_writeback_limit_enable, parse_writeback_batch_size,
    parse_backing_timeout_ms, parse_unit_size, parse_unit_policy;
AttrWriteFn write_disksize, write_reset, write_compact, write_mem_limit, write_mem_used_max,
    write_comp_algorithm, write_algorithm_params, write_recomp_algorithm,
    write_compressed_writeback, write_writeback_limit, write_writeback_limit_enable,
    write_writeback_batch_size, write_backing_timeout_ms, write_unit_size, write_unit_policy;
// idle.cc, backing_dev.cc, writeback.cc, wb_compact.cc, recompress.cc, policy_attr.cc: the
// ones with a file of their own.
AttrParseFn parse_idle, parse_backing_dev, parse_writeback, parse_writeback_compact,
    parse_recompress, parse_policy;
AttrWriteFn write_idle, write_backing_dev, write_writeback, write_writeback_compact,
    write_recompress, write_policy;
AttrReadFn read_policy, read_policy_stat;
// attr_read.cc: the readers.
AttrReadFn read_disksize, read_initstate, read_comp_algorithm, read_recomp_algorithm, read_io_stat,
    read_mm_stat, read_debug_stat, read_backing_dev, read_writeback_limit,
    read_writeback_limit_enable, read_bd_stat, read_compressed_writeback, read_block_state,
    read_classes, read_writeback_batch_size, read_backing_timeout_ms, read_unit_size,
    read_unit_stat, read_unit_policy;
// memory.cc: the process's memory breakdown (uzram/memory.h).
AttrReadFn read_memory;
}  // namespace attr

}  // namespace uzram

#endif  // UZRAM_STORE_ATTR_TABLE_H_

// store/attrs.cc - THE attribute table (attr_table.h) and the dispatch of Store::write_attr
// and read_attr through it: the name lookup, the mode, trigger and init rules, and the
// public queries. The parsers, writers and readers are in attr_config.cc, attr_read.cc
// and the post-processing files the table names.
#include <mutex>

#include "store/attr_table.h"
#include "store/fail.h"
#include "store/kv.h"
#include "store/store_impl.h"

namespace uzram::attr {
namespace {

using M = AttrMode;
constexpr unsigned kBefore = attrf::kBeforeInit, kTrigger = attrf::kTrigger,
                   kNeedsInit = attrf::kNeedsInit;

// name, mode, flags, parse, write, read. The kernel's order (attr_names() lists it).
constexpr AttrDef kAttrs[] = {
    {"disksize", M::rw, 0, parse_disksize, write_disksize, read_disksize},
    {"initstate", M::ro, 0, nullptr, nullptr, read_initstate},
    {"reset", M::wo, 0, parse_reset, write_reset, nullptr},
    {"compact", M::wo, kTrigger | kNeedsInit, nullptr, write_compact, nullptr},
    {"mem_limit", M::wo, 0, parse_mem_limit, write_mem_limit, nullptr},
    {"mem_used_max", M::wo, 0, parse_mem_used_max, write_mem_used_max, nullptr},
    {"idle", M::wo, kNeedsInit, parse_idle, write_idle, nullptr},
    {"comp_algorithm", M::rw, kBefore, parse_comp_algorithm, write_comp_algorithm,
     read_comp_algorithm},
    {"algorithm_params", M::wo, kBefore, parse_algorithm_params, write_algorithm_params, nullptr},
    {"io_stat", M::ro, 0, nullptr, nullptr, read_io_stat},
    {"mm_stat", M::ro, 0, nullptr, nullptr, read_mm_stat},
    {"debug_stat", M::ro, 0, nullptr, nullptr, read_debug_stat},
    {"backing_dev", M::rw, kBefore, parse_backing_dev, write_backing_dev, read_backing_dev},
    {"writeback", M::wo, kNeedsInit, parse_writeback, write_writeback, nullptr},
    {"writeback_limit", M::rw, 0, parse_writeback_limit, write_writeback_limit,
     read_writeback_limit},
    {"writeback_limit_enable", M::rw, 0, parse_writeback_limit_enable, write_writeback_limit_enable,
     read_writeback_limit_enable},
    {"writeback_batch_size", M::rw, 0, parse_writeback_batch_size, write_writeback_batch_size,
     read_writeback_batch_size},
    {"bd_stat", M::ro, 0, nullptr, nullptr, read_bd_stat},
    {"compressed_writeback", M::rw, kBefore, parse_compressed_writeback, write_compressed_writeback,
     read_compressed_writeback},
    // uzram's: packed-writeback space reclamation, the remote tier's request deadline.
    {"writeback_compact", M::wo, kTrigger | kNeedsInit, parse_writeback_compact,
     write_writeback_compact, nullptr},
    {"backing_timeout_ms", M::rw, 0, parse_backing_timeout_ms, write_backing_timeout_ms,
     read_backing_timeout_ms},
    {"recomp_algorithm", M::rw, kBefore, parse_recomp_algorithm, write_recomp_algorithm,
     read_recomp_algorithm},
    {"recompress", M::wo, kNeedsInit, parse_recompress, write_recompress, nullptr},
    {"block_state", M::ro, 0, nullptr, nullptr, read_block_state},
    {"classes", M::ro, 0, nullptr, nullptr, read_classes},
    // uzram: the tiering policy engine (docs/store-postprocessing.md#policy).
    {"policy", M::rw, 0, parse_policy, write_policy, read_policy},
    {"policy_stat", M::ro, 0, nullptr, nullptr, read_policy_stat},
    {"memory", M::ro, 0, nullptr, nullptr, read_memory},
    // uzram: multi-page compression units (docs/units.md).
    {"unit_size", M::rw, kBefore, parse_unit_size, write_unit_size, read_unit_size},
    {"unit_stat", M::ro, 0, nullptr, nullptr, read_unit_stat},
    {"unit_policy", M::rw, 0, parse_unit_policy, write_unit_policy, read_unit_policy},
};

// The rows' flags agree with their modes: a trigger only write-only, a before-init
// attribute never one that needs init. (That a row has a writer exactly when writable and
// a reader exactly when readable is AttrTableTest.RowsAreConsistent: GCC will not compare
// the address of a function declared in another file with null in a constant expression.)
constexpr bool rows_consistent() {
  for (const AttrDef& a : kAttrs) {
    if ((a.flags & kTrigger) && a.mode != M::wo) return false;
    if ((a.flags & kBefore) && (a.flags & kNeedsInit)) return false;
  }
  return true;
}
static_assert(rows_consistent(), "an attribute row contradicts itself");

}  // namespace
}  // namespace uzram::attr

namespace uzram {

using attr::kAttrs;
constexpr unsigned kBefore = attrf::kBeforeInit, kTrigger = attrf::kTrigger,
                   kNeedsInit = attrf::kNeedsInit;

std::span<const AttrDef> attr_table() noexcept { return kAttrs; }

const AttrDef* find_attr(std::string_view name) noexcept {
  for (const AttrDef& a : kAttrs) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

// ---- Public queries --------------------------------------------------------------------

std::vector<std::string> Store::attr_names() noexcept {
  std::vector<std::string> out;
  for (const AttrDef& a : kAttrs) out.emplace_back(a.name);
  return out;
}

std::optional<AttrInfo> Store::attr_info(std::string_view name) noexcept {
  const AttrDef* a = find_attr(name);
  if (!a) return std::nullopt;
  AttrInfo info;
  info.readable = a->read != nullptr;
  info.writable = a->write != nullptr;
  info.before_init = (a->flags & kBefore) != 0;
  info.trigger = (a->flags & kTrigger) != 0;
  return info;
}

bool Store::attr_readable(std::string_view name) noexcept {
  const AttrDef* a = find_attr(name);
  return a && a->read;
}

bool Store::attr_writable(std::string_view name) noexcept {
  const AttrDef* a = find_attr(name);
  return a && a->write;
}

// ---- Dispatch ----------------------------------------------------------------------------

namespace {

Result<void> parse_and_write(StoreImpl& s, const AttrDef& a, std::string_view value,
                             std::string* msg) noexcept {
  AttrArg arg;
  if (a.parse) {
    if (auto r = a.parse(s, value, &arg, msg); !r) return r;
  }
  return a.write(s, arg, msg);
}

}  // namespace

Result<void> StoreImpl::do_write_attr(std::string_view name, std::string_view value,
                                      std::string* msg) noexcept {
  const AttrDef* a = find_attr(name);
  const std::string n(name);
  if (!a) return fail(msg, Errc::invalid_argument, n + ": no such attribute");
  if (!a->write) return fail(msg, Errc::not_supported, n + ": read-only attribute");
  if (retired_.load(std::memory_order_relaxed)) return retired_error(n, msg);
  value = trim(value);
  if (value.empty() && (a->flags & kTrigger)) value = "1";  // `echo > compact`
  if (!(a->flags & kNeedsInit)) return parse_and_write(*this, *a, value, msg);
  ReaderLock l(init_lock_);
  if (!disksize_) {
    return fail(msg, Errc::invalid_argument, n + ": device not initialised (set disksize first)");
  }
  return parse_and_write(*this, *a, value, msg);
}

Result<std::string> StoreImpl::do_read_attr(std::string_view name,
                                            std::string* msg) const noexcept {
  const AttrDef* a = find_attr(name);
  const std::string n(name);
  if (!a) return fail(msg, Errc::invalid_argument, n + ": no such attribute").error();
  if (!a->read) return fail(msg, Errc::not_supported, n + ": write-only attribute").error();
  return a->read(*this, msg);
}

}  // namespace uzram

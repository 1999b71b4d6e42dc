// store/attr_read.cc - the attributes' readers (rows of the attribute table, attr_table.h):
// the kernel's exact text formats, trailing newline included, and uzram's debugfs-like
// block_state and classes.
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "store/attr_table.h"
#include "store/fail.h"
#include "store/store_impl.h"

namespace uzram::attr {
namespace {

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// The algorithm list with the selected one in brackets: comp_algorithm shows priority 0,
// recomp_algorithm each configured priority 1..3 as "#N: ...".
std::string algorithms(const StoreImpl& s, unsigned from, unsigned to) {
  ReaderLock l(s.init_lock_);
  std::string out;
  for (unsigned p = from; p < to; p++) {
    if (p > 0 && s.comp_[p].name.empty()) continue;
    if (p > 0) out += fmt("#%u: ", p);
    for (const std::string& c : codec_names()) {
      out += (c == s.comp_[p].name ? "[" + c + "] " : c + " ");
    }
    out += "\n";
  }
  return out;
}

}  // namespace

Result<std::string> read_disksize(const StoreImpl& s, std::string*) noexcept {
  ReaderLock l(s.init_lock_);
  return fmt("%" PRIu64 "\n", s.disksize_);
}

Result<std::string> read_initstate(const StoreImpl& s, std::string*) noexcept {
  ReaderLock l(s.init_lock_);
  return fmt("%d\n", s.disksize_ ? 1 : 0);
}

Result<std::string> read_comp_algorithm(const StoreImpl& s, std::string*) noexcept {
  return algorithms(s, 0, 1);
}

Result<std::string> read_recomp_algorithm(const StoreImpl& s, std::string*) noexcept {
  return algorithms(s, 1, kMaxPriorities);
}

Result<std::string> read_io_stat(const StoreImpl& s, std::string*) noexcept {
  const IoStat st = s.io_stat();
  return fmt("%8" PRIu64 " %8" PRIu64 " 0 %8" PRIu64 "\n", st.failed_reads, st.failed_writes,
             st.notify_free);
}

Result<std::string> read_mm_stat(const StoreImpl& s, std::string*) noexcept {
  const MmStat m = s.mm_stat();
  return fmt("%8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
             " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 "\n",
             m.orig_data_size, m.compr_data_size, m.mem_used_total, m.mem_limit, m.mem_used_max,
             m.same_pages, m.pages_compacted, m.huge_pages, m.huge_pages_since);
}

// The kernel's two lines, then uzram's own counters, one "name value" per line (the
// backing tier's: docs/store-postprocessing.md#counters).
Result<std::string> read_debug_stat(const StoreImpl& s, std::string*) noexcept {
  const BdStat b = s.bd_stat();
  return fmt("version: %d\n0 %8" PRIu64 "\nfailed_writebacks %8" PRIu64 "\nbacking_blocks %8" PRIu64
             "\nbacking_bytes %8" PRIu64 "\nbacking_compacted %8" PRIu64
             "\nbacking_trimmed %8" PRIu64 "\nbacking_lost %8" PRIu64
             "\nfailed_backing_reads %8" PRIu64 "\nbacking_reconnects %8" PRIu64
             "\nbacking_connected %8d\n",
             1, s.stats_.miss_free.load(std::memory_order_relaxed), b.failed_writebacks,
             b.backing_blocks, b.backing_bytes, b.compacted, b.trimmed, b.lost_blocks,
             b.failed_backing_reads, b.reconnects, b.connected ? 1 : 0);
}

Result<std::string> read_backing_dev(const StoreImpl& s, std::string*) noexcept {
  ReaderLock l(s.init_lock_);
  return (s.backing_path_.empty() ? std::string("none") : s.backing_path_) + "\n";
}

Result<std::string> read_writeback_limit(const StoreImpl& s, std::string*) noexcept {
  return fmt("%" PRIu64 "\n", s.wb_limit_pages_.load(std::memory_order_relaxed));
}

Result<std::string> read_writeback_limit_enable(const StoreImpl& s, std::string*) noexcept {
  return fmt("%d\n", s.wb_limit_enable_.load(std::memory_order_relaxed) ? 1 : 0);
}

Result<std::string> read_bd_stat(const StoreImpl& s, std::string*) noexcept {
  const BdStat st = s.bd_stat();
  return fmt("%8" PRIu64 " %8" PRIu64 " %8" PRIu64 "\n", st.bd_count, st.bd_reads, st.bd_writes);
}

Result<std::string> read_writeback_batch_size(const StoreImpl& s, std::string*) noexcept {
  return fmt("%u\n", s.wb_batch_size_.load(std::memory_order_relaxed));
}

Result<std::string> read_backing_timeout_ms(const StoreImpl& s, std::string*) noexcept {
  return fmt("%u\n", s.backing_timeout_ms_.load(std::memory_order_relaxed));
}

Result<std::string> read_compressed_writeback(const StoreImpl& s, std::string*) noexcept {
  ReaderLock l(s.init_lock_);
  return fmt("%d\n", s.compressed_writeback_ ? 1 : 0);
}

Result<std::string> read_unit_policy(const StoreImpl& s, std::string*) noexcept {
  const std::uint32_t n = s.unit_split_after_.load(std::memory_order_relaxed);
  if (n == 0) return std::string("rmw\n");
  if (n == 1) return std::string("split\n");
  return fmt("split_after=%u\n", n);
}

Result<std::string> read_unit_size(const StoreImpl& s, std::string*) noexcept {
  ReaderLock l(s.init_lock_);
  return fmt("%u\n", s.unit_size_);
}

// units whole_reads partial_reads cache_hits rmw_writes split_writes splits (docs/store.md)
Result<std::string> read_unit_stat(const StoreImpl& s, std::string*) noexcept {
  const UnitStat u = s.do_unit_stat();
  return fmt("%8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
             " %8" PRIu64 "\n",
             u.units, u.whole_reads, u.partial_reads, u.cache_hits, u.rmw_writes, u.split_writes,
             u.splits);
}

// One line per stored block: index, access time, and the flags s(ame) w(ritten back)
// h(uge) i(dle) r(ecompressed) n (incompressible); on a store with units a seventh, u, for
// a member of a stored unit, whose h, i and r are its unit's (the head's).
Result<std::string> read_block_state(const StoreImpl& s, std::string* msg) noexcept {
  ReaderLock l(s.init_lock_);
  if (!s.disksize_) {
    return fail(msg, Errc::invalid_argument, "block_state: device not initialised").error();
  }
  const bool units = s.unit_blocks_ > 1;
  std::string out;
  s.for_each_stored_slot(0, s.nslots_, [&](std::uint64_t i, Slot& slot) {
    s.init_lock_.assert_held_shared();  // the analysis does not see into the lambda
    Slot& u = s.unit_lock(i);
    u.lock();
    slot.held_by(u);
    std::uint32_t f = slot.get();
    const std::uint32_t t = slot.ac_time.load(std::memory_order_relaxed);
    const bool member = f & slotf::kMember;
    if (member) f = (u.get() & ~slotf::kMember) | slotf::kMember;  // its unit's flags
    u.unlock();
    if (!slotf::block_holds(f)) return true;
    out +=
        fmt("%12" PRIu64 " %12u.%06u %c%c%c%c%c%c", i, t, 0u, f & slotf::kSame ? 's' : '.',
            f & slotf::kWb ? 'w' : '.', f & slotf::kHuge ? 'h' : '.', f & slotf::kIdle ? 'i' : '.',
            f & slotf::kPrioMask ? 'r' : '.', f & slotf::kIncompressible ? 'n' : '.');
    if (units) out += member ? 'u' : '.';
    out += '\n';
    return true;
  });
  return out;
}

Result<std::string> read_classes(const StoreImpl& s, std::string*) noexcept {
  ReaderLock l(s.init_lock_);
  return s.pool_ ? s.pool_->format_class_stats() : std::string();
}

}  // namespace uzram::attr

// store/attrs.cc - the /sys/block/zramN control surface: attribute names, value grammar,
// the kernel's refusals (with a message naming the attribute) and its exact text formats.
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "store/kv.h"
#include "store/store_impl.h"

namespace uzram {
namespace {

Result<void> fail(std::string* msg, Errc e, std::string text) {
  if (msg) *msg = std::move(text);
  return e;
}

// reset and disksize while users are open (Store::open_user): the kernel's EBUSY.
Result<void> in_use(std::string* msg, const char* attr, std::uint64_t users) {
  return fail(msg, Errc::busy,
              std::string(attr) + ": device in use by " + std::to_string(users) +
                  " open connection(s); disconnect them first");
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// Every attribute, with whether it can be read (R) and written (W), and whether it is a
// trigger: a write-only action whose value only says "do it" (no value means 1).
struct AttrInfo {
  const char* name;
  bool readable;
  bool writable;
  bool trigger = false;
};
constexpr AttrInfo kAttrs[] = {
    {"disksize", true, true},         {"initstate", true, false},
    {"reset", false, true},           {"compact", false, true, true},
    {"mem_limit", false, true},       {"mem_used_max", false, true},
    {"idle", false, true},            {"comp_algorithm", true, true},
    {"algorithm_params", false, true}, {"io_stat", true, false},
    {"mm_stat", true, false},         {"debug_stat", true, false},
    {"backing_dev", true, true},      {"writeback", false, true},
    {"writeback_limit", true, true},  {"writeback_limit_enable", true, true},
    {"bd_stat", true, false},         {"compressed_writeback", true, true},
    {"recomp_algorithm", true, true}, {"recompress", false, true},
    {"block_state", true, false},     {"classes", true, false},
};

const AttrInfo* find_attr(std::string_view name) {
  for (const AttrInfo& a : kAttrs) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

// Parses "priority=N algo=NAME level=N dict=PATH deflate.winbits=N" (algorithm_params).
struct Params {
  int priority = -1;
  std::string algo;
  CodecSpec spec;
};

}  // namespace

std::vector<std::string> Store::attr_names() noexcept {
  std::vector<std::string> out;
  for (const AttrInfo& a : kAttrs) out.emplace_back(a.name);
  return out;
}

bool Store::attr_readable(std::string_view name) noexcept {
  const AttrInfo* a = find_attr(name);
  return a && a->readable;
}

bool Store::attr_writable(std::string_view name) noexcept {
  const AttrInfo* a = find_attr(name);
  return a && a->writable;
}

Result<void> StoreImpl::do_write_attr(std::string_view name, std::string_view value,
                                        std::string* msg) noexcept {
  const AttrInfo* a = find_attr(name);
  const std::string n(name);
  if (!a) return fail(msg, Errc::invalid_argument, n + ": no such attribute");
  if (!a->writable) return fail(msg, Errc::not_supported, n + ": read-only attribute");
  value = trim(value);
  if (value.empty() && a->trigger) value = "1";  // `echo > compact`, `uzram ctl compact`

  if (name == "disksize") {
    auto size = parse_size(value);
    if (!size || *size == 0) return fail(msg, Errc::invalid_argument, "disksize: invalid size '" + std::string(value) + "'");
    std::unique_lock l(init_lock_);
    if (const auto u = users_.load(std::memory_order_relaxed)) return in_use(msg, "disksize", u);
    if (disksize_) return fail(msg, Errc::busy, "disksize: device already initialised (reset it first)");
    return init_locked(*size, msg);
  }
  if (name == "reset") {
    int v = 0;
    if (value.empty()) {  // not a trigger: a reset loses every stored block
      return fail(msg, Errc::invalid_argument,
                  "reset: give the value, e.g. 'reset 1' (a reset discards every stored block; "
                  "an empty write is refused, as the kernel refuses it)");
    }
    if (!parse_int(value, &v) || v <= 0) return fail(msg, Errc::invalid_argument, "reset: expects a positive integer");
    std::unique_lock l(init_lock_);
    if (const auto u = users_.load(std::memory_order_relaxed)) return in_use(msg, "reset", u);
    reset_locked();
    return {};
  }
  if (name == "mem_limit") {
    auto size = parse_size(value);
    if (!size) return fail(msg, Errc::invalid_argument, "mem_limit: invalid size '" + std::string(value) + "'");
    std::unique_lock l(init_lock_);
    mem_limit_pages_.store((*size + kBlockSize - 1) / kBlockSize, std::memory_order_relaxed);
    return {};
  }
  if (name == "comp_algorithm") {
    std::unique_lock l(init_lock_);
    if (!codec_known(value)) return fail(msg, Errc::invalid_argument, "comp_algorithm: unknown algorithm '" + std::string(value) + "'");
    if (disksize_) return fail(msg, Errc::busy, "comp_algorithm: cannot change the algorithm of an initialised device");
    comp_[0] = CodecSpec{};
    comp_[0].name = std::string(value);
    return {};
  }
  if (name == "algorithm_params") {
    Params p;
    for (const KeyValue& kv : split_kv(value)) {
      if (!kv.has_value) return fail(msg, Errc::invalid_argument, "algorithm_params: expected key=value, got '" + std::string(kv.key) + "'");
      if (kv.key == "priority") {
        if (!parse_int(kv.value, &p.priority) || p.priority < 0 || p.priority >= static_cast<int>(kMaxPriorities)) {
          return fail(msg, Errc::invalid_argument, "algorithm_params: priority must be 0..3");
        }
      } else if (kv.key == "algo") {
        p.algo = std::string(kv.value);
      } else if (kv.key == "level") {
        if (!parse_int(kv.value, &p.spec.level)) return fail(msg, Errc::invalid_argument, "algorithm_params: bad level");
        p.spec.has_level = true;
      } else if (kv.key == "dict") {
        p.spec.dict_path = std::string(kv.value);
      } else if (kv.key == "deflate.winbits") {
        if (!parse_int(kv.value, &p.spec.deflate_winbits)) return fail(msg, Errc::invalid_argument, "algorithm_params: bad deflate.winbits");
      } else {
        return fail(msg, Errc::invalid_argument, "algorithm_params: unknown parameter '" + std::string(kv.key) + "'");
      }
    }
    // Files are read, and the codec built, with no lock held (a FIFO or a slow file
    // system must not stall I/O); the result is installed under init_lock_ if the
    // configuration it was checked against is still there.
    if (!p.spec.dict_path.empty()) {
      std::string why;
      auto dict = read_dictionary(p.spec.dict_path, &why);
      if (!dict) {
        return fail(msg, static_cast<Errc>(dict.error().value()), "algorithm_params: " + why);
      }
      p.spec.dict = std::move(dict).value();
    }
    int prio = p.priority;
    {
      std::shared_lock l(init_lock_);
      if (disksize_) return fail(msg, Errc::busy, "algorithm_params: device already initialised");
      if (!p.algo.empty()) {  // algo= selects the priority that uses that algorithm
        for (unsigned i = 0; i < kMaxPriorities && prio < 0; i++) {
          if (comp_[i].name == p.algo) prio = static_cast<int>(i);
        }
        if (prio < 0) {
          return fail(msg, Errc::invalid_argument,
                      "algorithm_params: algorithm '" + p.algo + "' is not configured");
        }
      }
      if (prio < 0) prio = 0;
      if (comp_[prio].name.empty()) {
        return fail(msg, Errc::invalid_argument,
                    fmt("algorithm_params: no algorithm at priority %d", prio));
      }
      p.spec.name = comp_[prio].name;
    }
    if (auto c = make_codec(p.spec); !c) {  // validate now: clear errors at the point of use
      return fail(msg, static_cast<Errc>(c.error().value()), "algorithm_params: " + p.spec.name + ": " + c.error().message() +
                  (p.spec.dict_path.empty() ? "" : " (dict=" + p.spec.dict_path + ")"));
    }
    std::unique_lock l(init_lock_);
    if (disksize_) return fail(msg, Errc::busy, "algorithm_params: device already initialised");
    if (comp_[prio].name != p.spec.name) {
      return fail(msg, Errc::busy, "algorithm_params: the algorithm at priority " +
                                       std::to_string(prio) + " changed meanwhile; write it again");
    }
    comp_[prio] = std::move(p.spec);
    return {};
  }
  if (name == "recomp_algorithm") {
    std::string algo;
    int prio = 1;
    for (const KeyValue& kv : split_kv(value)) {
      if (kv.key == "algo" && kv.has_value) {
        algo = std::string(kv.value);
      } else if (kv.key == "priority" && kv.has_value) {
        if (!parse_int(kv.value, &prio) || prio < 1 || prio > 3) return fail(msg, Errc::invalid_argument, "recomp_algorithm: priority must be 1..3");
      } else {
        return fail(msg, Errc::invalid_argument, "recomp_algorithm: expected 'algo=NAME [priority=N]'");
      }
    }
    if (algo.empty()) return fail(msg, Errc::invalid_argument, "recomp_algorithm: algo=NAME is required");
    if (!codec_known(algo)) return fail(msg, Errc::invalid_argument, "recomp_algorithm: unknown algorithm '" + algo + "'");
    std::unique_lock l(init_lock_);
    if (disksize_) return fail(msg, Errc::busy, "recomp_algorithm: device already initialised");
    comp_[prio] = CodecSpec{};
    comp_[prio].name = algo;
    return {};
  }
  if (name == "backing_dev") return backing_dev_store(value, msg);  // opens before locking
  if (name == "compressed_writeback") {
    int v;
    if (!parse_int(value, &v) || (v != 0 && v != 1)) return fail(msg, Errc::invalid_argument, "compressed_writeback: expects 0 or 1");
    std::unique_lock l(init_lock_);
    if (disksize_) return fail(msg, Errc::busy, "compressed_writeback: device already initialised");
    compressed_writeback_ = v == 1;
    return {};
  }
  if (name == "writeback_limit") {
    std::uint64_t v;
    if (!parse_u64(value, &v)) return fail(msg, Errc::invalid_argument, "writeback_limit: expects a number of 4 KiB pages");
    wb_limit_pages_.store(v, std::memory_order_relaxed);
    return {};
  }
  if (name == "writeback_limit_enable") {
    int v;
    if (!parse_int(value, &v) || (v != 0 && v != 1)) return fail(msg, Errc::invalid_argument, "writeback_limit_enable: expects 0 or 1");
    wb_limit_enable_.store(v == 1, std::memory_order_relaxed);
    return {};
  }

  // The rest need an initialised device; they run with init_lock_ shared.
  std::shared_lock l(init_lock_);
  if (name == "mem_used_max") {
    std::uint64_t v;
    if (!parse_u64(value, &v) || v != 0) return fail(msg, Errc::invalid_argument, "mem_used_max: only 0 is accepted (resets the high-water mark)");
    if (pool_) stats_.max_used_pages.store(pool_->total_pages(), std::memory_order_relaxed);
    return {};
  }
  if (!disksize_) return fail(msg, Errc::invalid_argument, n + ": device not initialised (set disksize first)");
  if (name == "compact") {
    pool_->compact();
    return {};
  }
  if (name == "idle") return idle_store(value, msg);
  if (name == "writeback") return writeback_store(value, msg);
  if (name == "recompress") return recompress_store(value, msg);
  return fail(msg, Errc::invalid_argument, n + ": not writable");
}

Result<std::string> StoreImpl::do_read_attr(std::string_view name, std::string* msg) const noexcept {
  const AttrInfo* a = find_attr(name);
  const std::string n(name);
  auto err = [&](Errc e, std::string text) -> Result<std::string> {
    if (msg) *msg = std::move(text);
    return e;
  };
  if (!a) return err(Errc::invalid_argument, n + ": no such attribute");
  if (!a->readable) return err(Errc::not_supported, n + ": write-only attribute");
  if (name == "mm_stat") {
    const MmStat m = do_mm_stat();
    return fmt("%8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
               " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 "\n",
               m.orig_data_size, m.compr_data_size, m.mem_used_total, m.mem_limit, m.mem_used_max,
               m.same_pages, m.pages_compacted, m.huge_pages, m.huge_pages_since);
  }
  if (name == "io_stat") {
    const IoStat s = do_io_stat();
    return fmt("%8" PRIu64 " %8" PRIu64 " 0 %8" PRIu64 "\n", s.failed_reads, s.failed_writes, s.notify_free);
  }
  if (name == "bd_stat") {
    const BdStat s = do_bd_stat();
    return fmt("%8" PRIu64 " %8" PRIu64 " %8" PRIu64 "\n", s.bd_count, s.bd_reads, s.bd_writes);
  }
  if (name == "debug_stat") {
    // The kernel's two lines, then uzram's own counters, one "name value" per line.
    return fmt("version: %d\n0 %8" PRIu64 "\nfailed_writebacks %8" PRIu64 "\n", 1,
               stats_.miss_free.load(std::memory_order_relaxed),
               stats_.wb_failed.load(std::memory_order_relaxed));
  }
  std::shared_lock l(init_lock_);
  if (name == "disksize") return fmt("%" PRIu64 "\n", disksize_);
  if (name == "initstate") return fmt("%d\n", disksize_ ? 1 : 0);
  if (name == "comp_algorithm" || name == "recomp_algorithm") {
    std::string out;
    const unsigned from = name == "comp_algorithm" ? 0 : 1, to = name == "comp_algorithm" ? 1 : kMaxPriorities;
    for (unsigned p = from; p < to; p++) {
      if (p > 0 && comp_[p].name.empty()) continue;
      if (p > 0) out += fmt("#%u: ", p);
      for (const std::string& c : codec_names()) out += (c == comp_[p].name ? "[" + c + "] " : c + " ");
      out += "\n";
    }
    return out;
  }
  if (name == "backing_dev") return (backing_path_.empty() ? std::string("none") : backing_path_) + "\n";
  if (name == "compressed_writeback") return fmt("%d\n", compressed_writeback_ ? 1 : 0);
  if (name == "writeback_limit") return fmt("%" PRIu64 "\n", wb_limit_pages_.load(std::memory_order_relaxed));
  if (name == "writeback_limit_enable") return fmt("%d\n", wb_limit_enable_.load(std::memory_order_relaxed) ? 1 : 0);
  if (name == "classes") return pool_ ? pool_->format_class_stats() : std::string();
  if (name == "block_state") {
    if (!disksize_) return err(Errc::invalid_argument, "block_state: device not initialised");
    std::string out;
    for_each_stored_slot(0, nslots_, [&](std::uint64_t i, Slot& s) {
      s.lock();
      const std::uint32_t f = s.get();
      const std::uint32_t t = s.ac_time.load(std::memory_order_relaxed);
      s.unlock();
      if (!(f & (slotf::kSizeMask | slotf::kSame | slotf::kWb))) return true;
      out += fmt("%12" PRIu64 " %12u.%06u %c%c%c%c%c%c\n", i, t, 0u, f & slotf::kSame ? 's' : '.',
                 f & slotf::kWb ? 'w' : '.', f & slotf::kHuge ? 'h' : '.', f & slotf::kIdle ? 'i' : '.',
                 f & slotf::kPrioMask ? 'r' : '.', f & slotf::kIncompressible ? 'n' : '.');
      return true;
    });
    return out;
  }
  return err(Errc::invalid_argument, n + ": not readable");
}

}  // namespace uzram

// store/attr_config.cc - the configuration attributes' parsers and writers (rows of the
// attribute table, attr_table.h): disksize and reset (init and its undoing), the limits,
// the algorithms (comp_algorithm, algorithm_params, recomp_algorithm), compact, and the
// writeback switches. Grammar, refusals and messages as the kernel's, each message naming
// its attribute.
#include <algorithm>
#include <mutex>

#include "store/attr_table.h"
#include "store/fail.h"
#include "store/kv.h"
#include "store/store_impl.h"

namespace uzram::attr {
namespace {

// reset and disksize while users are open (Store::open_user): the kernel's EBUSY.
Result<void> in_use(std::string* msg, const char* attr, std::uint64_t users) {
  return fail(msg, Errc::busy,
              std::string(attr) + ": device in use by " + std::to_string(users) +
                  " open connection(s); disconnect them first");
}

// "0" or "1" as a number.
Result<void> parse_switch(std::string_view text, const char* attr, AttrArg* out,
                          std::string* msg) noexcept {
  int v;
  if (!parse_int(text, &v) || (v != 0 && v != 1)) {
    return fail(msg, Errc::invalid_argument, std::string(attr) + ": expects 0 or 1");
  }
  out->number = static_cast<std::uint64_t>(v);
  return {};
}

}  // namespace

// ---- disksize, reset --------------------------------------------------------------------

Result<void> parse_disksize(const StoreImpl&, std::string_view text, AttrArg* out,
                            std::string* msg) noexcept {
  auto size = parse_size(text);
  if (!size || *size == 0) {
    return fail(msg, Errc::invalid_argument, "disksize: invalid size '" + std::string(text) + "'");
  }
  out->number = *size;
  return {};
}

Result<void> write_disksize(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  WriterLock l(s.init_lock_);
  if (s.retired_.load(std::memory_order_relaxed)) return s.retired_error("disksize", msg);
  if (const auto u = s.users_.load(std::memory_order_relaxed)) return in_use(msg, "disksize", u);
  if (s.disksize_) {
    return fail(msg, Errc::busy, "disksize: device already initialised (reset it first)");
  }
  return s.init_locked(arg.number, msg);
}

Result<void> parse_reset(const StoreImpl&, std::string_view text, AttrArg* out,
                         std::string* msg) noexcept {
  int v = 0;
  if (text.empty()) {  // not a trigger: a reset loses every stored block
    return fail(msg, Errc::invalid_argument,
                "reset: give the value, e.g. 'reset 1' (a reset discards every stored block; "
                "an empty write is refused, as the kernel refuses it)");
  }
  if (!parse_int(text, &v) || v <= 0) {
    return fail(msg, Errc::invalid_argument, "reset: expects a positive integer");
  }
  out->number = static_cast<std::uint64_t>(v);
  return {};
}

Result<void> write_reset(StoreImpl& s, AttrArg&, std::string* msg) noexcept {
  s.policy_.pause();  // its worker stops between passes instead of delaying the reset
  std::shared_ptr<StoreImpl::Backing> old;  // closed after the lock is released
  std::uint64_t users = 0;
  {
    WriterLock l(s.init_lock_);
    users = s.users_.load(std::memory_order_relaxed);
    if (users == 0) old = s.reset_locked();
  }
  s.policy_.resume();
  if (users) return in_use(msg, "reset", users);
  return {};
}

// ---- compact, mem_limit, mem_used_max -----------------------------------------------------

Result<void> write_compact(StoreImpl& s, AttrArg&, std::string*) noexcept {
  s.init_lock_.assert_held_shared();  // called through the attribute table's pointer
  s.pool_->compact();
  return {};
}

Result<void> parse_mem_limit(const StoreImpl&, std::string_view text, AttrArg* out,
                             std::string* msg) noexcept {
  auto size = parse_size(text);
  if (!size) {
    return fail(msg, Errc::invalid_argument, "mem_limit: invalid size '" + std::string(text) + "'");
  }
  out->number = *size;
  return {};
}

Result<void> write_mem_limit(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  const std::uint64_t bytes = arg.number;
  WriterLock l(s.init_lock_);
  // A swap store's pool was sized for the mem_limit it had at disksize (StoreOptions).
  if (s.pool_bytes_ != 0 && (bytes == 0 || bytes > s.pool_bytes_ - kSwapPoolSlack)) {
    return fail(msg, Errc::invalid_argument,
                "mem_limit: this store serves swap and its pool was sized at disksize for " +
                    std::to_string((s.pool_bytes_ - kSwapPoolSlack) >> 20) +
                    " MiB: mem_limit must stay between 1 and that (reset and set disksize "
                    "again to resize)");
  }
  s.mem_limit_pages_.store((bytes + kBlockSize - 1) / kBlockSize, std::memory_order_relaxed);
  s.policy_.limits_changed_locked();  // the watermarks follow mem_limit
  return {};
}

Result<void> parse_mem_used_max(const StoreImpl&, std::string_view text, AttrArg*,
                                std::string* msg) noexcept {
  std::uint64_t v;
  if (!parse_u64(text, &v) || v != 0) {
    return fail(msg, Errc::invalid_argument,
                "mem_used_max: only 0 is accepted (resets the high-water mark)");
  }
  return {};
}

Result<void> write_mem_used_max(StoreImpl& s, AttrArg&, std::string*) noexcept {
  ReaderLock l(s.init_lock_);
  if (s.pool_) s.stats_.max_used_pages.store(s.pool_->total_pages(), std::memory_order_relaxed);
  return {};
}

// ---- comp_algorithm, recomp_algorithm ----------------------------------------------------

Result<void> parse_comp_algorithm(const StoreImpl&, std::string_view text, AttrArg* out,
                                  std::string* msg) noexcept {
  if (!codec_known(text)) {
    return fail(msg, Errc::invalid_argument,
                "comp_algorithm: unknown algorithm '" + std::string(text) + "'");
  }
  out->text = std::string(text);
  return {};
}

Result<void> write_comp_algorithm(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  WriterLock l(s.init_lock_);
  if (s.disksize_) {
    return fail(msg, Errc::busy,
                "comp_algorithm: cannot change the algorithm of an initialised device");
  }
  s.comp_[0] = CodecSpec{};
  s.comp_[0].name = std::move(arg.text);
  return {};
}

Result<void> parse_recomp_algorithm(const StoreImpl&, std::string_view text, AttrArg* out,
                                    std::string* msg) noexcept {
  RecompAlgo ra;
  for (const KeyValue& kv : split_kv(text)) {
    if (kv.key == "algo" && kv.has_value) {
      ra.algo = std::string(kv.value);
    } else if (kv.key == "priority" && kv.has_value) {
      if (!parse_int(kv.value, &ra.priority) || ra.priority < 1 || ra.priority > 3) {
        return fail(msg, Errc::invalid_argument, "recomp_algorithm: priority must be 1..3");
      }
    } else {
      return fail(msg, Errc::invalid_argument,
                  "recomp_algorithm: expected 'algo=NAME [priority=N]'");
    }
  }
  if (ra.algo.empty()) {
    return fail(msg, Errc::invalid_argument, "recomp_algorithm: algo=NAME is required");
  }
  if (!codec_known(ra.algo)) {
    return fail(msg, Errc::invalid_argument,
                "recomp_algorithm: unknown algorithm '" + ra.algo + "'");
  }
  out->recomp = std::move(ra);
  return {};
}

Result<void> write_recomp_algorithm(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  RecompAlgo& ra = arg.recomp;
  WriterLock l(s.init_lock_);
  if (s.disksize_) return fail(msg, Errc::busy, "recomp_algorithm: device already initialised");
  s.comp_[ra.priority] = CodecSpec{};
  s.comp_[ra.priority].name = std::move(ra.algo);
  return {};
}

// ---- algorithm_params -------------------------------------------------------------------

namespace {

Result<void> parse_param(const KeyValue& kv, AlgoParams* p, std::string* msg) noexcept {
  const auto bad = [msg](const std::string& what) {
    return fail(msg, Errc::invalid_argument, "algorithm_params: " + what);
  };
  if (!kv.has_value) return bad("expected key=value, got '" + std::string(kv.key) + "'");
  if (kv.key == "priority") {
    if (!parse_int(kv.value, &p->priority) || p->priority < 0 ||
        p->priority >= static_cast<int>(kMaxPriorities)) {
      return bad("priority must be 0..3");
    }
  } else if (kv.key == "algo") {
    p->algo = std::string(kv.value);
  } else if (kv.key == "level") {
    if (!parse_int(kv.value, &p->spec.level)) return bad("bad level");
    p->spec.has_level = true;
  } else if (kv.key == "dict") {
    p->spec.dict_path = std::string(kv.value);
  } else if (kv.key == "deflate.winbits") {
    if (!parse_int(kv.value, &p->spec.deflate_winbits)) return bad("bad deflate.winbits");
  } else {
    return bad("unknown parameter '" + std::string(kv.key) + "'");
  }
  return {};
}

// The priority the parameters are for (algo= selects the priority using that algorithm,
// else priority=, else 0), and its algorithm into p->spec.name. Caller holds init_lock_.
Result<void> resolve_priority_locked(const StoreImpl& s, AlgoParams* p, std::string* msg)
    ZS_REQUIRES_SHARED(s.init_lock_) {
  if (s.disksize_) return fail(msg, Errc::busy, "algorithm_params: device already initialised");
  int prio = p->priority;
  if (!p->algo.empty()) {
    for (unsigned i = 0; i < kMaxPriorities && prio < 0; i++) {
      if (s.comp_[i].name == p->algo) prio = static_cast<int>(i);
    }
    if (prio < 0) {
      return fail(msg, Errc::invalid_argument,
                  "algorithm_params: algorithm '" + p->algo + "' is not configured");
    }
  }
  if (prio < 0) prio = 0;
  if (s.comp_[prio].name.empty()) {
    return fail(msg, Errc::invalid_argument,
                "algorithm_params: no algorithm at priority " + std::to_string(prio));
  }
  p->priority = prio;
  p->spec.name = s.comp_[prio].name;
  return {};
}

}  // namespace

Result<void> parse_algorithm_params(const StoreImpl&, std::string_view text, AttrArg* out,
                                    std::string* msg) noexcept {
  AlgoParams p;
  for (const KeyValue& kv : split_kv(text)) {
    if (auto r = parse_param(kv, &p, msg); !r) return r;
  }
  out->params = std::move(p);
  return {};
}

// Files are read, and the codec built, with no lock held (a FIFO or a slow file system
// must not stall I/O); the result is installed under init_lock_ if the configuration it
// was checked against is still there.
Result<void> write_algorithm_params(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  AlgoParams& p = arg.params;
  if (!p.spec.dict_path.empty()) {
    std::string why;
    auto dict = read_dictionary(p.spec.dict_path, &why);
    if (!dict) {
      return fail(msg, static_cast<Errc>(dict.error().value()), "algorithm_params: " + why);
    }
    p.spec.dict = std::move(dict).value();
  }
  {
    ReaderLock l(s.init_lock_);
    if (auto r = resolve_priority_locked(s, &p, msg); !r) return r;
  }
  if (auto c = make_codec(p.spec); !c) {  // validate now: clear errors at the point of use
    return fail(msg, static_cast<Errc>(c.error().value()),
                "algorithm_params: " + p.spec.name + ": " + c.error().message() +
                    (p.spec.dict_path.empty() ? "" : " (dict=" + p.spec.dict_path + ")"));
  }
  WriterLock l(s.init_lock_);
  if (s.disksize_) return fail(msg, Errc::busy, "algorithm_params: device already initialised");
  if (s.comp_[p.priority].name != p.spec.name) {
    return fail(msg, Errc::busy,
                "algorithm_params: the algorithm at priority " + std::to_string(p.priority) +
                    " changed meanwhile; write it again");
  }
  s.comp_[p.priority] = std::move(p.spec);
  return {};
}

// ---- writeback switches -------------------------------------------------------------------

Result<void> parse_compressed_writeback(const StoreImpl&, std::string_view text, AttrArg* out,
                                        std::string* msg) noexcept {
  return parse_switch(text, "compressed_writeback", out, msg);
}

Result<void> write_compressed_writeback(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  WriterLock l(s.init_lock_);
  if (s.disksize_) {
    return fail(msg, Errc::busy, "compressed_writeback: device already initialised");
  }
  s.compressed_writeback_ = arg.number == 1;
  return {};
}

// ---- unit_size ---------------------------------------------------------------------------

Result<void> parse_unit_size(const StoreImpl&, std::string_view text, AttrArg* out,
                             std::string* msg) noexcept {
  auto v = parse_size(text);
  if (!v || (*v != 4096 && *v != 16384 && *v != 32768 && *v != 65536)) {
    return fail(msg, Errc::invalid_argument,
                "unit_size: expects 4K, 16K, 32K or 64K (the compression unit's bytes)");
  }
  out->number = *v;
  return {};
}

Result<void> write_unit_size(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  WriterLock l(s.init_lock_);
  if (s.disksize_) return fail(msg, Errc::busy, "unit_size: device already initialised");
  s.unit_size_ = static_cast<std::uint32_t>(arg.number);
  return {};
}

// unit_policy: what a partial write does to a stored unit (docs/units.md#writes): `rmw`
// (re-encode it whole, always), `split` (into 4 KiB blocks, at once) or `split_after=N`
// (rmw for its first N - 1 partial writes, then split; N 1..255).
Result<void> parse_unit_policy(const StoreImpl&, std::string_view text, AttrArg* out,
                               std::string* msg) noexcept {
  std::uint64_t n = 0;
  constexpr std::string_view kAfter = "split_after=";
  if (text == "rmw") {
    n = 0;
  } else if (text == "split") {
    n = 1;
  } else if (text.substr(0, kAfter.size()) != kAfter ||
             !parse_u64(text.substr(kAfter.size()), &n) || n < 1 || n > kUnitSplitAfterMax) {
    return fail(msg, Errc::invalid_argument,
                "unit_policy: expects rmw, split or split_after=N (N from 1 to " +
                    std::to_string(kUnitSplitAfterMax) + ")");
  }
  out->number = n;
  return {};
}

Result<void> write_unit_policy(StoreImpl& s, AttrArg& arg, std::string*) noexcept {
  s.unit_split_after_.store(static_cast<std::uint32_t>(arg.number), std::memory_order_relaxed);
  return {};
}

Result<void> parse_writeback_limit(const StoreImpl&, std::string_view text, AttrArg* out,
                                   std::string* msg) noexcept {
  std::uint64_t v;
  if (!parse_u64(text, &v)) {
    return fail(msg, Errc::invalid_argument, "writeback_limit: expects a number of 4 KiB pages");
  }
  out->number = static_cast<std::uint64_t>(v);
  return {};
}

Result<void> write_writeback_limit(StoreImpl& s, AttrArg& arg, std::string*) noexcept {
  s.wb_limit_pages_.store(arg.number, std::memory_order_relaxed);
  return {};
}

Result<void> parse_writeback_limit_enable(const StoreImpl&, std::string_view text, AttrArg* out,
                                          std::string* msg) noexcept {
  return parse_switch(text, "writeback_limit_enable", out, msg);
}

Result<void> write_writeback_limit_enable(StoreImpl& s, AttrArg& arg, std::string*) noexcept {
  s.wb_limit_enable_.store(arg.number == 1, std::memory_order_relaxed);
  return {};
}

// writeback_batch_size: the kernel's attribute (6.19): blocks per batch of writeback
// writes; 0 is refused as there, more than kWbBatchMax is clamped (each block in flight
// holds a 4 KiB page). A running pass keeps the size it started with.
Result<void> parse_writeback_batch_size(const StoreImpl&, std::string_view text, AttrArg* out,
                                        std::string* msg) noexcept {
  std::uint64_t v;
  if (!parse_u64(text, &v) || v == 0) {
    return fail(msg, Errc::invalid_argument,
                "writeback_batch_size: expects a number of blocks, 1 or more (at most " +
                    std::to_string(kWbBatchMax) + " are used)");
  }
  out->number = std::min<std::uint64_t>(v, kWbBatchMax);
  return {};
}

Result<void> write_writeback_batch_size(StoreImpl& s, AttrArg& arg, std::string*) noexcept {
  s.wb_batch_size_.store(static_cast<std::uint32_t>(arg.number), std::memory_order_relaxed);
  return {};
}

// backing_timeout_ms: the deadline of every request to a remote backing tier (and of its
// connection); takes effect for the next request.
Result<void> parse_backing_timeout_ms(const StoreImpl&, std::string_view text, AttrArg* out,
                                      std::string* msg) noexcept {
  std::uint64_t v;
  if (!parse_u64(text, &v) || v < kBackingTimeoutMin || v > kBackingTimeoutMax) {
    return fail(msg, Errc::invalid_argument,
                "backing_timeout_ms: expects milliseconds from " +
                    std::to_string(kBackingTimeoutMin) + " to " +
                    std::to_string(kBackingTimeoutMax));
  }
  out->number = v;
  return {};
}

Result<void> write_backing_timeout_ms(StoreImpl& s, AttrArg& arg, std::string*) noexcept {
  s.backing_timeout_ms_.store(static_cast<std::uint32_t>(arg.number), std::memory_order_relaxed);
  return {};
}

}  // namespace uzram::attr

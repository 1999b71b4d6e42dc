// store/policy_spec.cc - the `policy` grammar: parse, resolve and format (policy_spec.h).
#include "store/policy_spec.h"

#include <algorithm>
#include <cctype>

#include "store/fail.h"
#include "store/kv.h"
#include "store/pp_pass.h"
#include "uzram/store.h"

namespace uzram {
namespace {

constexpr std::uint64_t kDay = 86400;
constexpr std::uint64_t kMaxPeriod = 365 * kDay;  // interval, backoff, idle ages
constexpr std::uint64_t kMaxWaitMs = 60'000;

Result<void> refuse(std::string* msg, const std::string& text) {
  return fail(msg, Errc::invalid_argument, "policy: " + text);
}

// N[ms|s|m|h|d] (no unit: seconds) in milliseconds; false when malformed or too large.
bool parse_duration_ms(std::string_view t, std::uint64_t* ms) noexcept {
  std::size_t i = 0;
  while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) i++;
  std::uint64_t n = 0;
  if (i == 0 || !parse_u64(t.substr(0, i), &n)) return false;
  const std::string_view unit = t.substr(i);
  std::uint64_t mul = 0;
  if (unit == "ms") mul = 1;
  if (unit.empty() || unit == "s") mul = 1000;
  if (unit == "m") mul = 60'000;
  if (unit == "h") mul = 3'600'000;
  if (unit == "d") mul = kDay * 1000;
  if (mul == 0 || n > (kMaxPeriod * 1000) / mul) return false;
  *ms = n * mul;
  return true;
}

// A duration in whole seconds, at most a year.
Result<void> parse_seconds_key(const KeyValue& kv, std::uint64_t* out, std::string* msg) {
  std::uint64_t ms = 0;
  const std::string v = std::string(kv.key) + "=" + std::string(kv.value);
  if (!parse_duration_ms(kv.value, &ms)) {
    return refuse(msg, v + ": want a duration such as 3600, 90s, 10m, 20h or 1d (at most 365d)");
  }
  if (ms % 1000) return refuse(msg, v + ": whole seconds only");
  *out = ms / 1000;
  return {};
}

Result<void> parse_size_key(const KeyValue& kv, std::uint64_t* out, std::string* msg) {
  auto size = parse_size(kv.value);
  if (!size) {
    return refuse(msg, std::string(kv.key) + "=" + std::string(kv.value) +
                           ": want a size such as 4096, 64K, 300M or 1G");
  }
  *out = *size;
  return {};
}

// "90" or "90%", within [lo, hi].
Result<void> parse_percent_key(const KeyValue& kv, unsigned lo, unsigned hi, unsigned* out,
                               std::string* msg) {
  std::string_view v = kv.value;
  if (!v.empty() && v.back() == '%') v.remove_suffix(1);
  std::uint64_t n = 0;
  if (!parse_u64(v, &n) || n < lo || n > hi) {
    return refuse(msg, std::string(kv.key) + "=" + std::string(kv.value) +
                           ": want a percentage of mem_limit, " + std::to_string(lo) + " to " +
                           std::to_string(hi));
  }
  *out = static_cast<unsigned>(n);
  return {};
}

bool parse_wb_kind(std::string_view w, WbKind* k) noexcept {
  for (unsigned i = 0; i < kWbKinds; i++) {
    if (w == wb_kind_name(static_cast<WbKind>(i))) {
      *k = static_cast<WbKind>(i);
      return true;
    }
  }
  return false;
}

// Calls fn(item) for each comma-separated item; false (with the message) on an empty item.
template <typename Fn>
Result<void> for_each_item(const KeyValue& kv, std::string* msg, Fn&& fn) {
  std::string_view v = kv.value;
  for (;;) {
    const std::size_t comma = v.find(',');
    const std::string_view item = v.substr(0, comma);
    if (item.empty()) {
      return refuse(msg, std::string(kv.key) + "=" + std::string(kv.value) + ": empty item");
    }
    if (auto r = fn(item); !r) return r;
    if (comma == std::string_view::npos) return {};
    v.remove_prefix(comma + 1);
  }
}

Result<void> parse_order(const KeyValue& kv, PolicySpec* s, std::string* msg) {
  s->norder = 0;
  if (kv.value == "none") return {};
  return for_each_item(kv, msg, [&](std::string_view item) -> Result<void> {
    WbKind k;
    if (!parse_wb_kind(item, &k)) {
      return refuse(msg, "order: unknown pass '" + std::string(item) +
                             "' (huge_idle, idle, huge, incompressible, or none)");
    }
    if (std::find(s->order, s->order + s->norder, k) != s->order + s->norder) {
      return refuse(msg, "order: pass '" + std::string(item) + "' given twice");
    }
    s->order[s->norder++] = k;
    return {};
  });
}

Result<void> parse_recompress(const KeyValue& kv, PolicySpec* s, std::string* msg) {
  const std::string_view v = kv.value;
  s->recompress = v != "off";
  if (v == "off" || v == "all") {
    s->recompress_mode = 0;
  } else if (v == "idle") {
    s->recompress_mode = kPpIdle;
  } else if (v == "huge") {
    s->recompress_mode = kPpHuge;
  } else if (v == "huge_idle") {
    s->recompress_mode = kPpIdle | kPpHuge;
  } else {
    return refuse(msg, "recompress=" + std::string(v) + ": want off, all, idle, huge or huge_idle");
  }
  return {};
}

Result<void> parse_pressure(const KeyValue& kv, PolicySpec* s, std::string* msg) {
  s->pressure_recompress = s->pressure_writeback = false;
  if (kv.value == "off") return {};
  return for_each_item(kv, msg, [&](std::string_view item) -> Result<void> {
    bool* flag = item == "writeback"    ? &s->pressure_writeback
                 : item == "recompress" ? &s->pressure_recompress
                                        : nullptr;
    if (!flag) {
      return refuse(msg, "pressure: unknown action '" + std::string(item) +
                             "' (writeback, recompress, or off)");
    }
    if (*flag) return refuse(msg, "pressure: '" + std::string(item) + "' given twice");
    *flag = true;
    return {};
  });
}

Result<void> parse_wait(const KeyValue& kv, PolicySpec* s, std::string* msg) {
  std::uint64_t ms = 0;
  if (!parse_duration_ms(kv.value, &ms) || ms > kMaxWaitMs) {
    return refuse(msg, "wait=" + std::string(kv.value) +
                           ": want a duration such as 500ms or 2s (at most 60s; 0: no waiting)");
  }
  s->wait_ms = ms;
  return {};
}

// One key=value of `custom`.
Result<void> parse_key(const KeyValue& kv, PolicySpec* s, std::string* msg) {
  const std::string_view k = kv.key;
  if (k == "interval") return parse_seconds_key(kv, &s->interval, msg);
  if (k == "backoff") return parse_seconds_key(kv, &s->backoff, msg);
  if (k == "idle_min") return parse_seconds_key(kv, &s->idle_min, msg);
  if (k == "idle_max") return parse_seconds_key(kv, &s->idle_max, msg);
  if (k == "round_min") return parse_size_key(kv, &s->round_min, msg);
  if (k == "round_max") return parse_size_key(kv, &s->round_max, msg);
  if (k == "day_max") return parse_size_key(kv, &s->day_max, msg);
  if (k == "order") return parse_order(kv, s, msg);
  if (k == "recompress") return parse_recompress(kv, s, msg);
  if (k == "high") return parse_percent_key(kv, 1, 100, &s->high, msg);
  if (k == "low") return parse_percent_key(kv, 0, 99, &s->low, msg);
  if (k == "wait") return parse_wait(kv, s, msg);
  if (k == "pressure") return parse_pressure(kv, s, msg);
  return refuse(msg, "unknown parameter '" + std::string(k) +
                         "' (interval, backoff, idle_min, idle_max, round_min, round_max, "
                         "day_max, order, recompress, high, low, wait, pressure)");
}

// What no single key can check: the pairs.
Result<void> check_pairs(const PolicySpec& s, std::string* msg) {
  if (s.idle_min > s.idle_max) return refuse(msg, "idle_min is above idle_max");
  if (s.round_max < kBlockSize) {  // kPolicyAuto (~0) never is
    return refuse(msg, "round_max must be at least 4K (one block)");
  }
  if (s.round_min != kPolicyAuto && s.round_max != kPolicyAuto && s.round_min > s.round_max) {
    return refuse(msg, "round_min is above round_max");
  }
  if (s.day_max != kPolicyAuto && s.day_max != 0 && s.day_max < kBlockSize) {
    return refuse(msg, "day_max must be 0 (no daily cap) or at least 4K (one block)");
  }
  if (s.low >= s.high) return refuse(msg, "low must be below high");
  return {};
}

Result<void> parse_custom(const std::vector<KeyValue>& kvs, PolicySpec* s, std::string* msg) {
  std::vector<std::string_view> seen;
  for (std::size_t i = 1; i < kvs.size(); i++) {
    const KeyValue& kv = kvs[i];
    if (!kv.has_value) return refuse(msg, "expected key=value, got '" + std::string(kv.key) + "'");
    if (kv.value.empty()) return refuse(msg, std::string(kv.key) + ": empty value");
    if (std::find(seen.begin(), seen.end(), kv.key) != seen.end()) {
      return refuse(msg, std::string(kv.key) + " given twice");
    }
    seen.push_back(kv.key);
    if (auto r = parse_key(kv, s, msg); !r) return r;
  }
  return check_pairs(*s, msg);
}

// ---- formatting -------------------------------------------------------------------------

std::string format_seconds(std::uint64_t s) {
  if (s == 0) return "0";
  if (s % kDay == 0) return std::to_string(s / kDay) + "d";
  if (s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

std::string format_bytes(std::uint64_t b) {
  if (b == 0) return "0";
  for (const auto& [shift, unit] : {std::pair{30u, "G"}, {20u, "M"}, {10u, "K"}}) {
    if (b % (std::uint64_t{1} << shift) == 0) return std::to_string(b >> shift) + unit;
  }
  return std::to_string(b);
}

const char* recompress_name(const PolicySpec& s) {
  if (!s.recompress) return "off";
  switch (s.recompress_mode) {
    case kPpIdle: return "idle";
    case kPpHuge: return "huge";
    case kPpIdle | kPpHuge: return "huge_idle";
    default: return "all";
  }
}

// x * backing / 1 GiB, without overflow.
std::uint64_t scaled(std::uint64_t x, std::uint64_t backing_bytes) {
  const unsigned __int128 v =
      static_cast<unsigned __int128>(x) * backing_bytes / kChromeosBackingBytes;
  return v > ~std::uint64_t{0} ? ~std::uint64_t{0} : static_cast<std::uint64_t>(v);
}

}  // namespace

const char* wb_kind_name(WbKind k) noexcept {
  switch (k) {
    case WbKind::huge_idle: return "huge_idle";
    case WbKind::idle: return "idle";
    case WbKind::huge: return "huge";
    case WbKind::incompressible: return "incompressible";
  }
  return "?";
}

Result<void> parse_policy_spec(std::string_view text, PolicySpec* out, std::string* msg) noexcept {
  try {
    const std::vector<KeyValue> kvs = split_kv(text);
    if (kvs.empty()) return refuse(msg, "expects off, chromeos or custom KEY=VALUE ...");
    const KeyValue& first = kvs[0];
    PolicySpec s;
    if (first.has_value) {
      return refuse(msg, "the mode comes first: off, chromeos or custom (got '" +
                             std::string(first.key) + "=" + std::string(first.value) + "')");
    }
    if (first.key == "off" || first.key == "chromeos") {
      if (kvs.size() > 1) {
        return refuse(
            msg, std::string(first.key) + " takes no parameters (custom KEY=VALUE ... sets them)");
      }
      s.mode = first.key == "off" ? PolicyMode::off : PolicyMode::chromeos;
    } else if (first.key == "custom") {
      s.mode = PolicyMode::custom;
      if (auto r = parse_custom(kvs, &s, msg); !r) return r;
    } else {
      return refuse(msg, "unknown mode '" + std::string(first.key) + "' (off, chromeos or custom)");
    }
    *out = s;
    return {};
  } catch (...) {  // std::bad_alloc
    return fail(msg, Errc::no_memory, "policy: out of memory");
  }
}

PolicyParams resolve_policy(const PolicySpec& spec, std::uint64_t backing_blocks) noexcept {
  PolicyParams p;
  p.spec = spec;
  const std::uint64_t backing =
      backing_blocks ? backing_blocks * kBlockSize : kChromeosBackingBytes;
  const auto pages = [](std::uint64_t bytes) { return bytes / kBlockSize; };
  p.round_max_pages = spec.round_max == kPolicyAuto ? pages(scaled(kChromeosRoundMax, backing))
                                                    : pages(spec.round_max);
  p.round_max_pages = std::max<std::uint64_t>(p.round_max_pages, 1);
  p.round_min_pages = spec.round_min == kPolicyAuto
                          ? std::clamp<std::uint64_t>(pages(scaled(kChromeosRoundMin, backing)), 1,
                                                      p.round_max_pages)
                          : pages(spec.round_min);
  if (spec.day_max == kPolicyAuto) {
    p.day_max_pages = std::max<std::uint64_t>(pages(scaled(kChromeosDayMax, backing)), 1);
  } else {
    p.day_max_pages = pages(spec.day_max);
  }
  return p;
}

std::string format_policy(const PolicySpec& spec, std::uint64_t backing_blocks) noexcept {
  try {
    if (spec.mode == PolicyMode::off) return "off\n";
    const PolicyParams p = resolve_policy(spec, backing_blocks);
    std::string out = spec.mode == PolicyMode::chromeos ? "chromeos" : "custom";
    out += " interval=" + format_seconds(spec.interval) +
           " backoff=" + format_seconds(spec.backoff) +
           " idle_min=" + format_seconds(spec.idle_min) +
           " idle_max=" + format_seconds(spec.idle_max) +
           " round_min=" + format_bytes(p.round_min_pages * kBlockSize) +
           " round_max=" + format_bytes(p.round_max_pages * kBlockSize) +
           " day_max=" + format_bytes(p.day_max_pages * kBlockSize) + " order=";
    for (unsigned i = 0; i < spec.norder; i++) {
      out += (i ? "," : "") + std::string(wb_kind_name(spec.order[i]));
    }
    if (spec.norder == 0) out += "none";
    out += std::string(" recompress=") + recompress_name(spec) +
           " high=" + std::to_string(spec.high) + " low=" + std::to_string(spec.low) + " wait=" +
           (spec.wait_ms % 1000 ? std::to_string(spec.wait_ms) + "ms"
                                : format_seconds(spec.wait_ms / 1000)) +
           " pressure=";
    if (spec.pressure_recompress)
      out += spec.pressure_writeback ? "recompress,writeback" : "recompress";
    if (!spec.pressure_recompress) out += spec.pressure_writeback ? "writeback" : "off";
    return out + "\n";
  } catch (...) {  // std::bad_alloc: the reader reports it
    return {};
  }
}

}  // namespace uzram

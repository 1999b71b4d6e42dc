// store/policy_attr.cc - the `policy` and `policy_stat` attributes (rows of the attribute
// table, attr_table.h). Grammar and fields: docs/store-postprocessing.md#policy.
#include <cinttypes>
#include <cstdio>
#include <mutex>

#include "store/attr_table.h"
#include "store/backing.h"
#include "store/fail.h"
#include "store/store_impl.h"

namespace uzram {
namespace {

bool recompression_named(const StoreImpl& s) noexcept {
  s.init_lock_.assert_held_shared();
  for (unsigned p = 1; p < kMaxPriorities; p++) {
    if (!s.comp_[p].name.empty()) return true;
  }
  return false;
}

}  // namespace

Result<void> attr::parse_policy(const StoreImpl&, std::string_view text, AttrArg* out,
                                std::string* msg) noexcept {
  return parse_policy_spec(text, &out->policy, msg);
}

// Any time, initialised or not; recompression in it needs a recomp_algorithm (configured
// before disksize, so write that first). Takes init_lock_ shared: the engine reads the
// configuration (algorithms, backing device, mem_limit) to set its thresholds.
Result<void> attr::write_policy(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  const PolicySpec& spec = arg.policy;
  ReaderLock l(s.init_lock_);
  if (spec.mode != PolicyMode::off && (spec.recompress || spec.pressure_recompress) &&
      !recompression_named(s)) {
    return fail(msg, Errc::invalid_argument,
                std::string("policy: ") +
                    (spec.recompress ? "recompress=" : "pressure=recompress") +
                    " needs a recompression algorithm (write recomp_algorithm before disksize)");
  }
  s.policy_.set_spec_locked(spec);
  return {};
}

Result<std::string> attr::read_policy(const StoreImpl& s, std::string* msg) noexcept {
  ReaderLock l(s.init_lock_);
  std::string text = format_policy(s.policy_.spec(), policy_backing_blocks(s));
  if (text.empty()) return fail(msg, Errc::no_memory, "policy: out of memory").error();
  return text;
}

// One line of 18 counters, in PolicyStats' order.
Result<std::string> attr::read_policy_stat(const StoreImpl& s, std::string*) noexcept {
  const PolicyStats st = s.policy_.stats();
  const std::uint64_t v[] = {st.rounds,       st.rounds_skipped, st.idle_marked, st.recompressed,
                             st.recomp_saved, st.wb_kind[0],     st.wb_kind[1],  st.wb_kind[2],
                             st.wb_kind[3],   st.wb_pressure,    st.wb_bytes,    st.passes,
                             st.pass_errors,  st.triggers,       st.waited,      st.wait_ms,
                             st.limit_failed, st.idle_age};
  std::string out;
  char buf[32];
  for (std::uint64_t x : v) {
    std::snprintf(buf, sizeof buf, "%s%8" PRIu64, out.empty() ? "" : " ", x);
    out += buf;
  }
  return out + "\n";
}

}  // namespace uzram

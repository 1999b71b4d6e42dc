// store/policy_spec.h - the `policy` attribute's value (layer 3): what the user asked for
// (PolicySpec, parsed from the kernel-style grammar), and the effective parameters of the
// engine (PolicyParams: defaults resolved, sizes scaled to the backing device, in pages).
// Pure: no store, no locks; the engine is store/policy.h. Grammar and defaults:
// docs/store-postprocessing.md#policy.
//
//   off
//   chromeos
//   custom [interval=DUR] [backoff=DUR] [idle_min=DUR] [idle_max=DUR]
//          [round_min=SIZE] [round_max=SIZE] [day_max=SIZE]
//          [order=KIND,KIND...|none] [recompress=off|all|idle|huge|huge_idle]
//          [high=PCT] [low=PCT] [wait=DUR] [pressure=writeback|recompress[,..]|off]
//
// DUR: a number with an optional unit ms, s, m, h or d (no unit: seconds). SIZE: memparse
// (4096, 64K, 300M, 1G). KIND: huge_idle, idle, huge, incompressible.
#ifndef UZRAM_STORE_POLICY_SPEC_H_
#define UZRAM_STORE_POLICY_SPEC_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "uzram/result.h"

namespace uzram {

enum class PolicyMode : std::uint8_t { off, chromeos, custom };

// A writeback pass of a time-driven round: the `writeback type=` it runs.
enum class WbKind : std::uint8_t { huge_idle, idle, huge, incompressible };
inline constexpr unsigned kWbKinds = 4;
const char* wb_kind_name(WbKind k) noexcept;

// A size left to the default: the ChromeOS figure scaled to the backing device.
inline constexpr std::uint64_t kPolicyAuto = ~std::uint64_t{0};

// The ChromeOS figures (platform2 swap_management, for its 1 GiB backing file): every hour,
// 10 minutes of backoff, idle at least 20 h (Android mmd: 20-25 h), 5-300 MiB per round, at
// most 1 GiB a day, passes huge_idle, idle, huge.
inline constexpr std::uint64_t kChromeosBackingBytes = std::uint64_t{1} << 30;
inline constexpr std::uint64_t kChromeosRoundMin = std::uint64_t{5} << 20;
inline constexpr std::uint64_t kChromeosRoundMax = std::uint64_t{300} << 20;
inline constexpr std::uint64_t kChromeosDayMax = std::uint64_t{1} << 30;

struct PolicySpec {
  PolicyMode mode = PolicyMode::off;
  // Time-driven rounds, in seconds. interval 0: none (the memory reaction only).
  std::uint64_t interval = 3600;
  std::uint64_t backoff = 600;  // quiet time after the end of a round
  std::uint64_t idle_min = 20 * 3600, idle_max = 25 * 3600;
  // Writeback budgets of the rounds, in bytes, or kPolicyAuto. day_max 0: no daily cap.
  std::uint64_t round_min = kPolicyAuto, round_max = kPolicyAuto, day_max = kPolicyAuto;
  WbKind order[kWbKinds] = {WbKind::huge_idle, WbKind::idle, WbKind::huge};
  unsigned norder = 3;
  // Recompression before the writeback passes of a round: off, or `recompress type=` with
  // recompress_mode (kPpIdle | kPpHuge, 0 = every block).
  bool recompress = false;
  unsigned recompress_mode = 0;
  // The memory reaction: high and low watermarks in percent of mem_limit, how long a write
  // that meets mem_limit waits for room (milliseconds; 0: it fails at once), and what the
  // reaction does to the coldest blocks (recompression runs first).
  unsigned high = 90, low = 80;
  std::uint64_t wait_ms = 2000;
  bool pressure_recompress = false, pressure_writeback = true;
};

// Parses the (trimmed) value of `policy`. Errors: Errc::invalid_argument, with a message
// that starts with "policy: " and names the offending word.
[[nodiscard]] Result<void> parse_policy_spec(std::string_view text, PolicySpec* out,
                                             std::string* msg) noexcept;

// The effective parameters: sizes in 4 KiB pages, defaults scaled to a backing device of
// `backing_blocks` usable 4 KiB blocks (0: none, then the ChromeOS figures as they are).
struct PolicyParams {
  PolicySpec spec;  // mode, durations, order, recompression, watermarks, wait, pressure
  std::uint64_t round_min_pages = 0, round_max_pages = 0;
  std::uint64_t day_max_pages = 0;  // 0: no daily cap
};
[[nodiscard]] PolicyParams resolve_policy(const PolicySpec& spec,
                                          std::uint64_t backing_blocks) noexcept;

// The `policy` attribute's text: "off", or the mode and every effective parameter as
// key=value (sizes resolved as resolve_policy does), in the grammar's order, with a newline.
// A `custom` line written back gives the same parameters. Empty when memory ran out.
[[nodiscard]] std::string format_policy(const PolicySpec& spec,
                                        std::uint64_t backing_blocks) noexcept;

}  // namespace uzram

#endif  // UZRAM_STORE_POLICY_SPEC_H_

// store/policy_spec_test.cc - the `policy` grammar (store/policy_spec.h): every mode and
// key, every refusal with its message, the defaults scaled to the backing device, and the
// text read back (a `custom` line written back gives the same parameters). Then the same
// through the store's attribute: any time, refused values leave the policy as it was,
// recompression needs an algorithm, reset turns it off.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "store/policy_spec.h"
#include "store/pp_pass.h"
#include "uzram/store.h"

namespace uzram {
namespace {

PolicySpec parse_ok(const std::string& text) {
  PolicySpec s;
  std::string msg;
  EXPECT_TRUE(parse_policy_spec(text, &s, &msg).has_value()) << text << ": " << msg;
  return s;
}

TEST(PolicySpecTest, Modes) {
  EXPECT_EQ(parse_ok("off").mode, PolicyMode::off);
  const PolicySpec c = parse_ok("chromeos");
  EXPECT_EQ(c.mode, PolicyMode::chromeos);
  EXPECT_EQ(c.interval, 3600u);
  EXPECT_EQ(c.backoff, 600u);
  EXPECT_EQ(c.idle_min, 20 * 3600u);
  EXPECT_EQ(c.idle_max, 25 * 3600u);
  ASSERT_EQ(c.norder, 3u);
  EXPECT_EQ(c.order[0], WbKind::huge_idle);
  EXPECT_EQ(c.order[1], WbKind::idle);
  EXPECT_EQ(c.order[2], WbKind::huge);
  EXPECT_FALSE(c.recompress);
  // custom with no keys: the ChromeOS defaults, under its own name.
  const PolicySpec u = parse_ok("custom");
  EXPECT_EQ(u.mode, PolicyMode::custom);
  EXPECT_EQ(format_policy(u, 0).substr(6), format_policy(c, 0).substr(8));
}

TEST(PolicySpecTest, EveryKey) {
  const PolicySpec s = parse_ok(
      "custom interval=90s backoff=2m idle_min=1h idle_max=1d round_min=64K round_max=8M "
      "day_max=1G order=idle,incompressible recompress=huge_idle high=95% low=70 wait=250ms "
      "pressure=recompress,writeback");
  EXPECT_EQ(s.interval, 90u);
  EXPECT_EQ(s.backoff, 120u);
  EXPECT_EQ(s.idle_min, 3600u);
  EXPECT_EQ(s.idle_max, 86400u);
  EXPECT_EQ(s.round_min, 64u << 10);
  EXPECT_EQ(s.round_max, 8u << 20);
  EXPECT_EQ(s.day_max, 1u << 30);
  ASSERT_EQ(s.norder, 2u);
  EXPECT_EQ(s.order[0], WbKind::idle);
  EXPECT_EQ(s.order[1], WbKind::incompressible);
  EXPECT_TRUE(s.recompress);
  EXPECT_EQ(s.recompress_mode, kPpIdle | kPpHuge);
  EXPECT_EQ(s.high, 95u);
  EXPECT_EQ(s.low, 70u);
  EXPECT_EQ(s.wait_ms, 250u);
  EXPECT_TRUE(s.pressure_recompress);
  EXPECT_TRUE(s.pressure_writeback);
  // Bare numbers are seconds; 0 turns rounds and waiting off; none and off empty lists.
  const PolicySpec z = parse_ok(
      "custom interval=0 wait=0 order=none pressure=off day_max=0 "
      "recompress=all idle_min=0 idle_max=0");
  EXPECT_EQ(z.interval, 0u);
  EXPECT_EQ(z.wait_ms, 0u);
  EXPECT_EQ(z.norder, 0u);
  EXPECT_FALSE(z.pressure_writeback || z.pressure_recompress);
  EXPECT_EQ(z.day_max, 0u);
  EXPECT_TRUE(z.recompress);
  EXPECT_EQ(z.recompress_mode, 0u);
  EXPECT_EQ(parse_ok("custom wait=3").wait_ms, 3000u);
  EXPECT_EQ(parse_ok("custom interval=2000ms").interval, 2u);
  EXPECT_EQ(parse_ok("  custom   high=100   low=0 ").high, 100u);
}

TEST(PolicySpecTest, EveryRefusalSaysWhy) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "policy: expects off, chromeos or custom KEY=VALUE ..."},
      {"on", "policy: unknown mode 'on' (off, chromeos or custom)"},
      {"interval=1h", "policy: the mode comes first: off, chromeos or custom (got 'interval=1h')"},
      {"off interval=1h", "policy: off takes no parameters (custom KEY=VALUE ... sets them)"},
      {"chromeos wait=1s", "policy: chromeos takes no parameters (custom KEY=VALUE ... sets them)"},
      {"custom idle", "policy: expected key=value, got 'idle'"},
      {"custom wait=", "policy: wait: empty value"},
      {"custom speed=9",
       "policy: unknown parameter 'speed' (interval, backoff, idle_min, "
       "idle_max, round_min, round_max, day_max, order, recompress, high, "
       "low, wait, pressure)"},
      {"custom interval=1h interval=2h", "policy: interval given twice"},
      {"custom interval=soon",
       "policy: interval=soon: want a duration such as 3600, 90s, 10m, 20h or 1d (at most 365d)"},
      {"custom backoff=-1",
       "policy: backoff=-1: want a duration such as 3600, 90s, 10m, 20h or 1d (at most 365d)"},
      {"custom interval=1w",
       "policy: interval=1w: want a duration such as 3600, 90s, 10m, 20h or 1d (at most 365d)"},
      {"custom idle_max=366d",
       "policy: idle_max=366d: want a duration such as 3600, 90s, 10m, 20h or 1d (at most 365d)"},
      {"custom interval=99999999999999999999",
       "policy: interval=99999999999999999999: want a duration such as 3600, 90s, 10m, 20h or "
       "1d (at most 365d)"},
      {"custom interval=1500ms", "policy: interval=1500ms: whole seconds only"},
      {"custom idle_min=2h idle_max=1h", "policy: idle_min is above idle_max"},
      {"custom round_max=lots",
       "policy: round_max=lots: want a size such as 4096, 64K, 300M or 1G"},
      {"custom round_max=1K", "policy: round_max must be at least 4K (one block)"},
      {"custom round_max=0", "policy: round_max must be at least 4K (one block)"},
      {"custom round_min=2M round_max=1M", "policy: round_min is above round_max"},
      {"custom day_max=100", "policy: day_max must be 0 (no daily cap) or at least 4K (one block)"},
      {"custom order=idle,cold",
       "policy: order: unknown pass 'cold' (huge_idle, idle, huge, incompressible, or none)"},
      {"custom order=idle,idle", "policy: order: pass 'idle' given twice"},
      {"custom order=idle,", "policy: order=idle,: empty item"},
      {"custom order=none,idle",
       "policy: order: unknown pass 'none' (huge_idle, idle, huge, incompressible, or none)"},
      {"custom recompress=yes", "policy: recompress=yes: want off, all, idle, huge or huge_idle"},
      {"custom high=0", "policy: high=0: want a percentage of mem_limit, 1 to 100"},
      {"custom high=101%", "policy: high=101%: want a percentage of mem_limit, 1 to 100"},
      {"custom low=100", "policy: low=100: want a percentage of mem_limit, 0 to 99"},
      {"custom low=half", "policy: low=half: want a percentage of mem_limit, 0 to 99"},
      {"custom high=50 low=60", "policy: low must be below high"},
      {"custom high=80", "policy: low must be below high"},  // the default low is 80
      {"custom wait=61s",
       "policy: wait=61s: want a duration such as 500ms or 2s (at most 60s; 0: no waiting)"},
      {"custom wait=1x",
       "policy: wait=1x: want a duration such as 500ms or 2s (at most 60s; 0: no waiting)"},
      {"custom pressure=swap",
       "policy: pressure: unknown action 'swap' (writeback, recompress, or off)"},
      {"custom pressure=writeback,writeback", "policy: pressure: 'writeback' given twice"},
      {"custom pressure=,writeback", "policy: pressure=,writeback: empty item"},
  };
  for (const auto& [text, want] : cases) {
    PolicySpec s;
    s.interval = 12345;  // untouched by a refusal
    std::string msg;
    auto r = parse_policy_spec(text, &s, &msg);
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error(), Errc::invalid_argument) << text;
    EXPECT_EQ(msg, want) << text;
    EXPECT_EQ(s.interval, 12345u) << text;
  }
}

TEST(PolicySpecTest, DefaultsScaleWithTheBackingDevice) {
  const PolicySpec c = parse_ok("chromeos");
  // No backing device (or the reference 1 GiB one): the ChromeOS figures.
  PolicyParams p = resolve_policy(c, 0);
  EXPECT_EQ(p.round_min_pages, (5u << 20) / 4096);
  EXPECT_EQ(p.round_max_pages, (300u << 20) / 4096);
  EXPECT_EQ(p.day_max_pages, (1u << 30) / 4096);
  EXPECT_EQ(resolve_policy(c, (1u << 30) / 4096).round_max_pages, p.round_max_pages);
  // 4 GiB: four times each.
  p = resolve_policy(c, std::uint64_t{4} << 18);
  EXPECT_EQ(p.round_min_pages, 4 * 1280u);
  EXPECT_EQ(p.round_max_pages, 4 * 76800u);
  EXPECT_EQ(p.day_max_pages, 4 * 262144u);
  // A tiny one: at least a block each, round_min never above round_max.
  p = resolve_policy(c, 15);
  EXPECT_EQ(p.round_min_pages, 1u);
  EXPECT_EQ(p.round_max_pages, 4u);  // 15 * 300 / 1024
  EXPECT_EQ(p.day_max_pages, 15u);
  // Explicit sizes are absolute (rounded down to blocks); day_max 0 stays "no cap".
  p = resolve_policy(parse_ok("custom round_min=10000 round_max=1M day_max=0"), 15);
  EXPECT_EQ(p.round_min_pages, 2u);
  EXPECT_EQ(p.round_max_pages, 256u);
  EXPECT_EQ(p.day_max_pages, 0u);
  // An explicit round_max below the scaled round_min pulls the default round_min down.
  p = resolve_policy(parse_ok("custom round_max=8K"), std::uint64_t{1} << 20);
  EXPECT_EQ(p.round_min_pages, 2u);
}

TEST(PolicySpecTest, TheTextReadBackParsesToTheSameParameters) {
  EXPECT_EQ(format_policy(parse_ok("off"), 0), "off\n");
  EXPECT_EQ(format_policy(parse_ok("chromeos"), 0),
            "chromeos interval=1h backoff=10m idle_min=20h idle_max=25h round_min=5M "
            "round_max=300M day_max=1G order=huge_idle,idle,huge recompress=off high=90 low=80 "
            "wait=2s pressure=writeback\n");
  for (const char* text :
       {"custom", "custom interval=90 backoff=61 idle_min=0 idle_max=7d round_min=0 day_max=0",
        "custom order=none recompress=idle pressure=recompress wait=1500ms high=100 low=0",
        "custom round_max=12345 order=incompressible,huge pressure=off wait=0 interval=0"}) {
    const PolicySpec s = parse_ok(text);
    const std::string shown = format_policy(s, 1000);
    ASSERT_EQ(shown.back(), '\n');
    const PolicySpec again = parse_ok(shown.substr(0, shown.size() - 1));
    EXPECT_EQ(format_policy(again, 1000), shown) << text;
    EXPECT_EQ(resolve_policy(again, 1000).round_max_pages, resolve_policy(s, 1000).round_max_pages);
  }
}

// ---- Through the store -------------------------------------------------------------------

TEST(PolicyAttrTest, WrittenAnyTimeShownResolvedRefusalsChangeNothing) {
  auto st = std::move(Store::create().value());
  EXPECT_EQ(st->read_attr("policy").value(), "off\n");
  std::string msg;
  ASSERT_TRUE(st->write_attr("policy", "chromeos", &msg)) << msg;  // before disksize
  ASSERT_TRUE(st->write_attr("disksize", "1M", &msg)) << msg;
  EXPECT_EQ(st->read_attr("policy").value().rfind("chromeos interval=1h ", 0), 0u);
  EXPECT_EQ(st->write_attr("policy", "custom interval=soon", &msg).error(), Errc::invalid_argument);
  EXPECT_EQ(msg.rfind("policy: interval=soon", 0), 0u) << msg;
  EXPECT_EQ(st->read_attr("policy").value().rfind("chromeos ", 0), 0u);  // unchanged
  ASSERT_TRUE(st->write_attr("policy", "custom interval=2h wait=0", &msg)) << msg;
  EXPECT_NE(st->read_attr("policy").value().find(" interval=2h "), std::string::npos);
  // Recompression needs a recompression algorithm (configured before disksize).
  EXPECT_EQ(st->write_attr("policy", "custom recompress=idle", &msg).error(),
            Errc::invalid_argument);
  EXPECT_EQ(msg,
            "policy: recompress= needs a recompression algorithm (write recomp_algorithm "
            "before disksize)");
  EXPECT_EQ(st->write_attr("policy", "custom pressure=recompress", &msg).error(),
            Errc::invalid_argument);
  EXPECT_EQ(msg,
            "policy: pressure=recompress needs a recompression algorithm (write "
            "recomp_algorithm before disksize)");
  EXPECT_EQ(st->read_attr("policy_stat").value(),
            "       0        0        0        0        0        0        0        0        0"
            "        0        0        0        0        0        0        0        0        0\n");
  // reset: off again, like every setting.
  ASSERT_TRUE(st->write_attr("reset", "1", &msg)) << msg;
  EXPECT_EQ(st->read_attr("policy").value(), "off\n");
}

TEST(PolicyAttrTest, RecompressionWithAnAlgorithm) {
  auto st = std::move(Store::create().value());
  std::string msg;
  ASSERT_TRUE(st->write_attr("recomp_algorithm", "algo=zstd", &msg)) << msg;
  ASSERT_TRUE(st->write_attr("policy", "custom recompress=huge pressure=recompress", &msg)) << msg;
  ASSERT_TRUE(st->write_attr("disksize", "1M", &msg)) << msg;
  EXPECT_NE(st->read_attr("policy").value().find(" recompress=huge "), std::string::npos);
  EXPECT_NE(st->read_attr("policy").value().find(" pressure=recompress\n"), std::string::npos);
}

}  // namespace
}  // namespace uzram

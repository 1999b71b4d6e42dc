// store/attr_table_test.cc - the attribute table (store/attr_table.h): the public queries
// answer from it (attr_info, attr_names, attr_readable, attr_writable), and each flag
// means what it says on a real store: before_init attributes are refused with busy once
// initialised and accepted before; the needs-init ones are refused before disksize; a
// trigger's empty value means 1 and no other attribute gets that.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "store/attr_table.h"
#include "uzram/store.h"

namespace uzram {
namespace {

// A value each before-init attribute accepts on a fresh store.
std::string good_value(std::string_view attr) {
  if (attr == "comp_algorithm") return "lz4";
  if (attr == "algorithm_params") return "algo=lzo-rle";  // the default algorithm
  if (attr == "recomp_algorithm") return "algo=zstd";
  if (attr == "backing_dev") return "none";
  if (attr == "compressed_writeback") return "1";
  if (attr == "unit_size") return "32K";
  return "";
}

TEST(AttrTableTest, PublicQueriesMatchTheTable) {
  const auto names = Store::attr_names();
  ASSERT_EQ(names.size(), attr_table().size());
  std::set<std::string> seen;
  for (std::size_t i = 0; i < names.size(); i++) {
    const AttrDef& row = attr_table()[i];
    EXPECT_EQ(names[i], row.name);
    EXPECT_TRUE(seen.insert(names[i]).second) << "duplicate " << names[i];
    const auto info = Store::attr_info(names[i]);
    ASSERT_TRUE(info) << names[i];
    EXPECT_EQ(info->readable, row.read != nullptr) << names[i];
    EXPECT_EQ(info->writable, row.write != nullptr) << names[i];
    EXPECT_EQ(info->readable, Store::attr_readable(names[i])) << names[i];
    EXPECT_EQ(info->writable, Store::attr_writable(names[i])) << names[i];
    EXPECT_EQ(info->before_init, (row.flags & attrf::kBeforeInit) != 0) << names[i];
    EXPECT_EQ(info->trigger, (row.flags & attrf::kTrigger) != 0) << names[i];
    EXPECT_TRUE(info->readable || info->writable) << names[i];
  }
  EXPECT_FALSE(Store::attr_info("nosuch"));
  EXPECT_FALSE(Store::attr_info(""));
  EXPECT_FALSE(Store::attr_readable("nosuch"));
  EXPECT_FALSE(Store::attr_writable("nosuch"));
}

TEST(AttrTableTest, TheKernelsSets) {
  std::set<std::string> before, triggers, ro, wo;
  for (const std::string& n : Store::attr_names()) {
    const AttrInfo i = *Store::attr_info(n);
    if (i.before_init) before.insert(n);
    if (i.trigger) triggers.insert(n);
    if (!i.writable) ro.insert(n);
    if (!i.readable) wo.insert(n);
  }
  EXPECT_EQ(before, (std::set<std::string>{"comp_algorithm", "algorithm_params", "recomp_algorithm",
                                           "backing_dev", "compressed_writeback", "unit_size"}));
  // writeback_compact is uzram's (packed writeback's reclamation), as backing_timeout_ms.
  EXPECT_EQ(triggers, (std::set<std::string>{"compact", "writeback_compact"}));
  EXPECT_EQ(
      ro, (std::set<std::string>{"initstate", "io_stat", "mm_stat", "debug_stat", "bd_stat",
                                 "block_state", "classes", "memory", "policy_stat", "unit_stat"}));
  EXPECT_EQ(wo, (std::set<std::string>{"reset", "compact", "mem_limit", "mem_used_max", "idle",
                                       "algorithm_params", "writeback", "recompress",
                                       "writeback_compact"}));
}

TEST(AttrTableTest, BeforeInitAttributesAreRefusedOnceInitialised) {
  for (const std::string& n : Store::attr_names()) {
    if (!Store::attr_info(n)->before_init) continue;
    auto fresh = std::move(Store::create().value());
    std::string msg;
    EXPECT_TRUE(fresh->write_attr(n, good_value(n), &msg)) << n << ": " << msg;
    auto st = std::move(Store::create().value());
    ASSERT_TRUE(st->write_attr("disksize", "1M"));
    msg.clear();
    EXPECT_EQ(st->write_attr(n, good_value(n), &msg).error(), Errc::busy) << n;
    EXPECT_EQ(msg.rfind(n + ":", 0), 0u) << msg;
  }
}

// A writer exactly when writable, a reader exactly when readable, a parser for every
// writable row but a trigger's (whose value is unread).
TEST(AttrTableTest, RowsAreConsistent) {
  for (const AttrDef& row : attr_table()) {
    const bool r = row.mode != AttrMode::wo, w = row.mode != AttrMode::ro;
    EXPECT_EQ(row.read != nullptr, r) << row.name;
    EXPECT_EQ(row.write != nullptr, w) << row.name;
    if (w && !(row.flags & attrf::kTrigger)) {
      EXPECT_NE(row.parse, nullptr) << row.name;
    }
  }
}

TEST(AttrTableTest, NeedsInitRowsAreRefusedBeforeDisksize) {
  for (const AttrDef& row : attr_table()) {
    if (!(row.flags & attrf::kNeedsInit)) continue;
    auto st = std::move(Store::create().value());
    std::string msg;
    const std::string n(row.name);
    EXPECT_EQ(st->write_attr(n, "garbage", &msg).error(), Errc::invalid_argument) << n;
    EXPECT_EQ(msg, n + ": device not initialised (set disksize first)");
  }
}

TEST(AttrTableTest, OnlyATriggerTakesAnEmptyValue) {
  auto st = std::move(Store::create().value());
  ASSERT_TRUE(st->write_attr("disksize", "1M"));
  std::string msg;
  EXPECT_TRUE(st->write_attr("compact", "", &msg)) << msg;
  EXPECT_TRUE(st->write_attr("compact", " \n", &msg)) << msg;
  EXPECT_EQ(st->write_attr("reset", "", &msg).error(), Errc::invalid_argument);
  EXPECT_NE(msg.find("give the value"), std::string::npos) << msg;
  EXPECT_EQ(st->write_attr("mem_limit", "", &msg).error(), Errc::invalid_argument);
  EXPECT_EQ(st->write_attr("idle", "", &msg).error(), Errc::invalid_argument);
  EXPECT_EQ(st->read_attr("initstate").value(), "1\n");  // nothing was reset
}

TEST(AttrTableTest, WrongDirectionAndUnknownNames) {
  auto st = std::move(Store::create().value());
  std::string msg;
  EXPECT_EQ(st->write_attr("mm_stat", "1", &msg).error(), Errc::not_supported);
  EXPECT_EQ(msg, "mm_stat: read-only attribute");
  EXPECT_EQ(st->read_attr("compact", &msg).error(), Errc::not_supported);
  EXPECT_EQ(msg, "compact: write-only attribute");
  EXPECT_EQ(st->write_attr("nosuch", "1", &msg).error(), Errc::invalid_argument);
  EXPECT_EQ(msg, "nosuch: no such attribute");
  EXPECT_EQ(st->read_attr("nosuch", &msg).error(), Errc::invalid_argument);
  EXPECT_EQ(msg, "nosuch: no such attribute");
}

}  // namespace
}  // namespace uzram

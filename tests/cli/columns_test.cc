// cli/columns_test.cc - the column table: -o parsing, human sizes, and the aligned, raw and
// JSON renderings against golden strings.
#include <gtest/gtest.h>

#include "cli/columns.h"
#include "cli/json.h"

namespace uzram::cli {
namespace {

std::vector<StoreRow> rows() {
  StoreRow a;
  a.name = "zram0";
  a.initialized = true;
  a.disksize = 1ULL << 30;
  a.algorithm = "lz4";
  a.streams = 4;
  a.mm = {268435456, 100000000, 104857600, 0, 110100480, 1000, 12, 34, 40};
  a.zspages = 5000;
  a.objs_allocated = 10000;
  a.objs_used = 9000;
  a.users = 2;
  a.mem = {104857600, 4194304, 1048576, 65536, 24800};
  a.read_rate = 12.345;
  a.write_rate = 0;
  a.compact_rate = 0.5;
  a.wb_rate = 0;
  StoreRow b;
  b.name = "zram1";
  b.initialized = true;
  b.disksize = 64ULL << 20;
  b.algorithm = "zstd";
  b.unit_size = 32768;
  b.streams = 4;
  b.mm.mem_limit = 32ULL << 20;
  return {a, b};
}

std::vector<std::size_t> cols(const char* list) {
  std::vector<std::size_t> c;
  std::string err;
  EXPECT_TRUE(parse_columns(list, &c, &err)) << err;
  return c;
}

TEST(ColumnsTest, HumanSize) {
  EXPECT_EQ(human_size(0), "0B");
  EXPECT_EQ(human_size(1023), "1023B");
  EXPECT_EQ(human_size(1024), "1K");
  EXPECT_EQ(human_size(1536), "1.5K");
  EXPECT_EQ(human_size(100000000), "95.4M");
  EXPECT_EQ(human_size(1ULL << 30), "1G");
  EXPECT_EQ(human_size((1ULL << 20) - 1), "1M");  // 1023.999K rounds up a unit
  EXPECT_EQ(human_size(5ULL << 60), "5E");
  EXPECT_EQ(human_size(UINT64_MAX), "16E");
}

TEST(ColumnsTest, ParseLists) {
  const auto d = default_columns();
  ASSERT_EQ(d.size(), 8u);
  EXPECT_EQ(cols("NAME,ALGORITHM,UNIT,DISKSIZE,DATA,COMPR,TOTAL,STREAMS"), d);
  EXPECT_EQ(cols("name,Comp-Ratio").size(), 2u);  // case-insensitive
  auto plus = cols("+COMP-RATIO");
  EXPECT_EQ(plus.size(), 9u);
  EXPECT_EQ(std::string(columns()[plus.back()].name), "COMP-RATIO");
  EXPECT_EQ(all_columns().size(), columns().size());
  std::vector<std::size_t> c;
  std::string err;
  EXPECT_FALSE(parse_columns("NAME,BOGUS", &c, &err));
  EXPECT_EQ(err, "unknown column: BOGUS");
  EXPECT_FALSE(parse_columns("NAME,", &c, &err));
  EXPECT_FALSE(parse_columns("", &c, &err));
}

TEST(ColumnsTest, HelpListsEveryColumn) {
  const std::string h = columns_help();
  for (const Column& c : columns())
    EXPECT_NE(h.find(std::string(c.name) + "  "), std::string::npos) << c.name;
  EXPECT_NE(h.find("   COMP-RATIO  compression ratio: DATA/TOTAL\n"), std::string::npos) << h;
}

TEST(ColumnsTest, DefaultTable) {
  EXPECT_EQ(render(rows(), default_columns(), {}),
            "NAME  ALGORITHM UNIT DISKSIZE DATA COMPR TOTAL STREAMS\n"
            "zram0 lz4         4K       1G 256M 95.4M  100M       4\n"
            "zram1 zstd       32K      64M   0B    0B    0B       4\n");
}

TEST(ColumnsTest, UnitInBytesAndJson) {
  RenderOptions o;
  o.bytes = true;
  EXPECT_EQ(render(rows(), cols("NAME,UNIT"), o), "NAME   UNIT\nzram0  4096\nzram1 32768\n");
  RenderOptions json;
  json.json = true;
  EXPECT_EQ(render(rows(), cols("NAME,UNIT"), json),
            "{\n  \"stores\": [\n    {\n      \"name\": \"zram0\",\n      \"unit\": \"4K\"\n"
            "    },\n    {\n      \"name\": \"zram1\",\n      \"unit\": \"32K\"\n    }\n  ]\n}\n");
}

TEST(ColumnsTest, BytesAndNoHeadings) {
  RenderOptions o;
  o.bytes = true;
  o.noheadings = true;
  EXPECT_EQ(render(rows(), cols("NAME,DATA,MEM-LIMIT,COMP-RATIO"), o),
            "zram0 268435456        0 2.56\n"
            "zram1         0 33554432    -\n");
}

TEST(ColumnsTest, AllColumns) {
  EXPECT_EQ(
      render(rows(), all_columns(), {}),
      "NAME  DISKSIZE DATA COMPR ALGORITHM UNIT STREAMS ZERO-PAGES TOTAL MEM-LIMIT MEM-USED "
      "MIGRATED COMP-RATIO HUGE-PAGES ZSPAGES FRAG% "
      "USERS RESIDENT POOL-FRAMES POOL-IDLE POOL-META SLOT-TABLE STREAMS-MEM READ-MB/S "
      "WRITE-MB/S COMPACT-MB/S WB-MB/S\n"
      "zram0       1G 256M 95.4M lz4         4K       4       1000  100M        0B     105M       "
      "12       2.56         34    5000  10.0 "
      "    2   105.1M        100M        4M        1M        64K       24.2K     12.35       "
      "0.00         0.50    0.00\n"
      "zram1      64M   0B    0B zstd       32K       4          0    0B       32M       0B       "
      " 0          -          0       0   0.0 "
      "    0       0B          0B        0B        0B         0B          0B         -       "
      "   -            -       -\n");
}

TEST(ColumnsTest, MemoryAndRates) {
  EXPECT_EQ(render(rows(),
                   cols("NAME,USERS,RESIDENT,POOL-FRAMES,POOL-IDLE,POOL-META,SLOT-TABLE,"
                        "STREAMS-MEM,READ-MB/S,write-mb/s,COMPACT-MB/S,WB-MB/S"),
                   {}),
            "NAME  USERS RESIDENT POOL-FRAMES POOL-IDLE POOL-META SLOT-TABLE STREAMS-MEM READ-MB/S "
            "WRITE-MB/S COMPACT-MB/S WB-MB/S\n"
            "zram0     2   105.1M        100M        4M        1M        64K       24.2K     12.35 "
            "      0.00         0.50    0.00\n"
            "zram1     0       0B          0B        0B        0B         0B          0B         - "
            "         -            -       -\n");
  RenderOptions json;
  json.json = true;
  json.bytes = true;
  EXPECT_EQ(
      render(rows(), cols("NAME,RESIDENT,READ-MB/S"), json),
      "{\n  \"stores\": [\n    {\n      \"name\": \"zram0\",\n      \"resident\": 110190816,\n"
      "      \"read-mb/s\": 12.35\n    },\n    {\n      \"name\": \"zram1\",\n"
      "      \"resident\": 0,\n      \"read-mb/s\": null\n    }\n  ]\n}\n");
}

TEST(ColumnsTest, ColourWrapsCellsNotPadding) {
  RenderOptions o;
  o.colour = true;
  EXPECT_EQ(render(rows(), cols("NAME,READ-MB/S,WRITE-MB/S"), o),
            "\033[1mNAME\033[0m  \033[1mREAD-MB/S\033[0m \033[1mWRITE-MB/S\033[0m\n"
            "zram0     \033[32m12.35\033[0m       0.00\n"
            "zram1         -          -\n");
  o.raw = true;  // the raw and JSON formats are never coloured
  EXPECT_EQ(render(rows(), cols("NAME"), o).find('\033'), std::string::npos);
}

TEST(ColumnsTest, Raw) {
  auto r = rows();
  r[1].name = "my store\\x";
  RenderOptions o;
  o.raw = true;
  EXPECT_EQ(render(r, cols("NAME,ALGORITHM,TOTAL,COMP-RATIO"), o),
            "NAME ALGORITHM TOTAL COMP-RATIO\n"
            "zram0 lz4 100M 2.56\n"
            "my\\x20store\\x5cx zstd 0B -\n");
}

TEST(ColumnsTest, Json) {
  RenderOptions o;
  o.json = true;
  EXPECT_EQ(render(rows(), cols("NAME,DISKSIZE,ZERO-PAGES,COMP-RATIO,FRAG%"), o),
            "{\n"
            "  \"stores\": [\n"
            "    {\n"
            "      \"name\": \"zram0\",\n"
            "      \"disksize\": \"1G\",\n"
            "      \"zero-pages\": 1000,\n"
            "      \"comp-ratio\": 2.56,\n"
            "      \"frag%\": 10.0\n"
            "    },\n"
            "    {\n"
            "      \"name\": \"zram1\",\n"
            "      \"disksize\": \"64M\",\n"
            "      \"zero-pages\": 0,\n"
            "      \"comp-ratio\": null,\n"
            "      \"frag%\": 0.0\n"
            "    }\n"
            "  ]\n"
            "}\n");
  o.bytes = true;
  const std::string b = render(rows(), cols("DISKSIZE"), o);
  EXPECT_NE(b.find("\"disksize\": 1073741824\n"), std::string::npos) << b;
  EXPECT_EQ(render({}, cols("NAME"), o), "{\n  \"stores\": []\n}\n");
}

TEST(JsonTest, FixedNumbersAndText) {
  Json doc = Json::object();
  doc["k"] = "v";
  doc["a"] = Json::array({Json(std::uint64_t{1}), Json(nullptr), Json(true)});
  doc["o"] = Json::object();
  doc["x"] = fixed_number(0.5, 3);
  doc["r"] = fixed_number(2.0 / 3.0, 4);
  doc["n"] = fixed_number(__builtin_nan(""), 2);
  doc["i"] = fixed_number(__builtin_inf(), 2);
  doc["t"] = fixed_number(10.0, 2);
  EXPECT_EQ(json_text(doc),
            "{\n  \"k\": \"v\",\n  \"a\": [\n    1,\n    null,\n    true\n  ],\n  \"o\": {},\n"
            "  \"x\": 0.5,\n  \"r\": 0.6667,\n  \"n\": null,\n  \"i\": null,\n  \"t\": 10.0\n}\n");
}

TEST(JsonTest, EscapesAndInvalidUtf8DoNotThrow) {
  Json doc = Json::object();
  doc["s"] = "a\"b\\c\n\x01";
  doc["bad"] = "x\xff\xfey";  // not UTF-8: each bad byte becomes U+FFFD
  doc["ok"] = "caf\xc3\xa9";  // UTF-8 passes through
  EXPECT_EQ(json_text(doc),
            "{\n  \"s\": \"a\\\"b\\\\c\\n\\u0001\",\n  \"bad\": \"x\xef\xbf\xbd\xef\xbf\xbdy\",\n"
            "  \"ok\": \"caf\xc3\xa9\"\n}\n");
}

TEST(ColumnsTest, JsonWithInvalidUtf8Name) {
  auto r = rows();
  r[0].name = "bad\x80name";
  RenderOptions o;
  o.json = true;
  EXPECT_EQ(render(r, cols("NAME"), o),
            "{\n  \"stores\": [\n    {\n      \"name\": \"bad\xef\xbf\xbdname\"\n    },\n"
            "    {\n      \"name\": \"zram1\"\n    }\n  ]\n}\n");
}

}  // namespace
}  // namespace uzram::cli

// cli/load_report.h - the report of `uzram load`: human-readable text or one JSON object
// (layer 5, cli).
#ifndef UZRAM_CLI_LOAD_REPORT_H_
#define UZRAM_CLI_LOAD_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cli/columns.h"
#include "cli/json.h"
#include "uzram/store.h"

namespace uzram::cli {

struct LoadResult {
  std::string image;
  std::uint64_t image_bytes = 0;
  std::uint64_t failed_writes = 0;  // blocks refused for lack of memory (mem_limit)
  double seconds = 0;               // the load itself, without --then
  struct Then {
    std::string command;
    double seconds;
  };
  std::vector<Then> then;
};

// The table row of a live store (what INFO reports over the control socket).
[[nodiscard]] StoreRow row_of(const Store& store);

[[nodiscard]] std::string load_report_text(const Store& store, const LoadResult& result);
[[nodiscard]] std::string load_report_json(const Store& store, const LoadResult& result);
[[nodiscard]] Json load_report_doc(const Store& store, const LoadResult& result);

// `uzram load --unit-size A,B,...`: one load per unit size, compared. A run is what its
// store said after the load (the store itself is gone by then).
struct UnitRun {
  std::uint64_t unit_size = 0;
  std::string algorithm;
  unsigned streams = 0;
  std::uint64_t disksize = 0;
  MmStat mm;
  UnitStat units;
  LoadResult result;
  std::string json;  // its whole --json report (load_report_json)
};
[[nodiscard]] std::string unit_comparison_text(const std::vector<UnitRun>& runs);
[[nodiscard]] std::string unit_comparison_json(const std::vector<UnitRun>& runs);

}  // namespace uzram::cli

#endif  // UZRAM_CLI_LOAD_REPORT_H_

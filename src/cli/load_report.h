// cli/load_report.h - the report of `uzram load`: human-readable text or one JSON object
// (layer 5, cli).
#ifndef UZRAM_CLI_LOAD_REPORT_H_
#define UZRAM_CLI_LOAD_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cli/columns.h"
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

}  // namespace uzram::cli

#endif  // UZRAM_CLI_LOAD_REPORT_H_

// cli/serve_setup.h - `uzram serve`'s command line checked before anything is created:
// the -o attributes split around disksize, the limits, TLS, --swap and --metrics
// (serve_setup.cc); serve.cc acts on the result.
#ifndef UZRAM_CLI_SERVE_SETUP_H_
#define UZRAM_CLI_SERVE_SETUP_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cli/metrics.h"
#include "cli/serve.h"
#include "cli/swap.h"

namespace uzram::cli {

// What the command line says, checked before anything is created.
struct ServeSetup {
  std::vector<std::pair<std::string, std::string>> before, after;  // -o, around disksize
  std::uint64_t size = 0;
  std::chrono::milliseconds handshake_timeout{10'000}, send_timeout{30'000};
  std::string tls_mode;              // off, on or require
  std::uint64_t swap_mem_limit = 0;  // --swap: the mem_limit the pool is sized for
  MetricsAddress metrics;            // --metrics; port empty: none
};

// Fills *setup from the options; kExitOk, or the usage error's exit status (reported).
int parse_serve_options(const ServeOptions& o, const Io& io, ServeSetup* setup);

// What --swap will lock besides what is mapped when it locks: each connection's buffers,
// stacks (its thread and workers) and handshake.
SwapBudget swap_budget(const ServeOptions& o, const ServeSetup& setup);

}  // namespace uzram::cli

#endif  // UZRAM_CLI_SERVE_SETUP_H_

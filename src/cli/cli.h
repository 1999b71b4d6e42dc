// cli/cli.h - the `uzram` command line (layer 5, cli): entry point, exit statuses, the
// subcommands' options and runners. Each subcommand lives in its own file (load.cc,
// ctl.cc, status.cc); app.cc parses the command line (CLI11) and dispatches.
//
// Exit statuses (docs/uzram.md#exit-status): 0 success; 1 usage error (bad option,
// argument, column or attr=value syntax); 2 the store, the server or the system refused an
// operation (attribute error, unreadable image, failed load); 3 no control socket could be
// reached (ctl, or status with an explicit --control).
#ifndef UZRAM_CLI_CLI_H_
#define UZRAM_CLI_CLI_H_

#include <cstdio>
#include <string>
#include <system_error>
#include <vector>

namespace uzram::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;
inline constexpr int kExitFailed = 2;
inline constexpr int kExitUnreachable = 3;

// Where a command writes. `progress`: stderr is a terminal, so `load` may draw its bar.
struct Io {
  std::FILE* out = stdout;
  std::FILE* err = stderr;
  bool progress = false;
};

// Runs `uzram ARGS...`; never throws (CLI11's exceptions are caught in app.cc).
int run(int argc, const char* const* argv, const Io& io) noexcept;

// Prints "uzram SUB: MESSAGE" on io.err; MESSAGE is `message`, or the error's own text
// when empty. The one place an error becomes text (B6).
void report(const Io& io, const char* sub, std::error_code ec, const std::string& message);
// A usage error: the message, then "Try 'uzram --help' for more information."; kExitUsage.
int usage_error(const Io& io, const std::string& message);

struct LoadOptions {
  std::string image;
  std::string algo;                // --algo; empty: the store's default
  std::string size;                // --size; empty: the image size rounded up to 4 KiB
  std::vector<std::string> attrs;  // -o attr=value
  std::vector<std::string> then;   // --then 'attr [value]'
  // --unit-size SIZE[,SIZE...]: one size is -o unit_size=SIZE; several load the image once
  // per size and print a comparison (docs/uzram.md#load).
  std::string unit_sizes;
  bool json = false;
  unsigned jobs = 1;  // -j: loader threads
};
int run_load(const LoadOptions& options, const Io& io) noexcept;

struct CtlOptions {
  std::string control;  // socket; empty: default_control_socket()
  std::string device;   // --store (-d, --device): store name; empty: zram0 (or the first)
  std::string attr;
  std::vector<std::string> value;  // empty: read
};
int run_ctl(const CtlOptions& options, const Io& io) noexcept;

struct StatusOptions {
  std::vector<std::string> control;  // empty: every *.sock in default_control_dir()
  std::string output;                // -o list
  bool output_all = false;
  bool bytes = false;
  bool noheadings = false;
  bool raw = false;
  bool json = false;
  std::string watch;  // --watch SECONDS: refresh with rates until interrupted
};
int run_status(const StatusOptions& options, const Io& io) noexcept;

}  // namespace uzram::cli

#endif  // UZRAM_CLI_CLI_H_

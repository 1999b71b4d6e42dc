// cli/progress.h - Progress: a one-line progress bar on stderr for `uzram load`, drawn
// only when stderr is a terminal (Io::progress), at most ten times a second.
#ifndef UZRAM_CLI_PROGRESS_H_
#define UZRAM_CLI_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <cstdio>

namespace uzram::cli {

class Progress {
 public:
  Progress(std::FILE* out, std::uint64_t total_bytes, bool enabled);
  ~Progress() { finish(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Redraws if 100 ms passed since the last draw.
  void update(std::uint64_t done_bytes);
  // Erases the line (once).
  void finish();

 private:
  std::FILE* out_;
  std::uint64_t total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace uzram::cli

#endif  // UZRAM_CLI_PROGRESS_H_

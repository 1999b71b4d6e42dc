// cli/log_sink.h - LogSink: where `uzram serve -v` writes its log lines. A line is written
// whole or dropped, never waited for: the server's threads log while serving, and a
// stderr that nobody reads (a full pipe, `2>&1 | head` after head exited, a stopped
// terminal) must neither block them nor fail them. Pipes and terminals are written through
// a non-blocking descriptor of their own (reopened from /proc/self/fd, so the shared
// descriptor's flags stay untouched); regular files are written directly. Lines that could
// not be written are counted and reported with the next line that can. SIGPIPE must be
// ignored (uzram serve does): a closed pipe is then an EPIPE, dropped like the rest.
#ifndef UZRAM_CLI_LOG_SINK_H_
#define UZRAM_CLI_LOG_SINK_H_

#include <cstdio>
#include <string_view>

#include "sync/mutex.h"

namespace uzram::cli {

class LogSink {
 public:
  explicit LogSink(std::FILE* out) noexcept;
  ~LogSink();
  LogSink(const LogSink&) = delete;
  LogSink& operator=(const LogSink&) = delete;

  // Writes "uzram serve: LINE\n" (LINE cut at 1000 bytes). Any thread; never blocks on
  // the output, never throws.
  void write(std::string_view line) noexcept;

 private:
  void write_raw(const char* p, std::size_t n) noexcept ZS_REQUIRES(mu_);

  std::FILE* file_;  // fallback when `out` has no descriptor (a memory stream)
  int fd_ = -1;
  bool own_fd_ = false;
  bool socket_ = false;
  // Protects dropped_ and keeps lines whole. A leaf. Level: log_sink.
  Mutex mu_{LockLevel::log_sink, "log_sink"};
  unsigned long dropped_ ZS_GUARDED_BY(mu_) = 0;
};

}  // namespace uzram::cli

#endif  // UZRAM_CLI_LOG_SINK_H_

// nbd/log.h - the server's log sink, and a formatter that never allocates or throws (a
// connection may be logged about when memory is what ran out).
#ifndef UZRAM_NBD_LOG_H_
#define UZRAM_NBD_LOG_H_

#include <cstdarg>
#include <cstdio>
#include <functional>
#include <string_view>

namespace uzram::nbd {

// Receives one line, without its newline. Called from any server thread, concurrently;
// must not throw and should not block for long (cli/serve.cc queues lines to a writer).
using LogFn = std::function<void(std::string_view)>;

// printf-style, into a stack buffer (longer lines are cut at 511 bytes).
inline void logf(const LogFn& log, const char* fmt, ...) noexcept
    __attribute__((format(printf, 2, 3)));
inline void logf(const LogFn& log, const char* fmt, ...) noexcept {
  if (!log) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  log(std::string_view(buf, static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n)
                                                                     : sizeof buf - 1));
}

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_LOG_H_

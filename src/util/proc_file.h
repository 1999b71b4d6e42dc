// util/proc_file.h - read_proc_file(): the whole of a /proc file (layer 0).
#ifndef UZRAM_UTIL_PROC_FILE_H_
#define UZRAM_UTIL_PROC_FILE_H_

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "uzram/result.h"

namespace uzram {

// Reads `path` to its end. /proc files are generated on read, so their size says nothing:
// read until read() returns 0 (or fails: what was read so far is returned). Errors: the
// open's errno. Allocates (the caller handles std::bad_alloc where it must not throw).
inline Result<std::string> read_proc_file(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::error_code(errno, std::generic_category());
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace uzram

#endif  // UZRAM_UTIL_PROC_FILE_H_

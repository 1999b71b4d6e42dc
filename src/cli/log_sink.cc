// cli/log_sink.cc - non-blocking, non-failing log lines (see log_sink.h).
#include "cli/log_sink.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace uzram::cli {

LogSink::LogSink(std::FILE* out) noexcept : file_(out) {
  const int fd = out ? ::fileno(out) : -1;
  if (fd < 0) return;
  fd_ = fd;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
    return;  // never blocks for long
  if (S_ISSOCK(st.st_mode)) {
    socket_ = true;  // send(MSG_DONTWAIT)
    return;
  }
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  const int nb = ::open(path, O_WRONLY | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (nb >= 0) {
    fd_ = nb;
    own_fd_ = true;
  }
}

LogSink::~LogSink() {
  if (own_fd_) ::close(fd_);
}

void LogSink::write_raw(const char* p, std::size_t n) noexcept {
  if (fd_ < 0) {
    if (std::fwrite(p, 1, n, file_) != n) dropped_++;
    std::fflush(file_);
    return;
  }
  for (;;) {
    const ssize_t r = socket_ ? ::send(fd_, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : ::write(fd_, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r != static_cast<ssize_t>(n)) dropped_++;  // full, closed, or cut short: dropped
    return;
  }
}

void LogSink::write(std::string_view line) noexcept {
  char buf[1100];
  MutexLock l(mu_);
  if (dropped_ > 0) {
    const unsigned long was = dropped_;
    const int n = std::snprintf(buf, sizeof buf,
                                "uzram serve: (%lu log lines dropped: output blocked)\n", was);
    dropped_ = 0;
    write_raw(buf, static_cast<std::size_t>(n));
    if (dropped_ > 0) {  // still blocked: this line goes too
      dropped_ = was + 1;
      return;
    }
  }
  const int len = line.size() > 1000 ? 1000 : static_cast<int>(line.size());
  const int n = std::snprintf(buf, sizeof buf, "uzram serve: %.*s\n", len, line.data());
  write_raw(buf, static_cast<std::size_t>(n));
}

}  // namespace uzram::cli

// cli/progress.cc - Progress.
#include "cli/progress.h"

#include <fmt/format.h>

#include <algorithm>

namespace uzram::cli {

Progress::Progress(std::FILE* out, std::uint64_t total_bytes, bool enabled)
    : out_(out),
      total_(total_bytes),
      enabled_(enabled && total_bytes > 0),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

void Progress::update(std::uint64_t done) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  constexpr int kWidth = 30;
  const double f = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
  const int fill = static_cast<int>(f * kWidth);
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double mbs = secs > 0 ? static_cast<double>(done) / 1e6 / secs : 0;
  fmt::print(out_, "\rloading [{:#<{}}{:<{}}] {:3.0f}% {:.1f} MB/s", "", fill, "", kWidth - fill,
             f * 100, mbs);
  std::fflush(out_);
  drawn_ = true;
}

void Progress::finish() {
  if (!drawn_) return;
  fmt::print(out_, "\r\033[K");
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace uzram::cli

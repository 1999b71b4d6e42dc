// nbd/deadline.h - Deadline: an absolute limit on the monotonic clock (the handshake's
// budget), and waits on a socket bounded by it.
#ifndef UZRAM_NBD_DEADLINE_H_
#define UZRAM_NBD_DEADLINE_H_

#include <poll.h>

#include <cerrno>
#include <chrono>

namespace uzram::nbd {

using Clock = std::chrono::steady_clock;

class Deadline {
 public:
  Deadline() noexcept = default;  // none: waits are unbounded
  explicit Deadline(Clock::time_point at) noexcept : at_(at), set_(true) {}
  static Deadline after(std::chrono::milliseconds d) noexcept { return Deadline(Clock::now() + d); }

  [[nodiscard]] bool set() const noexcept { return set_; }
  [[nodiscard]] Clock::time_point at() const noexcept { return at_; }
  [[nodiscard]] bool passed() const noexcept { return set_ && Clock::now() >= at_; }
  // Milliseconds left, rounded up, for poll(): -1 without a deadline, 0 once it passed.
  [[nodiscard]] int poll_ms() const noexcept {
    if (!set_) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(at_ - Clock::now()).count();
    return left <= 0 ? 0 : left > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(left);
  }

 private:
  Clock::time_point at_{};
  bool set_ = false;
};

// Waits until fd is ready for `events` (or has an error or hang-up, which the next I/O call
// reports). False, with errno ETIMEDOUT, when the deadline passes first.
inline bool wait_fd(int fd, short events, const Deadline& d) noexcept {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, d.poll_ms());
    if (r > 0) return true;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return true;  // let the I/O call fail with its own errno
    errno = ETIMEDOUT;
    return false;
  }
}

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_DEADLINE_H_

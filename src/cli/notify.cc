// cli/notify.cc - sd_notify(3) messages (see notify.h).
#include "cli/notify.h"

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace uzram::cli {

void notify_ready(const std::string& status) noexcept {
  // STATUS= is one line: the URI has no newline.
  (void)sd_notifyf(0, "READY=1\nSTATUS=%s\nMAINPID=%lu", status.c_str(),
                   static_cast<unsigned long>(::getpid()));
}

void notify_reloading() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const unsigned long long usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                                  static_cast<unsigned long long>(ts.tv_nsec) / 1000;
  (void)sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

void notify_stopping() noexcept { (void)sd_notify(0, "STOPPING=1\nSTATUS=stopping"); }

}  // namespace uzram::cli

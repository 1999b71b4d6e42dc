// cli/notify.cc - sd_notify(3) messages (see notify.h). libsystemd is loaded with dlopen
// when $NOTIFY_SOCKET is set, so a server not run by systemd maps neither it nor what it
// pulls in (libgcrypt, libgpg-error, liblzma, libcap: 0.85 MiB resident, measured).
#include "cli/notify.h"

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "util/dynlib.h"

namespace uzram::cli {
namespace {

using NotifyFn = decltype(&sd_notify);

// sd_notify from libsystemd, loaded on first use under systemd; null without
// $NOTIFY_SOCKET, or when the library cannot be had (then nothing is sent, as sd_notify
// sends nothing outside systemd).
NotifyFn notify_fn() noexcept {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): serve's main thread; nobody sets the environment
  if (std::getenv("NOTIFY_SOCKET") == nullptr) return nullptr;
  static DynLib lib("libsystemd.so.0", "libsystemd");
  static const auto fn = reinterpret_cast<NotifyFn>(lib.sym("sd_notify"));
  return fn;
}

void send(const char* state) noexcept {
  if (NotifyFn fn = notify_fn()) (void)fn(0, state);
}

}  // namespace

void notify_prepare() noexcept { (void)notify_fn(); }

void notify_ready(const std::string& status) noexcept {
  // STATUS= is one line: the URI has no newline.
  char msg[4096];
  (void)std::snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s\nMAINPID=%lu", status.c_str(),
                      static_cast<unsigned long>(::getpid()));
  send(msg);
}

void notify_reloading() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const unsigned long long usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                                  static_cast<unsigned long long>(ts.tv_nsec) / 1000;
  char msg[64];
  (void)std::snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
  send(msg);
}

void notify_stopping() noexcept { send("STOPPING=1\nSTATUS=stopping"); }

}  // namespace uzram::cli

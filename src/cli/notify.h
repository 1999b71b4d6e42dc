// cli/notify.h - the service manager's readiness protocol (sd_notify(3), libsystemd) for
// `uzram serve` under systemd (Type=notify, contrib/uzram@.service): READY=1 once both
// sockets listen, RELOADING=1 then READY=1 around a SIGHUP (nothing to reload), STOPPING=1
// when shutting down. Each is a no-op when $NOTIFY_SOCKET is unset; libsystemd is loaded
// (dlopen) only when it is set.
#ifndef UZRAM_CLI_NOTIFY_H_
#define UZRAM_CLI_NOTIFY_H_

#include <string>

namespace uzram::cli {

// Loads libsystemd when $NOTIFY_SOCKET is set (else nothing), so the messages later map
// nothing new.
void notify_prepare() noexcept;
void notify_ready(const std::string& status) noexcept;  // READY=1, STATUS=status, MAINPID
void notify_reloading() noexcept;                       // RELOADING=1, MONOTONIC_USEC
void notify_stopping() noexcept;                        // STOPPING=1

}  // namespace uzram::cli

#endif  // UZRAM_CLI_NOTIFY_H_

// nbd/handshake.h - the fixed-newstyle negotiation phase on one connection.
#ifndef UZRAM_NBD_HANDSHAKE_H_
#define UZRAM_NBD_HANDSHAKE_H_

#include <functional>
#include <string>

#include "nbd/protocol.h"

namespace uzram::nbd {

class Backend;

using LogFn = std::function<void(const std::string&)>;

// Runs the handshake on `fd`. True when the client entered transmission (NBD_OPT_GO or
// NBD_OPT_EXPORT_NAME), with what was negotiated in *out; false when the client aborted,
// vanished or broke the protocol (the reason goes to `log`; the caller closes fd).
bool handshake(int fd, const Backend& backend, Negotiated* out, const LogFn& log);

// The transmission flags announced for `backend` (structured: NBD_FLAG_SEND_DF too).
std::uint16_t transmission_flags(const Backend& backend, bool structured) noexcept;

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_HANDSHAKE_H_

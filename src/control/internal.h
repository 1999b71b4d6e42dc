// control/internal.h - helpers shared by the control layer's three files (layer 4,
// control): protocol.cc (protocol, dispatch), server.cc (the poll loop), client.cc.
#ifndef UZRAM_CONTROL_INTERNAL_H_
#define UZRAM_CONTROL_INTERNAL_H_

#include <string>
#include <string_view>
#include <system_error>

#include "uzram/result.h"

namespace uzram::control_internal {

// "ERR NAME message\n" for an errno value; the message is kept to one printable line.
std::string err_response(int e, std::string_view message);
// Splits off the first space-separated word of *rest and the one space after it.
std::string_view next_word(std::string_view* rest);
// The current errno as an error, with "what: strerror" in *msg.
std::error_code sys_error(std::string* msg, const std::string& what);

}  // namespace uzram::control_internal

#endif  // UZRAM_CONTROL_INTERNAL_H_

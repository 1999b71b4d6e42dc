// store/control_internal.h - helpers shared by the control socket's three files (layer 3):
// control.cc (protocol, dispatch), control_server.cc (the poll loop), control_client.cc.
#ifndef UZRAM_STORE_CONTROL_INTERNAL_H_
#define UZRAM_STORE_CONTROL_INTERNAL_H_

#include <sys/un.h>

#include <string>
#include <string_view>
#include <system_error>

#include "uzram/result.h"

namespace uzram::control_internal {

// "ERR NAME message\n" for an errno value; the message is kept to one printable line.
std::string err_response(int e, std::string_view message);
// Splits off the first space-separated word of *rest and the one space after it.
std::string_view next_word(std::string_view* rest);
// Fills a sockaddr_un; false when the path is empty or does not fit.
bool fill_addr(const std::string& path, sockaddr_un* a);
// The current errno as an error, with "what: strerror" in *msg.
std::error_code sys_error(std::string* msg, const std::string& what);

}  // namespace uzram::control_internal

#endif  // UZRAM_STORE_CONTROL_INTERNAL_H_

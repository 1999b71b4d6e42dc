// util/dynlib.h - DynLib: a shared library opened on first use with dlopen, for the
// optional dependencies a process without the feature must not map (GnuTLS for TLS,
// libmicrohttpd for --metrics, libnbd for a remote tier: each pulls in more libraries).
// Each user keeps one instance in a function-local static, so it is opened once, under
// the static initialisation's lock.
#ifndef UZRAM_UTIL_DYNLIB_H_
#define UZRAM_UTIL_DYNLIB_H_

#include <string>

namespace uzram {

class DynLib {
 public:
  // Opens `soname` for good (RTLD_NODELETE: never unloaded, since threads and handles it
  // made may outlive any scope we could name). `what` names the library in errors.
  DynLib(const char* soname, const char* what) noexcept;
  DynLib(const DynLib&) = delete;
  DynLib& operator=(const DynLib&) = delete;

  // The symbol's address, or null with error() set (the first failure is kept).
  void* sym(const char* name) noexcept;
  // Why the library or a symbol could not be had; empty when all were.
  const std::string& error() const noexcept { return error_; }

 private:
  void* handle_ = nullptr;
  const char* what_;
  std::string error_;
};

}  // namespace uzram

#endif  // UZRAM_UTIL_DYNLIB_H_

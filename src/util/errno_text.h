// util/errno_text.h - errno_text(e): the description of an errno value, thread-safe.
// std::strerror may write a shared buffer (for an unknown value) and is not MT-safe;
// glibc's strerrordesc_np returns a constant string, or null for an unknown value.
#pragma once

#include <cstring>  // strerrordesc_np (GNU, declared by <string.h>)

namespace uzram {

inline const char* errno_text(int e) noexcept {
  const char* d = ::strerrordesc_np(e);
  return d != nullptr ? d : "unknown error";
}

}  // namespace uzram

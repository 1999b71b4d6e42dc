// util/dynlib.cc - DynLib (dynlib.h).
#include "util/dynlib.h"

#include <dlfcn.h>

namespace uzram {

DynLib::DynLib(const char* soname, const char* what) noexcept : what_(what) {
  handle_ = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle_ == nullptr) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): its users open it under a static's init lock
    const char* e = ::dlerror();
    error_ = std::string("cannot load ") + what + " (" + soname +
             "): " + (e != nullptr ? e : "unknown error");
  }
}

void* DynLib::sym(const char* name) noexcept {
  if (handle_ == nullptr) return nullptr;
  void* p = ::dlsym(handle_, name);
  if (p == nullptr && error_.empty()) error_ = std::string(what_) + " lacks " + name;
  return p;
}

}  // namespace uzram

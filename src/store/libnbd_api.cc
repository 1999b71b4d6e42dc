// store/libnbd_api.cc - libnbd loaded with dlopen (store/libnbd_api.h).
#include "store/libnbd_api.h"

#include <dlfcn.h>

namespace uzram {
namespace {

LibNbd load_libnbd() noexcept {
  LibNbd l;
  // RTLD_NODELETE: never unloaded (handles may outlive any scope we could name).
  void* h = dlopen("libnbd.so.0", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (h == nullptr) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): once, under the static initialisation's lock
    const char* e = dlerror();
    l.error = std::string("cannot load libnbd (libnbd.so.0): ") + (e ? e : "unknown error");
    return l;
  }
  const auto sym = [&](const char* name) -> void* {
    void* p = dlsym(h, name);
    if (p == nullptr && l.error.empty()) l.error = std::string("libnbd lacks ") + name;
    return p;
  };
#define UZRAM_LIBNBD_LOAD(name) l.name = reinterpret_cast<decltype(l.name)>(sym(#name))
  UZRAM_LIBNBD_FUNCTIONS(UZRAM_LIBNBD_LOAD)
#undef UZRAM_LIBNBD_LOAD
  return l;
}

}  // namespace

const LibNbd& libnbd() noexcept {
  static const LibNbd lib = load_libnbd();
  return lib;
}

}  // namespace uzram

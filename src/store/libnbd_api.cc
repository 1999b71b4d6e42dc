// store/libnbd_api.cc - libnbd loaded with dlopen (store/libnbd_api.h).
#include "store/libnbd_api.h"

#include "util/dynlib.h"

namespace uzram {
namespace {

LibNbd load_libnbd() noexcept {
  LibNbd l;
  DynLib lib("libnbd.so.0", "libnbd");
#define UZRAM_LIBNBD_LOAD(name) l.name = reinterpret_cast<decltype(l.name)>(lib.sym(#name))
  UZRAM_LIBNBD_FUNCTIONS(UZRAM_LIBNBD_LOAD)
#undef UZRAM_LIBNBD_LOAD
  l.error = lib.error();
  return l;
}

}  // namespace

const LibNbd& libnbd() noexcept {
  static const LibNbd lib = load_libnbd();
  return lib;
}

}  // namespace uzram

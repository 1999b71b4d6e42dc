// store/libnbd_api.h - libnbd, loaded with dlopen when the first remote backing tier is
// opened, not linked (layer 3, private to the remote tier's files). libnbd pulls in
// GnuTLS (and p11-kit, nettle, gmp...): a server with no remote tier must not map them
// (docs/uzram-serve.md#memory). Only libnbd's header is used at build time, for the
// types, constants and prototypes; every call goes through libnbd(), the table of
// pointers of the prototypes' exact types.
#ifndef UZRAM_STORE_LIBNBD_API_H_
#define UZRAM_STORE_LIBNBD_API_H_

#include <libnbd.h>

#include <string>

namespace uzram {

#define UZRAM_LIBNBD_FUNCTIONS(X)  \
  X(nbd_aio_command_completed);    \
  X(nbd_aio_connect_uri);          \
  X(nbd_aio_flush);                \
  X(nbd_aio_get_direction);        \
  X(nbd_aio_get_fd);               \
  X(nbd_aio_in_flight);            \
  X(nbd_aio_is_closed);            \
  X(nbd_aio_is_dead);              \
  X(nbd_aio_is_ready);             \
  X(nbd_aio_notify_read);          \
  X(nbd_aio_notify_write);         \
  X(nbd_aio_pread);                \
  X(nbd_aio_pwrite);               \
  X(nbd_aio_trim);                 \
  X(nbd_can_flush);                \
  X(nbd_can_fua);                  \
  X(nbd_can_multi_conn);           \
  X(nbd_can_trim);                 \
  X(nbd_close);                    \
  X(nbd_create);                   \
  X(nbd_get_block_size);           \
  X(nbd_get_errno);                \
  X(nbd_get_error);                \
  X(nbd_get_size);                 \
  X(nbd_is_read_only);             \
  X(nbd_set_uri_allow_local_file); \
  X(nbd_set_uri_allow_transports);

struct LibNbd {
// NOLINTNEXTLINE(bugprone-macro-parentheses): `name` is a declarator, not an expression
#define UZRAM_LIBNBD_MEMBER(name) decltype(&::name) name = nullptr
  UZRAM_LIBNBD_FUNCTIONS(UZRAM_LIBNBD_MEMBER)
#undef UZRAM_LIBNBD_MEMBER
  std::string error;  // why loading failed; empty when loaded
};

// The library, loaded once (thread-safe static initialisation) by the first call; check
// error before any other use. open_nbd_tier calls it first, so every later call (on a
// tier that was opened) finds it loaded.
const LibNbd& libnbd() noexcept;

}  // namespace uzram

#endif  // UZRAM_STORE_LIBNBD_API_H_

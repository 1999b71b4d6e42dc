// tests/nbd/fuzz_nbd.cc - libFuzzer target: the input is everything a client sends (the
// handshake, then requests and payloads), fed over a socketpair to the real handshake and
// session on a 1 MiB store. Any crash, sanitizer report or hang is a bug; replies are
// drained and dropped. Build: the `fuzz` preset, target fuzz_nbd; run e.g.
//   build/fuzz/tests/nbd/fuzz_nbd -max_total_time=60 -max_len=65536 CORPUS_DIR tests/nbd/fuzz_seeds
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

#include "nbd/handshake.h"
#include "nbd/session.h"
#include "nbd/store_backend.h"
#include "nbd/transport.h"
#include "uzram/store.h"

namespace {

uzram::nbd::StoreBackend& backend() {
  static std::unique_ptr<uzram::Store> store = [] {
    auto s = uzram::Store::create("fuzz");
    if (!s || !(*s)->write_attr("disksize", "1M")) std::abort();
    return std::move(*s);
  }();
  static uzram::nbd::StoreBackend b(*store);
  return b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace uzram::nbd;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  std::thread server([fd = sv[0]] {
    const LogFn log = [](std::string_view) {};
    Negotiated neg;
    std::unique_ptr<Transport> t;
    if (handshake(fd, t, backend(), TlsPolicy{}, Deadline{}, &neg, log)) {
      serve_session(fd, *t, backend(), neg, log, {2});
      backend().close_user();
    }
    ::close(fd);
  });
  std::thread drain([fd = sv[1]] {
    std::uint8_t buf[65536];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
  });
  for (std::size_t at = 0; at < size;) {
    const ssize_t w = ::send(sv[1], data + at, size - at, MSG_NOSIGNAL);
    if (w <= 0) break;
    at += static_cast<std::size_t>(w);
  }
  ::shutdown(sv[1], SHUT_WR);
  server.join();
  drain.join();
  ::close(sv[1]);
  return 0;
}

// control/control.h - the control socket (layer 4, control; beside nbd, on the store):
// ControlServer serves the attributes of one or more Stores on a Unix stream socket, from a
// background thread; ControlClient is the other end (`uzram ctl`, `uzram status`). `uzram
// serve` embeds the server, over a StoreRegistry, so that zram-control's hot_add and
// hot_remove work. Not part of the installed library (CONTRIBUTING.md): the protocol
// below is the interface, for any client.
//
// Protocol (one request line, one response; docs/uzram.md#control-protocol):
//   request   = COMMAND [SP ARG...] LF        at most kControlMaxLine bytes with the LF;
//                                             a CR before the LF is ignored
//   LIST                  names of the served stores, one per line
//   USE NAME              selects the store later requests address (default: zram0 for a
//                         registry, else the first); NAME zram-control selects the
//                         registry's own attributes: READ hot_add (creates zramN, answers
//                         "N\n"), WRITE hot_remove N
//   READ ATTR             the attribute, exactly as `cat /sys/block/zramN/ATTR` prints it
//   WRITE ATTR [VALUE...] writes the attribute (VALUE = the rest of the line, verbatim)
//   INFO                  "key value" lines: name, initstate, disksize, algorithm, streams,
//                         the nine mm_stat fields, zspages, objs_allocated, objs_used,
//                         users, blocks_read, blocks_written, bd_writes, and the store's
//                         memory (mem_pool_frames, mem_pool_idle_frames,
//                         mem_pool_metadata, mem_slot_table, mem_streams)
//   response  = "OK " LEN LF PAYLOAD          LEN = payload bytes (decimal)
//             | "ERR " ERRNO-NAME SP MESSAGE LF   e.g. "ERR ENOENT foo: no such attribute"
// Bad input (unknown command, control characters, missing arguments) gets an ERR response
// and the connection stays usable; an over-long line gets "ERR E2BIG ..." and the server
// closes that connection. Errors map as sysfs does: unknown attribute ENOENT, writing a
// read-only (or reading a write-only) attribute EACCES, the store's refusals by their
// Errc (EINVAL, EBUSY, ENOMEM, ...).
//
// A store selected with USE is held (a shared_ptr) by the connection; once hot_remove took
// it out of the registry, requests to it are answered "ERR ENODEV ... was removed" (the
// store is retired: no write can give it data again) until the client USEs another.
//
// Thread safety: ControlServer's methods may be called from any thread; the registry (or
// the fixed stores) must outlive the server (stop() or destruction). Requests are served
// one at a time by the server thread, so a slow write (compact, writeback) delays the
// other clients. A ControlClient is one connection: use it from one thread at a time.
#ifndef UZRAM_CONTROL_CONTROL_H_
#define UZRAM_CONTROL_CONTROL_H_

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "uzram/result.h"

namespace uzram {

class Store;
class StoreRegistry;

inline constexpr std::size_t kControlMaxLine = 4096;                       // request, with LF
inline constexpr std::size_t kControlMaxPayload = std::size_t{256} << 20;  // client accepts

// The default socket directory: $XDG_RUNTIME_DIR/uzram when XDG_RUNTIME_DIR is set and not
// empty, else ./run/uzram (relative to the working directory). The default socket is
// <dir>/control.sock; `uzram status` looks at every *.sock in <dir>.
[[nodiscard]] std::string default_control_dir() noexcept;
[[nodiscard]] std::string default_control_socket() noexcept;

// The errno name the protocol uses for an error ("EINVAL", "ENOENT", ...), and back to a
// std::error_code in the generic category (unknown names give EIO).
[[nodiscard]] std::string errno_name(std::error_code ec) noexcept;
[[nodiscard]] std::error_code errno_from_name(std::string_view name) noexcept;

// What a control socket serves: a registry's stores (with zram-control), or a fixed list
// of stores with distinct names (no zram-control). Cheap to copy; does not own.
class ControlTargets {
 public:
  static constexpr std::string_view kZramControl = "zram-control";
  explicit ControlTargets(StoreRegistry& registry) noexcept : registry_(&registry) {}
  explicit ControlTargets(std::vector<Store*> stores) noexcept : fixed_(std::move(stores)) {}
  [[nodiscard]] std::vector<std::shared_ptr<Store>> stores() const noexcept;
  [[nodiscard]] std::shared_ptr<Store> find(std::string_view name) const noexcept;
  // zram0 for a registry, else the first store; null when there is none.
  [[nodiscard]] std::shared_ptr<Store> default_store() const noexcept;
  [[nodiscard]] StoreRegistry* registry() const noexcept { return registry_; }

 private:
  StoreRegistry* registry_ = nullptr;
  std::vector<Store*> fixed_;
};

// One connection's selection (USE): zram-control, a store it holds, or the default.
struct ControlSelection {
  bool zram_control = false;
  std::shared_ptr<Store> store;  // null: the default store, looked up per request
};

struct ControlServerOptions {
  unsigned max_clients = 16;  // more connections are answered "ERR EBUSY" and closed
};

class ControlServer {
 public:
  // Binds `path` with listen_unix_socket() (util/unix_socket.h: the directory is created
  // 0700, or must be owned by this uid and not group/world-writable, nor a symbolic link;
  // the socket is 0600), then serves `stores` from a background thread. A stale socket file
  // (nobody listening) is replaced; a live one gives Errc::busy, any other existing file
  // Errc::invalid_argument; an unsafe directory EPERM. Store names must be distinct. Errors
  // fill *msg with a one-line explanation.
  [[nodiscard]] static Result<std::unique_ptr<ControlServer>> start(
      const std::string& path, ControlTargets targets, std::string* msg = nullptr,
      const ControlServerOptions& options = {}) noexcept;
  [[nodiscard]] static Result<std::unique_ptr<ControlServer>> start(
      const std::string& path, std::vector<Store*> stores, std::string* msg = nullptr,
      const ControlServerOptions& options = {}) noexcept {
    return start(path, ControlTargets(std::move(stores)), msg, options);
  }
  ~ControlServer();  // stop()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Stops the thread, closes every connection and removes the socket file. Idempotent.
  void stop() noexcept;
  [[nodiscard]] const std::string& path() const noexcept;

  // The protocol without I/O: the complete response to one request line (without its LF)
  // for a connection whose selection is *selected (USE updates it).
  [[nodiscard]] static std::string respond(const ControlTargets& targets, std::string_view request,
                                           ControlSelection* selected) noexcept;

 private:
  ControlServer() = default;
  struct State;
  std::unique_ptr<State> state_;
};

// One connection to a control socket.
class ControlClient {
 public:
  ControlClient() = default;
  ControlClient(ControlClient&& other) noexcept;
  ControlClient& operator=(ControlClient&& other) noexcept;
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;
  ~ControlClient();

  // Connects. timeout_ms bounds every later send/receive (0 = wait forever). Errors are
  // the system's (ENOENT, ECONNREFUSED, EACCES, ENAMETOOLONG) in the generic category.
  [[nodiscard]] static Result<ControlClient> connect(const std::string& path,
                                                     std::string* msg = nullptr,
                                                     int timeout_ms = 0) noexcept;
  // Sends one request line (no LF; it must not contain one) and returns the OK payload.
  // An ERR response gives the server's errno (generic category) and its message in *msg;
  // a malformed response gives EPROTO.
  [[nodiscard]] Result<std::string> call(std::string_view request,
                                         std::string* msg = nullptr) noexcept;
  [[nodiscard]] Result<std::string> read_attr(std::string_view attr,
                                              std::string* msg = nullptr) noexcept;
  [[nodiscard]] Result<void> write_attr(std::string_view attr, std::string_view value,
                                        std::string* msg = nullptr) noexcept;
  [[nodiscard]] Result<std::vector<std::string>> list(std::string* msg = nullptr) noexcept;
  [[nodiscard]] Result<void> use(std::string_view store, std::string* msg = nullptr) noexcept;

 private:
  int fd_ = -1;
  std::string buf_;  // bytes received beyond the last response
};

// Connects, sends one request and returns the OK payload (ControlClient::call).
[[nodiscard]] Result<std::string> control_request(const std::string& path, std::string_view request,
                                                  std::string* msg = nullptr) noexcept;

}  // namespace uzram

#endif  // UZRAM_CONTROL_CONTROL_H_

// nbd/exports.h - Exports: what a server serves, by export name (layer 4, nbd). The
// handshake asks it for the backend of the name a client gives (NBD_OPT_INFO, GO,
// EXPORT_NAME) and for the names NBD_OPT_LIST announces; a connection in transmission
// holds its backend (a shared_ptr) until it ends.
//
// StoreExports serves every store of a StoreRegistry under its name ("zram1"; the empty
// name is zram0) with one StoreBackend per store, shared by all of that store's
// connections: the backend's stripe locks must be, so that partial writes from two
// connections to one block never lose bytes. SingleExport serves one backend under every
// name (tests, the fuzzer, embedders with one disk).
//
// Thread safety: find() and list() may be called from any thread concurrently.
#ifndef UZRAM_NBD_EXPORTS_H_
#define UZRAM_NBD_EXPORTS_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sync/mutex.h"

namespace uzram {
class Store;
class StoreRegistry;
}  // namespace uzram

namespace uzram::nbd {

class Backend;
class StoreBackend;

class Exports {
 public:
  virtual ~Exports() = default;
  // The export named `name` ("" = the default export), or null: no such export
  // (NBD_REP_ERR_UNKNOWN). Whether it has anything to serve is Backend::open_user's say.
  [[nodiscard]] virtual std::shared_ptr<Backend> find(std::string_view name) noexcept = 0;
  // The names NBD_OPT_LIST announces: the exports that can be served now.
  [[nodiscard]] virtual std::vector<std::string> list() noexcept = 0;
};

class SingleExport final : public Exports {
 public:
  // Does not own `backend`, which must outlive every connection.
  explicit SingleExport(Backend& backend) noexcept : backend_(std::shared_ptr<void>(), &backend) {}
  std::shared_ptr<Backend> find(std::string_view) noexcept override { return backend_; }
  std::vector<std::string> list() noexcept override;  // one export: ""

 private:
  std::shared_ptr<Backend> backend_;  // non-owning (aliasing an empty shared_ptr)
};

class StoreExports final : public Exports {
 public:
  // The registry must outlive this object.
  explicit StoreExports(StoreRegistry& registry) noexcept : registry_(registry) {}
  std::shared_ptr<Backend> find(std::string_view name) noexcept override;
  std::vector<std::string> list() noexcept override;  // the initialised stores, by number

 private:
  StoreRegistry& registry_;
  // Protects backends_: the live backend of each store that has one (a connection holds
  // it). Keyed by the Store object: a backend holds its store, so a live entry's key is
  // never a freed and reused address. Level: nbd_exports, taken alone (after the
  // registry's lock is released; nothing is taken under it, and no store or backend is
  // destroyed under it: the caller's references outlive the hold).
  Mutex mu_{LockLevel::nbd_exports, "nbd_exports"};
  std::vector<std::pair<const Store*, std::weak_ptr<StoreBackend>>> backends_ ZS_GUARDED_BY(mu_);
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_EXPORTS_H_

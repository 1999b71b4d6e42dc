// uzram/store_registry.h - StoreRegistry: the stores one process serves, by name, with the
// kernel's zram-control (/sys/class/zram-control/hot_add and hot_remove): stores are
// created and removed at run time while other threads use other stores.
//
// Stores are named zramN. hot_add() creates the store with the lowest free N (as the
// kernel's idr does) and returns N; hot_remove(N) removes a store that is uninitialised
// (no disksize) and so has no users, and refuses with EBUSY otherwise (the kernel's
// answer for an opened device; uzram also refuses an initialised one, which would lose
// its data: reset it first).
//
// Lifetime: find() and stores() hand out std::shared_ptr<Store>: whoever holds one (an NBD
// connection, a control client that USE'd the store, a metrics scrape) keeps the object
// alive. A removed store is *retired* first (Store::retired() is then true, under its
// init lock): every later attribute write to it fails with ENODEV, and it can never be
// initialised again, so a holder cannot give a store that is no longer listed a disksize,
// a backing device or data. Its memory goes with the last holder.
//
// Thread safety: every method may be called from any thread concurrently.
#ifndef UZRAM_STORE_REGISTRY_H_
#define UZRAM_STORE_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "uzram/result.h"
#include "uzram/store.h"

namespace uzram {

class StoreRegistry {
 public:
  static constexpr unsigned kMaxStores = 1024;  // hot_add refuses more (ENOSPC)

  // Aborts if it cannot allocate its few bytes of state.
  StoreRegistry() noexcept;
  // Every store this registry creates takes `options` (`uzram serve --swap`: all swap).
  explicit StoreRegistry(const StoreOptions& options) noexcept;
  ~StoreRegistry();
  StoreRegistry(const StoreRegistry&) = delete;
  StoreRegistry& operator=(const StoreRegistry&) = delete;

  // Creates an uninitialised store "zramN", N the lowest number not in use, and returns N.
  // Errors: ENOSPC (kMaxStores stores exist), no_memory; *msg says which.
  [[nodiscard]] Result<unsigned> hot_add(std::string* msg = nullptr) noexcept;
  // Removes zramN. Errors: ENODEV (no such store), EBUSY (initialised: reset it first; or
  // in use by open users); *msg says which, starting with "hot_remove: ".
  [[nodiscard]] Result<void> hot_remove(unsigned n, std::string* msg = nullptr) noexcept;

  // The store named `name` ("zramN"), or null.
  [[nodiscard]] std::shared_ptr<Store> find(std::string_view name) const noexcept;
  [[nodiscard]] std::shared_ptr<Store> find(unsigned n) const noexcept;
  // Every store, by number.
  [[nodiscard]] std::vector<std::shared_ptr<Store>> stores() const noexcept;
  [[nodiscard]] std::size_t size() const noexcept;

  // Where every store, present and added later, reports what it decides by itself (its
  // policy's decisions: Store::set_log_hook), each line prefixed with "zramN: ". An empty
  // hook stops it: once this returns, no store calls the previous hook any more.
  using LogHook = std::function<void(std::string_view line)>;
  void set_log_hook(const LogHook& hook) noexcept;

  // "zramN" -> N (decimal, no sign, no leading zero unless N is 0); false otherwise.
  static bool parse_name(std::string_view name, unsigned* n) noexcept;
  static std::string name_of(unsigned n);

 private:
  // `hook` with the store's name before each line (empty for an empty hook).
  static LogHook prefixed(const std::string& name, const LogHook& hook) noexcept;

  // The map, the log hook and their lock (store/registry.cc): behind a pointer so that
  // this header names no lock type of the library's own.
  struct State;
  std::unique_ptr<State> state_;
  const StoreOptions options_{};
};

}  // namespace uzram

#endif  // UZRAM_STORE_REGISTRY_H_

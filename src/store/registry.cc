// store/registry.cc - StoreRegistry (uzram/store_registry.h): the process's stores by
// number, hot_add and hot_remove. The registry's mutex guards only the map: a store is
// created, and retired (StoreImpl::retire, under its own init lock), with it released.
#include "uzram/store_registry.h"

#include <cerrno>
#include <charconv>
#include <map>
#include <new>

#include "store/store_impl.h"
#include "sync/mutex.h"

namespace uzram {

struct StoreRegistry::State {
  // Protects stores. Level: registry, a leaf (sync/lock_order.h): nothing is taken under
  // it; stores are created, retired and destroyed with it released. A null entry is a
  // number reserved by a hot_add that is still creating its store.
  // It also guards log_hook and log_gen (bumped by each set_log_hook: a hot_add that
  // installed an older hook on its new store installs the current one before publishing).
  Mutex mu{LockLevel::registry, "registry"};
  std::map<unsigned, std::shared_ptr<Store>> stores ZS_GUARDED_BY(mu);
  LogHook log_hook ZS_GUARDED_BY(mu);
  std::uint64_t log_gen ZS_GUARDED_BY(mu) = 0;
};

StoreRegistry::StoreRegistry() noexcept : state_(new (std::nothrow) State) {
  ZS_CHECK(state_ != nullptr, "StoreRegistry: out of memory");
}

StoreRegistry::StoreRegistry(const StoreOptions& options) noexcept
    : state_(new (std::nothrow) State), options_(options) {
  ZS_CHECK(state_ != nullptr, "StoreRegistry: out of memory");
}

StoreRegistry::~StoreRegistry() = default;

bool StoreRegistry::parse_name(std::string_view name, unsigned* n) noexcept {
  if (name.substr(0, 4) != "zram" || name.size() == 4 || name.size() > 14) return false;
  const std::string_view digits = name.substr(4);
  if (digits.size() > 1 && digits[0] == '0') return false;
  unsigned v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size()) return false;
  *n = v;
  return true;
}

std::string StoreRegistry::name_of(unsigned n) { return "zram" + std::to_string(n); }

Result<unsigned> StoreRegistry::hot_add(std::string* msg) noexcept {
  unsigned n = 0;
  {
    MutexLock l(state_->mu);
    if (state_->stores.size() >= kMaxStores) {
      if (msg) *msg = "hot_add: at most " + std::to_string(kMaxStores) + " stores";
      return std::error_code(ENOSPC, std::generic_category());
    }
    for (const auto& [k, s] : state_->stores) {  // ordered: the first gap is the lowest free
      if (k != n) break;
      n++;
    }
    try {
      state_->stores.emplace(n, nullptr);  // reserved: find() skips it
    } catch (...) {
      if (msg) *msg = "hot_add: out of memory";
      return Errc::no_memory;
    }
  }
  std::shared_ptr<Store> store;
  if (auto created = Store::create(name_of(n), options_); created) {
    try {
      store = std::move(*created);
    } catch (...) {  // the control block
    }
  }
  MutexLock l(state_->mu);
  if (!store) {
    state_->stores.erase(n);
    if (msg) *msg = "hot_add: out of memory";
    return Errc::no_memory;
  }
  // The log hook of the moment, installed with mu_ released (the store's log lock is not
  // taken under it); again if set_log_hook ran meanwhile; then published.
  for (std::uint64_t gen = ~std::uint64_t{0}; gen != state_->log_gen;) {
    gen = state_->log_gen;
    LogHook hook;
    try {
      hook = state_->log_hook;
    } catch (...) {  // std::bad_alloc: this store logs nothing
    }
    l.unlock();
    store->set_log_hook(prefixed(store->name(), hook));
    l.lock();
  }
  state_->stores[n] = std::move(store);
  return n;
}

StoreRegistry::LogHook StoreRegistry::prefixed(const std::string& name,
                                               const LogHook& hook) noexcept {
  if (!hook) return nullptr;
  try {
    return [prefix = name + ": ", hook](std::string_view line) {
      try {
        hook(prefix + std::string(line));
      } catch (...) {  // std::bad_alloc: the line is dropped
      }
    };
  } catch (...) {  // std::bad_alloc: this store logs nothing
    return nullptr;
  }
}

void StoreRegistry::set_log_hook(const LogHook& hook) noexcept {
  // Store by store, by number, each installed with mu_ released; no allocation, so every
  // listed store gets it.
  bool first = true;
  for (unsigned next = 0;;) {
    std::shared_ptr<Store> s;
    {
      MutexLock l(state_->mu);
      if (first) {
        state_->log_gen++;
        try {
          state_->log_hook = hook;  // a copy: hook is still used below
        } catch (...) {             // std::bad_alloc: stores added later log nothing
          state_->log_hook = nullptr;
        }
        first = false;
      }
      auto it = state_->stores.lower_bound(next);
      while (it != state_->stores.end() && !it->second) ++it;
      if (it == state_->stores.end()) break;
      s = it->second;
      next = it->first + 1;
    }
    s->set_log_hook(prefixed(s->name(), hook));
  }
}

Result<void> StoreRegistry::hot_remove(unsigned n, std::string* msg) noexcept {
  std::shared_ptr<Store> s = find(n);
  if (!s) {
    if (msg) *msg = "hot_remove: no store " + name_of(n);
    return std::error_code(ENODEV, std::generic_category());
  }
  // Retired under the store's init lock: from here on it can never be initialised, so
  // whoever still holds it cannot give an unlisted store data.
  if (auto r = impl(s.get())->retire(msg); !r) return r;
  MutexLock l(state_->mu);
  auto it = state_->stores.find(n);
  if (it != state_->stores.end() && it->second == s) state_->stores.erase(it);
  return {};
}

std::shared_ptr<Store> StoreRegistry::find(unsigned n) const noexcept {
  MutexLock l(state_->mu);
  auto it = state_->stores.find(n);
  return it == state_->stores.end() ? nullptr : it->second;
}

std::shared_ptr<Store> StoreRegistry::find(std::string_view name) const noexcept {
  unsigned n = 0;
  return parse_name(name, &n) ? find(n) : nullptr;
}

std::vector<std::shared_ptr<Store>> StoreRegistry::stores() const noexcept {
  std::vector<std::shared_ptr<Store>> out;
  MutexLock l(state_->mu);
  try {
    out.reserve(state_->stores.size());
    for (const auto& [n, s] : state_->stores) {
      if (s) out.push_back(s);
    }
  } catch (...) {  // out of memory: what fitted
  }
  return out;
}

std::size_t StoreRegistry::size() const noexcept {
  MutexLock l(state_->mu);
  std::size_t n = 0;
  for (const auto& [k, s] : state_->stores) n += s != nullptr;
  return n;
}

}  // namespace uzram

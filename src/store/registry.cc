// store/registry.cc - StoreRegistry (uzram/store_registry.h): the process's stores by
// number, hot_add and hot_remove. The registry's mutex guards only the map: a store is
// created, and retired (StoreImpl::retire, under its own init lock), with it released.
#include "uzram/store_registry.h"

#include <cerrno>
#include <charconv>

#include "store/store_impl.h"

namespace uzram {

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
    std::lock_guard l(mu_);
    if (stores_.size() >= kMaxStores) {
      if (msg) *msg = "hot_add: at most " + std::to_string(kMaxStores) + " stores";
      return std::error_code(ENOSPC, std::generic_category());
    }
    for (const auto& [k, s] : stores_) {  // ordered: the first gap is the lowest free
      if (k != n) break;
      n++;
    }
    try {
      stores_.emplace(n, nullptr);  // reserved: find() skips it
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
  std::lock_guard l(mu_);
  if (!store) {
    stores_.erase(n);
    if (msg) *msg = "hot_add: out of memory";
    return Errc::no_memory;
  }
  stores_[n] = std::move(store);
  return n;
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
  std::lock_guard l(mu_);
  auto it = stores_.find(n);
  if (it != stores_.end() && it->second == s) stores_.erase(it);
  return {};
}

std::shared_ptr<Store> StoreRegistry::find(unsigned n) const noexcept {
  std::lock_guard l(mu_);
  auto it = stores_.find(n);
  return it == stores_.end() ? nullptr : it->second;
}

std::shared_ptr<Store> StoreRegistry::find(std::string_view name) const noexcept {
  unsigned n = 0;
  return parse_name(name, &n) ? find(n) : nullptr;
}

std::vector<std::shared_ptr<Store>> StoreRegistry::stores() const noexcept {
  std::vector<std::shared_ptr<Store>> out;
  std::lock_guard l(mu_);
  try {
    out.reserve(stores_.size());
    for (const auto& [n, s] : stores_) {
      if (s) out.push_back(s);
    }
  } catch (...) {  // out of memory: what fitted
  }
  return out;
}

std::size_t StoreRegistry::size() const noexcept {
  std::lock_guard l(mu_);
  std::size_t n = 0;
  for (const auto& [k, s] : stores_) n += s != nullptr;
  return n;
}

}  // namespace uzram

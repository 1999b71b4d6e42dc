// nbd/exports.cc - SingleExport and StoreExports (exports.h): export names to backends.
#include "nbd/exports.h"

#include <algorithm>

#include "nbd/store_backend.h"
#include "uzram/store.h"
#include "uzram/store_registry.h"

namespace uzram::nbd {

std::vector<std::string> SingleExport::list() noexcept {
  try {
    return {std::string()};
  } catch (...) {
    return {};
  }
}

std::shared_ptr<Backend> StoreExports::find(std::string_view name) noexcept {
  std::shared_ptr<Store> store = registry_.find(name.empty() ? std::string_view("zram0") : name);
  if (!store) return nullptr;
  std::lock_guard l(mu_);
  std::erase_if(backends_, [](const auto& e) { return e.second.expired(); });
  for (const auto& [key, weak] : backends_) {
    if (key == store.get()) {
      if (auto b = weak.lock()) return b;
    }
  }
  std::shared_ptr<StoreBackend> b;
  try {
    const Store* key = store.get();
    b = std::make_shared<StoreBackend>(std::move(store));
    backends_.emplace_back(key, b);
  } catch (...) {  // out of memory: the client is told there is no such export
    return nullptr;
  }
  return b;
}

std::vector<std::string> StoreExports::list() noexcept {
  std::vector<std::string> names;
  try {
    for (const auto& s : registry_.stores()) {
      if (s->initialized()) names.push_back(s->name());
    }
  } catch (...) {  // out of memory: what fitted
  }
  return names;
}

}  // namespace uzram::nbd

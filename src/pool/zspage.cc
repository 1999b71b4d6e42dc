// pool/zspage.cc - ZsPageTable: descriptor ids and storage.
#include "pool/zspage.h"

#include <sys/mman.h>

namespace uzram {

ZsPageTable::~ZsPageTable() {
  if (base_) munmap(base_, (max_ + 1) * stride_);
}

Result<void> ZsPageTable::init(std::size_t max_zspages, unsigned chain) noexcept {
  stride_ = kZsPageHeaderBytes + 4 * chain;
  stride_ = (stride_ + 7) & ~std::size_t{7};
  max_ = max_zspages;
  void* p = mmap(nullptr, (max_ + 1) * stride_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Errc::no_memory;
  base_ = static_cast<std::byte*>(p);
  return {};
}

Result<ZsPageId> ZsPageTable::alloc() noexcept {
  {
    SpinGuard g(lock_);
    if (free_head_ != 0) {
      const ZsPageId id = free_head_;
      free_head_ = get(id)->next;
      return id;
    }
  }
  const ZsPageId id = next_.fetch_add(1, std::memory_order_relaxed);
  if (id > max_) {
    next_.fetch_sub(1, std::memory_order_relaxed);
    return Errc::no_memory;
  }
  return id;
}

void ZsPageTable::free(ZsPageId id) noexcept {
  SpinGuard g(lock_);
  get(id)->next = free_head_;
  free_head_ = id;
}

}  // namespace uzram

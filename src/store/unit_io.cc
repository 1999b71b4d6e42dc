// store/unit_io.cc - Store::write_blocks / read_blocks: runs of consecutive blocks
// (docs/units.md#served-and-planned). On a store of 4 KiB units every block goes on its
// own, through do_write / do_read.
#include <cstddef>

#include "store/store_impl.h"

namespace uzram {

Result<void> StoreImpl::do_write_blocks(std::uint64_t index, std::uint64_t count,
                                        const void* data) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::uint64_t i = 0; i < count; i++) {
    if (auto r = do_write(index + i, p + i * kBlockSize); !r) return r;
  }
  return {};
}

Result<void> StoreImpl::do_read_blocks(std::uint64_t index, std::uint64_t count,
                                       void* data) noexcept {
  auto* p = static_cast<unsigned char*>(data);
  for (std::uint64_t i = 0; i < count; i++) {
    if (auto r = do_read(index + i, p + i * kBlockSize); !r) return r;
  }
  return {};
}

}  // namespace uzram

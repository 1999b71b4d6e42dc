// store/backing.h - the store's backing tier (layer 3): what `backing_dev` names (a local
// file or block device, store/backing_file.h, or a remote NBD export, store/backing_nbd.h)
// behind one interface (store/backing_tier.h), and the allocator of its space
// (store/backing_alloc.h). Guide: docs/store-postprocessing.md#the-backing-tier.
//
// The tier is opened (and, for a remote, connected) when backing_dev is written, with no
// lock held, then installed under init_lock_; the allocator is sized when the store is
// initialised (disksize); both go at reset or `backing_dev none`. Where a written-back
// slot's bytes are: store/wb_layout.h.
#ifndef UZRAM_STORE_BACKING_H_
#define UZRAM_STORE_BACKING_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "store/backing_alloc.h"
#include "store/backing_file.h"
#include "store/backing_tier.h"
#include "store/store_impl.h"
#include "store/wb_layout.h"
#include "sync/mutex.h"

namespace uzram {

struct StoreImpl::Backing {
  // Declared first, destroyed last: the tier's I/O thread gives trimmed blocks back to it
  // until the tier is destroyed.
  BackingAlloc alloc;
  std::unique_ptr<BackingTier> tier;  // set by open_backing, immutable after

  Backing() noexcept = default;
  Backing(const Backing&) = delete;
  Backing& operator=(const Backing&) = delete;
  ~Backing() {
    if (tier) tier->attach(nullptr);
    tier.reset();  // joins a remote tier's I/O thread while alloc is alive
  }

  // Sizes the allocator for a store of `nslots` blocks: a raw page takes a block, packed
  // objects less, so more than one block per slot (plus block 0) is never in use. Errors:
  // Errc::no_memory. Caller holds init_lock_ exclusive.
  Result<void> init_blocks(std::uint64_t nslots, std::string* msg) noexcept;
};

// backing_dev's value: an NBD URI (nbd://, nbds://, nbd+unix://, nbds+unix://) or a path.
// Opens (connects) and checks it; call with no lock held. timeout_ms: the store's
// backing_timeout_ms (read by a remote tier for every request).
[[nodiscard]] Result<std::unique_ptr<StoreImpl::Backing>> open_backing(
    const std::string& value, const std::atomic<std::uint32_t>& timeout_ms,
    std::string* msg) noexcept;

}  // namespace uzram

#endif  // UZRAM_STORE_BACKING_H_

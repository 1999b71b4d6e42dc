// pool/zspage.h - ZsPage (the zspage descriptor) and ZsPageTable (layer 2).
//
// A zspage is a chain of 1..chain_size frames holding objs_per_zspage objects of one size
// class; object i occupies bytes [i*size, (i+1)*size) of the chain and may straddle a
// frame boundary. Non-huge objects start with the 8-byte header (handle index << 1) | 1;
// a free slot's header word holds (next free object << 1) (tag 0), kNoObj ends the list.
// Huge zspages (1 frame, 1 object) have no header.
//
// Invariants (checked by Pool::check_invariants, cited by number):
//   1. inuse + |free list| == objs_per_zspage; headers with the tag == inuse.
//   2. a listed zspage is on list fullness_group(inuse, objs) of its class.
//   3. every frame f of a live zspage has FrameInfo owner == id.
//   4. the lock word persists when a descriptor is reused (a stale translator may still
//      hold it briefly; it then fails validation and lets go).
#ifndef UZRAM_POOL_ZSPAGE_H_
#define UZRAM_POOL_ZSPAGE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "pool/frame_arena.h"
#include "sync/spin_lock.h"
#include "sync/zspage_lock.h"
#include "uzram/result.h"

namespace uzram {

using ZsPageId = std::uint32_t;
inline constexpr std::uint16_t kNoObj = 0xffff;

enum class ZsState : std::uint8_t {
  free = 0,      // descriptor unused
  fresh = 1,     // being built by an allocator, on no list
  listed = 2,    // on its class's fullness list
  isolated = 3,  // taken off the lists by the compactor (class lock held)
  deferred = 4,  // empty, taken by the deferred-free worker
};

inline unsigned fullness_group(unsigned inuse, unsigned objs) noexcept {
  if (inuse == 0) return 0;
  if (inuse == objs) return 11;
  return 100 * inuse / objs / 10 + 1;
}

struct ZsPage {
  // The zspage lock (sync/zspage_lock.h). Level: zspage. Persistent across reuse (inv. 4).
  ZsPageLock lock;
  // Written when the descriptor is (re)used, before the zspage is published; read by
  // translators before they take the class lock (relaxed: validated afterwards).
  std::atomic<std::uint16_t> class_index{0};
  // Guarded by the class lock:
  std::uint16_t inuse;
  std::uint16_t freeobj;
  std::uint8_t fullness;
  ZsState state;
  // Immutable while the zspage lives:
  std::uint8_t nframes;
  std::uint8_t pad_;
  // Fullness-list links (descriptor ids, 0 = none). Guarded by the class lock.
  ZsPageId prev;
  ZsPageId next;
  // Frame ids. Written at creation (before publication) and by migration (class lock +
  // zspage write lock); read under the zspage read lock or the class lock. Only
  // frames[0..nframes) exist: the table allocates 24 + 4 * chain_size bytes per descriptor.
  FrameId frames[16];
};

inline constexpr std::size_t kZsPageHeaderBytes = offsetof(ZsPage, frames);
static_assert(kZsPageHeaderBytes == 24);

// Descriptor storage: ids from 1, never unmapped while the pool lives, so a stale id is
// always safe to dereference (inv. 4).
class ZsPageTable {
 public:
  ZsPageTable() noexcept = default;
  ~ZsPageTable();
  ZsPageTable(const ZsPageTable&) = delete;
  ZsPageTable& operator=(const ZsPageTable&) = delete;

  [[nodiscard]] Result<void> init(std::size_t max_zspages, unsigned chain) noexcept;
  [[nodiscard]] Result<ZsPageId> alloc() noexcept;
  void free(ZsPageId id) noexcept;

  ZsPage* get(ZsPageId id) const noexcept {
    return reinterpret_cast<ZsPage*>(base_ + static_cast<std::size_t>(id) * stride_);
  }
  std::size_t metadata_bytes() const noexcept {
    return static_cast<std::size_t>(next_.load(std::memory_order_relaxed)) * stride_;
  }
  ZsPageId limit() const noexcept { return next_.load(std::memory_order_relaxed); }

 private:
  std::byte* base_ = nullptr;  // immutable after init
  std::size_t stride_ = 0;
  std::size_t max_ = 0;
  // Protects: free_head_. Level: frame_arena (leaf, spinning; never nested with the arena).
  SpinLock lock_{LockLevel::frame_arena, "zspage_table"};
  ZsPageId free_head_ = 0;               // linked through ZsPage::next
  std::atomic<ZsPageId> next_{1};        // next never-used id
};

}  // namespace uzram

#endif  // UZRAM_POOL_ZSPAGE_H_

// pool/zspage.h - ZsPage (the zspage descriptor) and ZsPageTable (layer 2).
//
// A zspage is a chain of 1..chain_size frames holding objs_per_zspage objects of one size
// class; object i occupies bytes [i*size, (i+1)*size) of the chain and may straddle a
// frame boundary. Objects have no header, and free slots hold nothing either: the free
// list lives in the handle table (docs/design.md#free-lists). Every slot below `fresh` has
// a handle index bound to it for life: an allocated entry while the slot holds an object,
// a *parked* entry (HandleTable::parked: the slot, the next parked index) while it is
// free; free_head chains the parked ones. Slots from `fresh` up have never been used and
// get a new index when first allocated. So free() writes only the entry it already read
// and the descriptor - never the object's frame. Which handle owns a slot is known only
// from the handle entries (pool/reverse_index.h).
//
// An emptied zspage's descriptor stays with its class (SizeClass::spare) with its parked
// chain, and a new zspage of the class reuses it with new frames: the chain's slots are
// valid in any zspage of the class.
//
// Invariants (checked by Pool::check_invariants, cited by number):
//   1. inuse + |parked chain| == fresh <= objs_per_zspage; exactly inuse allocated handle
//      entries name the zspage, each a different slot below fresh; the chain's slots are
//      the other slots below fresh, each once.
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
#include "pool/geometry.h"
#include "sync/zspage_lock.h"
#include "uzram/result.h"

namespace uzram {

using ZsPageId = std::uint32_t;

enum class ZsState : std::uint8_t {
  free = 0,      // descriptor unused, or a spare of its class (SizeClass::spare)
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

// Fullness groups 0..kRoomGroups hold zspages with a free slot (kRoomMask: their bits in
// SizeClass::nonempty); group 11 is full.
inline constexpr int kRoomGroups = 10;
inline constexpr unsigned kRoomMask = (1u << (kRoomGroups + 1)) - 1;

struct ZsPage {
  // Written when the descriptor is first used, before the zspage is published (a spare
  // keeps its class); read under the class lock, and by migration to find the class.
  std::atomic<std::uint16_t> class_index{0};
  // Guarded by the class lock (the lock of the class this descriptor belongs to: not
  // expressible as ZS_GUARDED_BY; every PoolImpl function that touches them is
  // ZS_REQUIRES(c.lock) on that class, docs/locking.md#contracts-the-compiler-checks):
  std::uint16_t inuse;
  std::uint16_t fresh;  // slots [fresh, objs_per_zspage) were never handed out
  std::uint8_t fullness;
  ZsState state;
  std::uint32_t free_head;  // handle index of the first parked (free) slot; 0 = none
  // Fullness-list links (descriptor ids, 0 = none); `next` also links a class's spares.
  // Guarded by the class lock.
  ZsPageId prev;
  ZsPageId next;
  // The zspage lock (sync/zspage_lock.h). Level: zspage. Persistent across reuse (inv. 4).
  // Right before the frame ids: a read touches only these two (one cache line mostly).
  ZsPageLock lock;
  // Frame ids. Written at creation (before publication) and by migration (class lock +
  // zspage write lock); read under the zspage read lock or the class lock. Only
  // frames[0..n) exist (n = the class's pages_per_zspage; the descriptor's table
  // holds it too): the table allocates 20 + 4 * n bytes per descriptor.
  FrameId frames[16];
};

inline constexpr std::size_t kZsPageHeaderBytes = offsetof(ZsPage, frames);
static_assert(kZsPageHeaderBytes == 24);

// Descriptor storage, one table per chain length n (1..chain), each with stride
// kZsPageHeaderBytes + 4 * n: a descriptor takes only the frame slots its zspage has (at
// chain 8 an average lognormal pool needs 32 bytes instead of the kernel's 56). An id is
// (n - 1) << index_bits | index, index >= 1, so it is never 0 and stays within the 28-bit
// owner field of a frame; index_bits = 28 - bit_width(chain - 1) (25 at chain 8). Tables
// are never unmapped while the pool lives, so a stale id is always safe to dereference
// (inv. 4).
class ZsPageTable {
 public:
  ZsPageTable() noexcept = default;
  ~ZsPageTable();
  ZsPageTable(const ZsPageTable&) = delete;
  ZsPageTable& operator=(const ZsPageTable&) = delete;

  // max_frames bounds every table: no more than max_frames / n zspages of n frames.
  [[nodiscard]] Result<void> init(std::size_t max_frames, unsigned chain) noexcept;
  // A new descriptor for a zspage of nframes (1..chain) frames. Descriptors are never
  // freed: an emptied zspage's stays with its class (SizeClass::spare). Errors: no_memory.
  [[nodiscard]] Result<ZsPageId> alloc(unsigned nframes) noexcept;

  ZsPage* get(ZsPageId id) const noexcept {
    const Layout& l = layout_[id >> index_bits_];
    return reinterpret_cast<ZsPage*>(l.base +
                                     static_cast<std::size_t>(id & index_mask_) * l.stride);
  }
  // Bytes of descriptor storage ever handed out (the tables' high-water marks).
  std::size_t metadata_bytes() const noexcept;
  // The resident bytes of the descriptors handed out so far (mincore).
  std::size_t resident_bytes() const noexcept;
  // The number of ids ever handed out, an upper bound on live zspages.
  std::size_t limit() const noexcept;

 private:
  // Read on every translation: kept apart from the mutable part (no false sharing).
  struct Layout {
    std::byte* base = nullptr;
    std::size_t stride = 0;
  };
  struct Table {
    std::size_t max = 0;                 // largest index
    std::atomic<std::uint32_t> next{1};  // next never-used index
  };
  // Immutable after init:
  alignas(64) Layout layout_[kMaxChain];
  unsigned chain_ = 0;
  unsigned index_bits_ = 28;
  std::uint32_t index_mask_ = 0;
  alignas(64) Table tables_[kMaxChain];
};

}  // namespace uzram

#endif  // UZRAM_POOL_ZSPAGE_H_

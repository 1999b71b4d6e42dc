// pool/handle_table.h - HandleTable: handle -> object location words (layer 2).
//
// A handle is `(gen << 32) | index` with index >= 1, so 0 and the kernel's -errno values
// are never handles. Each index owns one 64-bit entry word, never moved or freed while the
// pool lives (chunks of 4 Ki entries, allocated on demand), so translators read it with no
// lock. Entry layout, bit by bit:
//   allocated:  bit 0 = 1 | bits 1..11 object index in zspage | bits 12..23 size - 1 |
//               bits 24..51 zspage id | bits 52..63 gen
//   parked:     bit 0 = 0 | bits 1..11 free slot in its zspage | bits 12..43 next parked
//               index of that zspage (0 = none) | bits 52..63 gen
//   large:      (an allocated entry of a run class's group, docs/units.md) bit 0 = 1 |
//               bits 1..23 size - 1 (the object index is always 0) | zspage id and gen as
//               above. Which layout an entry has follows from its group.
// Run-class groups (group >= aux_from, set at init) also have an *aux* word per entry, in
// a chunk mapped with the entry chunk: the large object's tail handle (0 = no tail),
// written before the entry is published and constant while the object lives.
// An index is bound to one slot of one zspage descriptor of its class: allocated while
// the slot holds an object, parked while it is free (the zspage's free list, threaded
// through the entries: pool/zspage.h). A never-used index reads 0 (parked, gen 0).
// Invariants: 1. an allocated entry's gen equals its handle's gen; free() bumps gen, so a
//   stale handle is detected (mod 4096). 2. An allocated entry names a live zspage of its
//   group's class and a slot that is not free, and no other entry names that slot.
//   3. An index stays in its group for the table's lifetime (an object never changes
//   class), so the group of a handle's index is its class.
// Entries are handed out per group (the pool's size class) from chunks owned by that
// group, so one class's handles can be scanned without reading the others'.
// Writers of an entry: alloc, free and compaction, all under the class lock (compaction
// also holds the source zspage's write lock). The release store publishing a location
// pairs with the acquire loads in translation (Pool read/write paths).
#ifndef UZRAM_POOL_HANDLE_TABLE_H_
#define UZRAM_POOL_HANDLE_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sync/mutex.h"
#include "sync/spin_lock.h"
#include "uzram/result.h"

namespace uzram {

struct Location {
  std::uint32_t zspage;  // descriptor id, >= 1
  std::uint32_t obj;     // object index within the zspage
  std::uint32_t size;    // allocated size in bytes, 1..4096
};

class HandleTable {
 public:
  static constexpr unsigned kChunkShift = 12;  // 4 Ki entries (32 KiB) per chunk
  static constexpr std::uint32_t kChunkEntries = 1u << kChunkShift;
  // One per size-class slot (255) and run class (16: runs of 1..16 frames), plus an
  // unused one (kGroups also means "every group" in for_each_allocated).
  static constexpr unsigned kGroups = 272;
  static constexpr std::uint64_t kAllocated = 1;
  static constexpr unsigned kGenShift = 52;

  HandleTable() noexcept = default;
  ~HandleTable();
  HandleTable(const HandleTable&) = delete;
  HandleTable& operator=(const HandleTable&) = delete;

  // Groups from aux_from up (kGroups: none) get an aux word per entry. reserve_chunks
  // entry chunks and aux_reserve_chunks aux chunks are mapped and populated now (one
  // mapping each), and grow() hands them out before it maps any (a pool that must not ask
  // the kernel for memory while it serves: PoolOptions::reserve_handles). Errors:
  // no_memory.
  [[nodiscard]] Result<void> init(std::size_t max_handles, unsigned aux_from = kGroups,
                                  std::size_t reserve_chunks = 0,
                                  std::size_t aux_reserve_chunks = 0) noexcept;
  // Chunks (entry and aux) grow() mapped because the reserves were used up, since init.
  std::size_t chunks_mapped_on_demand() const noexcept {
    return mapped_on_demand_.load(std::memory_order_relaxed);  // statistics
  }

  // A group's state is guarded by a lock of the caller's, `group_lock`: the pool uses the
  // size class as the group and its class lock as the guard (an object never changes
  // class, so a class's handles stay in its chunks, and compaction scans only those).
  //
  // Hands out a never-used index of `group`'s chunks and returns its handle value (gen
  // 0), or 0 when the group has no room left: then call grow(group) with no lock held
  // and try again.
  std::uint64_t alloc_locked(unsigned group, const SpinLock& group_lock) noexcept
      ZS_REQUIRES(group_lock);
  // True when alloc_locked(group) can succeed n times without grow(). n <= kChunkEntries.
  bool has_room_locked(unsigned group, std::uint32_t n, const SpinLock& group_lock) const noexcept
      ZS_REQUIRES(group_lock);
  // Maps a chunk for `group` (its next alloc_locked() takes it). Sleeps; no lock held.
  [[nodiscard]] bool grow(unsigned group) noexcept ZS_EXCLUDES(grow_lock_);

  static std::uint32_t index_of(std::uint64_t handle) noexcept {
    return static_cast<std::uint32_t>(handle);
  }
  static std::uint64_t gen_of_handle(std::uint64_t handle) noexcept {
    return (handle >> 32) & 0xfff;
  }

  // The entry of a handle value, or nullptr when its index was never handed out.
  std::atomic<std::uint64_t>* entry(std::uint32_t index) const noexcept {
    if (index == 0 || index >= limit_.load(std::memory_order_acquire)) return nullptr;
    // acquire: pairs with the release store of the chunk pointer in grow().
    return chunks_[index >> kChunkShift].load(std::memory_order_acquire) +
           (index & (kChunkEntries - 1));
  }

  // The aux word of an index of a group >= aux_from (the entry exists).
  std::atomic<std::uint64_t>* aux(std::uint32_t index) const noexcept {
    // acquire: pairs with the release store of the entry chunk in grow() (aux first).
    return aux_[index >> kChunkShift].load(std::memory_order_acquire) +
           (index & (kChunkEntries - 1));
  }

  static std::uint64_t encode_large(std::uint32_t zspage, std::uint32_t size,
                                    std::uint64_t gen) noexcept {
    return kAllocated | (std::uint64_t{size - 1} << 1) | (std::uint64_t{zspage} << 24) |
           (gen << kGenShift);
  }
  static Location decode_large(std::uint64_t e) noexcept {
    return {static_cast<std::uint32_t>((e >> 24) & ((1u << 28) - 1)), 0,
            static_cast<std::uint32_t>(((e >> 1) & 0x7fffff) + 1)};
  }
  static std::uint64_t encode(const Location& l, std::uint64_t gen) noexcept {
    return kAllocated | (std::uint64_t{l.obj} << 1) | (std::uint64_t{l.size - 1} << 12) |
           (std::uint64_t{l.zspage} << 24) | (gen << kGenShift);
  }
  static Location decode(std::uint64_t e) noexcept {
    return {static_cast<std::uint32_t>((e >> 24) & ((1u << 28) - 1)),
            static_cast<std::uint32_t>((e >> 1) & 0x7ff),
            static_cast<std::uint32_t>(((e >> 12) & 0xfff) + 1)};
  }
  static bool is_allocated(std::uint64_t e) noexcept { return e & kAllocated; }
  static std::uint64_t gen_of(std::uint64_t e) noexcept { return e >> kGenShift; }
  // The generation a freed entry takes (a stale handle no longer matches it).
  static std::uint64_t next_gen(std::uint64_t gen) noexcept { return (gen + 1) & 0xfff; }
  static std::uint64_t parked(std::uint32_t obj, std::uint32_t next, std::uint64_t gen) noexcept {
    return (std::uint64_t{obj} << 1) | (std::uint64_t{next} << 12) | (gen << kGenShift);
  }
  static std::uint32_t parked_obj(std::uint64_t e) noexcept {
    return static_cast<std::uint32_t>((e >> 1) & 0x7ff);
  }
  static std::uint32_t parked_next(std::uint64_t e) noexcept {
    return static_cast<std::uint32_t>(e >> 12);
  }

  // Calls f(index, entry word) for every allocated entry of `group` (all groups when
  // group == kGroups). A snapshot without locks (relaxed loads): entries may change
  // meanwhile, so callers re-check what they use.
  template <class F>
  void for_each_allocated(unsigned group, F&& f) const noexcept {
    const std::uint32_t n = limit_.load(std::memory_order_acquire) >> kChunkShift;
    for (std::uint32_t k = 0; k < n; k++) {
      const ChunkMeta& m = meta_[k];
      if (group != kGroups && m.group != group) continue;
      // acquire: pairs with the release increment in alloc(), after the entry's first write.
      const std::uint32_t used = m.touched.load(std::memory_order_acquire);
      const std::atomic<std::uint64_t>* base = chunks_[k].load(std::memory_order_acquire);
      for (std::uint32_t i = 0; i < used; i++) {
        const std::uint64_t v = base[i].load(std::memory_order_relaxed);
        if (is_allocated(v)) f((k << kChunkShift) | i, v);
      }
    }
  }

  // The group whose chunks hold `index` (index < the table's limit).
  unsigned group_of(std::uint32_t index) const noexcept {
    return meta_[index >> kChunkShift].group;
  }

  // Entries ever handed out, rounded up to whole pages per chunk: the resident bytes (a
  // chunk's untouched tail is never faulted in).
  std::size_t metadata_bytes() const noexcept;
  // The resident bytes of the table, directory included (mincore).
  std::size_t resident_bytes() const noexcept;

 private:
  struct ChunkMeta {
    std::uint16_t group = 0;                // written before the chunk is published
    std::atomic<std::uint32_t> touched{0};  // entries handed out at least once
  };
  struct Group {
    // Guarded by the caller's lock for this group (the pool's class lock):
    std::uint32_t chunk = 0;  // chunk + 1 that new entries come from; 0 = none yet
    // A mapped chunk + 1 waiting to become `chunk`. Set by grow() under grow_lock_
    // (release), taken by alloc_locked() (acquire exchange).
    std::atomic<std::uint32_t> spare{0};
  };

  std::atomic<std::atomic<std::uint64_t>*>* chunks_ =
      nullptr;                 // directory; immutable pointer after init
  ChunkMeta* meta_ = nullptr;  // per chunk; immutable pointer
  // Aux chunks of aux groups' entry chunks (null for others); same directory shape.
  std::atomic<std::atomic<std::uint64_t>*>* aux_ = nullptr;
  unsigned aux_from_ = kGroups;
  std::size_t max_chunks_ = 0;
  // Chunks mapped at init: [base, base + chunks chunks), immutable after init; `used` of
  // them were handed out (guarded by grow_lock_).
  struct Reserve {
    std::byte* base = nullptr;
    std::size_t chunks = 0;
    std::size_t used = 0;
    bool holds(const void* p) const noexcept;
    [[nodiscard]] Result<void> map(std::size_t n) noexcept;  // at init
  };
  // A chunk grow() took: the reserve's next one, or mapped now.
  struct Taken {
    void* p = nullptr;  // null: mmap failed
    bool reserved = false;
  };
  // The next chunk of `r` while it lasts, else a new mapping; neither is counted until
  // keep_chunk(), so a grow() that fails halfway gives back only what it mapped.
  static Taken take_chunk(const Reserve& r) noexcept;
  void keep_chunk(const Taken& t, Reserve& r) noexcept ZS_REQUIRES(grow_lock_);

  Reserve reserve_;      // entry chunks
  Reserve aux_reserve_;  // aux chunks
  // Chunks mapped by grow() beyond the reserves. Written under grow_lock_.
  std::atomic<std::size_t> mapped_on_demand_{0};
  // Indexes below limit_ exist (their chunk is mapped). Written under grow_lock_.
  std::atomic<std::uint32_t> limit_{0};
  // Protects: chunk allocation (limit_, chunks_ and meta_ entries at and above it, each
  // group's spare; all but the last read lock-free). Level: handle_table (leaf;
  // sleepable: calls mmap).
  Mutex grow_lock_{LockLevel::handle_table, "handle_table"};
  Group groups_[kGroups];
};

}  // namespace uzram

#endif  // UZRAM_POOL_HANDLE_TABLE_H_

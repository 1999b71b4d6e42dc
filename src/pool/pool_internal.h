// pool/pool_internal.h - the pool's internal interface (layer 2): what tests, benchmarks
// and the pool's own sources use beyond include/uzram/pool.h. Not installed.
//
// - The kernel-faithful translation mode, kept to be measured and tested against the
//   default (docs/locking.md#translation, docs/design.md#translation-policy).
// - Frame migration and arena packing (the kernel's movable_ops, driven by tests and
//   benchmarks; no user of the store or the C API needs them).
// - The compaction hold-time histogram (benchmarks).
#ifndef UZRAM_POOL_POOL_INTERNAL_H_
#define UZRAM_POOL_POOL_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "uzram/pool.h"

namespace uzram {

// How a handle is translated to its zspage (docs/locking.md#translation).
enum class TranslationMode : std::uint8_t {
  // Lock-free: read the handle word, lock the zspage, re-check the word. No shared write
  // on the hot path. What Pool::create makes.
  validated,
  // The kernel's: a pool-wide rwlock taken in read mode around every translation of a
  // read or write, in write mode by compaction and migration. Kept to measure the
  // difference. (free takes no pool lock in either mode, as the kernel's 2026 zs_free.)
  kernel_rwlock,
};

// Pool::create with a translation mode. Errors: those of Pool::create.
[[nodiscard]] Result<std::unique_ptr<Pool>> create_pool(const PoolOptions& options,
                                                        TranslationMode mode) noexcept;
[[nodiscard]] TranslationMode translation_mode(const Pool& pool) noexcept;

// Moves one in-use frame to a newly allocated frame; handles stay valid. Errors:
// invalid_argument (not a frame of a live zspage), busy (its zspage is read-locked or the
// frame is isolated: the kernel's -EINVAL), no_memory. docs/locking.md#migration.
[[nodiscard]] Result<std::uint32_t> migrate_frame(Pool& pool, std::uint32_t frame) noexcept;
// Migrates in-use frames from the top of the arena into free frames below them, so the
// arena's high-water mark drops; at most `max_frames` moves. Returns frames moved.
std::size_t pack(Pool& pool, std::size_t max_frames) noexcept;

// Hold time of the lock a compaction step holds exclusively (the pool write lock in
// kernel_rwlock mode, the class lock in validated mode): bucket i counts steps that held
// it for [2^i, 2^(i+1)) ns, since the pool was created.
struct CompactHoldHistogram {
  std::uint64_t ns_log2[32] = {};
};
[[nodiscard]] CompactHoldHistogram compact_hold_histogram(const Pool& pool) noexcept;

// Handle-table chunks (entry and aux) mapped while the pool served, beyond those reserved
// at create (PoolOptions::reserve_handles): 0 for a swap store's pool that never asked the
// kernel for memory after create.
[[nodiscard]] std::size_t handle_chunks_mapped_on_demand(const Pool& pool) noexcept;

}  // namespace uzram

#endif  // UZRAM_POOL_POOL_INTERNAL_H_

// Every lock level of the layers up to the pool is taken by the pool's own paths, and
// the checker sees each acquisition (lockdep::acquisitions). The levels of the store and
// the servers are driven by their layers' tests in this directory.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <vector>

#include "pool/pool_internal.h"
#include "sync/lock_order.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

// The levels the pool layer and the sync layer below it own.
constexpr LockLevel kPoolLevels[] = {
    LockLevel::frame,        LockLevel::pool,        LockLevel::size_class, LockLevel::zspage,
    LockLevel::handle_table, LockLevel::frame_arena, LockLevel::worker,
};

std::map<LockLevel, std::uint64_t> snapshot() {
  std::map<LockLevel, std::uint64_t> m;
  for (LockLevel l : kLockLevels) m[l] = lockdep::acquisitions(l);
  return m;
}

// alloc (class lock, handle-table growth, frame allocation), write and read (zspage read
// lock; the pool lock in kernel_rwlock mode), migration and pack (frame locks, zspage
// write lock), compaction, free and free_batch (frame locks of emptied zspages; the decay
// worker's timer).
void drive(TranslationMode mode) {
  PoolOptions o;
  o.name = "lockorder";
  o.max_bytes = std::size_t{64} << 20;
  auto pool = std::move(create_pool(o, mode).value());
  std::vector<Handle> hs;
  std::vector<unsigned char> buf(kPageSize, 0x5a), copy(kPageSize);
  for (unsigned i = 0; i < 2000; i++) {
    const std::size_t size = 32 + (i * 37) % 4000;
    hs.push_back(pool->alloc(size).value());
    pool->write(hs.back(), buf.data(), size);
  }
  for (Handle h : hs) {
    const void* mem = pool->read_begin(h, copy.data());
    EXPECT_EQ(std::memcmp(mem, buf.data(), 1), 0);
    pool->read_end(h, mem);
  }
  for (std::uint32_t f = 0; f < 8; f++) (void)migrate_frame(*pool, f);
  for (std::size_t i = 0; i < hs.size(); i += 2) pool->free(hs[i]);
  (void)pool->compact();
  (void)pack(*pool, 8);
  std::vector<Handle> rest;
  for (std::size_t i = 1; i < hs.size(); i += 2) rest.push_back(hs[i]);
  pool->free_batch(rest.data(), rest.size());
  pool->flush_deferred();
  pool->check_invariants();
}

TEST(PoolLockLevelsTest, EveryPoolLevelIsTakenAndSeen) {
  if (!kLockDebug) GTEST_SKIP() << "lock-order checker compiled out (UZRAM_DEBUG_LEVEL < 2)";
  const auto before = snapshot();
  drive(TranslationMode::validated);
  const auto validated = snapshot();
  EXPECT_EQ(validated.at(LockLevel::pool), before.at(LockLevel::pool))
      << "the validated translation takes no pool lock";
  drive(TranslationMode::kernel_rwlock);
  const auto after = snapshot();
  for (LockLevel l : kPoolLevels) {
    EXPECT_GT(after.at(l), before.at(l)) << lock_level_name(l) << " was never taken";
  }
  for (LockLevel l : {LockLevel::size_class, LockLevel::zspage, LockLevel::frame_arena}) {
    EXPECT_GT(validated.at(l), before.at(l)) << lock_level_name(l);
  }
  EXPECT_EQ(lockdep::held_count(), 0);
}

}  // namespace
}  // namespace uzram

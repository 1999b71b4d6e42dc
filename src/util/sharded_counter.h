// util/sharded_counter.h - ShardedCounter: a statistics counter spread over cache-line
// padded shards (layer 0), so threads that count on every operation do not bounce one
// cache line between cores. Same member names as std::atomic<uint64_t> for the subset the
// store uses. Reads sum the shards: a snapshot, exact only when no update runs meanwhile.
#ifndef UZRAM_UTIL_SHARDED_COUNTER_H_
#define UZRAM_UTIL_SHARDED_COUNTER_H_

#include <atomic>
#include <cstdint>

namespace uzram {

// A per-thread index in [0, 16), assigned round-robin at a thread's first call.
inline unsigned thread_shard() noexcept {
  static std::atomic<unsigned> next{0};
  thread_local const unsigned mine = next.fetch_add(1, std::memory_order_relaxed) % 16;
  return mine;
}

class ShardedCounter {
 public:
  static constexpr unsigned kShards = 16;
  // relaxed everywhere: statistics, ordered by nothing.
  void fetch_add(std::uint64_t v, std::memory_order = std::memory_order_relaxed) noexcept {
    shards_[thread_shard()].v.fetch_add(static_cast<std::int64_t>(v), std::memory_order_relaxed);
  }
  void fetch_sub(std::uint64_t v, std::memory_order = std::memory_order_relaxed) noexcept {
    shards_[thread_shard()].v.fetch_sub(static_cast<std::int64_t>(v), std::memory_order_relaxed);
  }
  std::uint64_t load(std::memory_order = std::memory_order_relaxed) const noexcept {
    std::int64_t sum = 0;
    for (const Shard& s : shards_) sum += s.v.load(std::memory_order_relaxed);
    return static_cast<std::uint64_t>(sum);
  }
  // Sets the total (the other shards are zeroed). Only when no update runs concurrently.
  void store(std::uint64_t v, std::memory_order = std::memory_order_relaxed) noexcept {
    for (Shard& s : shards_) s.v.store(0, std::memory_order_relaxed);
    shards_[0].v.store(static_cast<std::int64_t>(v), std::memory_order_relaxed);
  }

 private:
  struct alignas(64) Shard {
    std::atomic<std::int64_t> v{0};
  };
  Shard shards_[kShards];
};

}  // namespace uzram

#endif  // UZRAM_UTIL_SHARDED_COUNTER_H_

// nbd/stats.h - ServerStats: what the NBD server counts for its metrics (layer 4, nbd):
// connections, and per command the requests, bytes, errors and a latency histogram; and
// the bytes of request and reply buffers allocated now (the `nbd_buffers` line of the
// memory breakdown).
//
// Cheap on the request path: each thread adds to its own shard (thread_shard(), 16
// cache-line aligned shards of plain relaxed atomics), so connections on different cores
// never share a line; a snapshot sums the shards. Latency buckets are fixed powers of two
// of microseconds (bucket i: [2^i, 2^(i+1)) us, bucket 0 also below 1 us, the last one
// everything from 2^(kLatencyBuckets-1) us = 33.6 s on).
//
// Thread safety: every method from any thread; counters are relaxed atomics (statistics,
// ordered by nothing: a snapshot taken during traffic is a mix of moments).
#ifndef UZRAM_NBD_STATS_H_
#define UZRAM_NBD_STATS_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include "util/sharded_counter.h"

namespace uzram::nbd {

// The commands counted, in this order (NBD_CMD_DISC is not a request with a reply).
enum class StatCmd : unsigned {
  read,
  write,
  flush,
  trim,
  write_zeroes,
  block_status,
  cache,
  other
};
inline constexpr unsigned kStatCmds = 8;
inline constexpr const char* kStatCmdNames[kStatCmds] = {
    "read", "write", "flush", "trim", "write_zeroes", "block_status", "cache", "other"};
inline constexpr unsigned kLatencyBuckets = 26;

// The bucket of a latency: floor(log2(microseconds)), clamped to [0, kLatencyBuckets).
inline unsigned latency_bucket(std::chrono::nanoseconds d) noexcept {
  const auto us = static_cast<std::uint64_t>(d.count() < 0 ? 0 : d.count()) / 1000;
  if (us == 0) return 0;
  const unsigned b = 63u - static_cast<unsigned>(__builtin_clzll(us));
  return b < kLatencyBuckets ? b : kLatencyBuckets - 1;
}

struct CommandSnapshot {
  std::uint64_t requests = 0;
  std::uint64_t bytes = 0;       // READ/WRITE payload, TRIM/WRITE_ZEROES range lengths
  std::uint64_t errors = 0;      // replies with an error
  std::uint64_t latency_ns = 0;  // sum of the latencies (request read to reply sent)
  std::array<std::uint64_t, kLatencyBuckets> buckets{};  // per bucket, not cumulative
};

struct StatsSnapshot {
  std::uint64_t connections_accepted = 0;  // every connection accepted, cumulative
  std::uint64_t sessions = 0;              // connections that entered transmission, cumulative
  std::uint64_t negotiating = 0;           // now (with threads; waiting ones excluded)
  std::uint64_t transmitting = 0;          // now
  std::uint64_t buffer_bytes = 0;          // request and reply buffers allocated now
  std::array<CommandSnapshot, kStatCmds> commands{};
};

class ServerStats {
 public:
  void accepted() noexcept { shard().accepted.fetch_add(1, std::memory_order_relaxed); }
  void session_started() noexcept { shard().sessions.fetch_add(1, std::memory_order_relaxed); }
  // One request's reply went out (or was given up): its command, size, error and latency.
  void request_done(StatCmd cmd, std::uint64_t bytes, bool error,
                    std::chrono::nanoseconds latency) noexcept {
    Shard& s = shard();
    const auto c = static_cast<unsigned>(cmd);
    s.requests[c].fetch_add(1, std::memory_order_relaxed);
    s.bytes[c].fetch_add(bytes, std::memory_order_relaxed);
    if (error) s.errors[c].fetch_add(1, std::memory_order_relaxed);
    s.latency_ns[c].fetch_add(static_cast<std::uint64_t>(latency.count()),
                              std::memory_order_relaxed);
    s.buckets[c][latency_bucket(latency)].fetch_add(1, std::memory_order_relaxed);
  }
  void buffers_allocated(std::size_t n) noexcept {
    shard().buffer.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  }
  void buffers_freed(std::size_t n) noexcept {
    shard().buffer.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  }
  // The counters (the current connection counts are the server's: Server::stats()).
  [[nodiscard]] StatsSnapshot snapshot() const noexcept;

 private:
  struct alignas(64) Shard {
    std::atomic<std::uint64_t> accepted{0}, sessions{0};
    std::atomic<std::int64_t> buffer{0};  // allocated on one shard, freed on another
    std::atomic<std::uint64_t> requests[kStatCmds]{}, bytes[kStatCmds]{}, errors[kStatCmds]{},
        latency_ns[kStatCmds]{};
    std::atomic<std::uint64_t> buckets[kStatCmds][kLatencyBuckets]{};
  };
  Shard& shard() noexcept { return shards_[thread_shard()]; }
  Shard shards_[ShardedCounter::kShards];
};

// A nothrow array of T counted in ServerStats::buffer_bytes while it lives (stats may be
// null: not counted). Request payloads, read buffers, extent lists, option data.
template <typename T>
class CountedArray {
 public:
  CountedArray() noexcept = default;
  CountedArray(ServerStats* stats, std::size_t n) noexcept
      : p_(new (std::nothrow) T[n]), n_(p_ ? n : 0), stats_(stats) {
    if (stats_ && n_) stats_->buffers_allocated(n_ * sizeof(T));
  }
  ~CountedArray() { reset(); }
  CountedArray(CountedArray&& o) noexcept : p_(std::move(o.p_)), n_(o.n_), stats_(o.stats_) {
    o.n_ = 0;
  }
  CountedArray& operator=(CountedArray&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::move(o.p_);
      n_ = o.n_;
      stats_ = o.stats_;
      o.n_ = 0;
    }
    return *this;
  }
  CountedArray(const CountedArray&) = delete;
  CountedArray& operator=(const CountedArray&) = delete;
  void reset() noexcept {
    if (stats_ && n_) stats_->buffers_freed(n_ * sizeof(T));
    p_.reset();
    n_ = 0;
  }
  T* get() const noexcept { return p_.get(); }
  T& operator[](std::size_t i) const noexcept { return p_[i]; }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  std::unique_ptr<T[]> p_;
  std::size_t n_ = 0;
  ServerStats* stats_ = nullptr;
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_STATS_H_

// nbd/stats.cc - ServerStats::snapshot(): the shards summed (stats.h).
#include "nbd/stats.h"

namespace uzram::nbd {

StatsSnapshot ServerStats::snapshot() const noexcept {
  StatsSnapshot out;
  std::int64_t buffer = 0;
  const auto ld = [](const std::atomic<std::uint64_t>& a) {
    return a.load(std::memory_order_relaxed);  // relaxed: statistics
  };
  for (const Shard& s : shards_) {
    out.connections_accepted += ld(s.accepted);
    out.sessions += ld(s.sessions);
    buffer += s.buffer.load(std::memory_order_relaxed);
    for (unsigned c = 0; c < kStatCmds; c++) {
      CommandSnapshot& o = out.commands[c];
      o.requests += ld(s.requests[c]);
      o.bytes += ld(s.bytes[c]);
      o.errors += ld(s.errors[c]);
      o.latency_ns += ld(s.latency_ns[c]);
      for (unsigned b = 0; b < kLatencyBuckets; b++) o.buckets[b] += ld(s.buckets[c][b]);
    }
  }
  out.buffer_bytes = buffer > 0 ? static_cast<std::uint64_t>(buffer) : 0;
  return out;
}

}  // namespace uzram::nbd

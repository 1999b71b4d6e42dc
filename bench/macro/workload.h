// bench/macro/workload.h - the churn workload uzram-bench drives every backend through.
//
// With n objects (slots) and m = 3n/4:
//   1 fill      n x (alloc + write)                               -> memory point "fill"
//   2 read      3 passes over all objects in random order (best pass counts)
//   3 free      free a random m                                    -> point "free75"
//   4 compact   Pool::compact() / malloc_trim(0) or its equivalent -> point "compact"
//   5 refill    m x (alloc + write) back to n live
//   6 churn     `churn` x (free a random object + alloc + write a new one) at n live
//   7 free      free a random m again                              -> point "churn_free75"
//   8 compact   again                                              -> point "churn_compact"
// Sizes come from one seeded stream and victims from another, so every backend sees the
// same operations. Memory is sampled every `interval` operations (outside the timed
// stretches) for the timeline. Contents are verified after steps 1, 4 and 8 (untimed).
//
// A Backend provides: Id alloc_write(const Object&); void free(Id, uint32_t size);
// bool read(Id, uint32_t size, void* dst) (true when it had to copy into a bounce buffer);
// bool verify(Id, const Object&); void measure(MemPoint*) (sets used, frames, metadata from
// payload and rss already filled in); void compact(); const char* name().
#ifndef UZRAM_BENCH_MACRO_WORKLOAD_H_
#define UZRAM_BENCH_MACRO_WORKLOAD_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kernel_layout.h"
#include "object_source.h"
#include "sys_info.h"

namespace uzram::bench {

enum Phase : int { kFill, kRead, kFree, kCompact, kRefill, kChurn, kFree2, kCompact2, kNumPhases };
inline const char* const kPhaseNames[kNumPhases] = {
    "fill", "read", "free75", "compact", "refill", "churn", "churn_free75", "churn_compact"};

struct PhaseTime {
  std::uint64_t ops = 0;
  double ns = 0;  // total time of the timed operations
  double ns_per_op() const { return ops ? ns / static_cast<double>(ops) : 0; }
};

// used: the backend's memory figure (pool: total_pages * 4096 + metadata_bytes; malloc: the
// RSS delta); rss: RSS delta from the start of the run; frames/metadata: pool only.
struct MemPoint {
  std::uint64_t live = 0, payload = 0, used = 0, rss = 0, frames = 0, metadata = 0;
};

struct Sample {
  std::uint64_t op;
  int phase;
  std::uint64_t payload, used, rss;
};

struct WorkloadConfig {
  std::uint64_t objects = 200000;
  std::uint64_t churn = 0;  // 0: same as objects
  std::uint64_t seed = 1;
  bool progress = false;  // \r progress lines on stderr
};

struct WorkloadResult {
  PhaseTime time[kNumPhases];
  MemPoint at_fill, after_free, after_compact, after_churn_free, after_churn_compact;
  std::uint64_t reads = 0, reads_copied = 0;
  LayoutTotals survivors;  // kernel layout of the objects live after step 4
  std::vector<Sample> timeline;
};

template <class Backend>
class Workload {
 public:
  Workload(Backend& b, const ObjectSource& src, const WorkloadConfig& cfg)
      : b_(b), src_(src), cfg_(cfg), sizes_(cfg.seed), ops_(cfg.seed ^ 0x6f70735f726e67ULL) {}

  WorkloadResult run() {
    const std::uint64_t n = cfg_.objects, m = n * 3 / 4;
    const std::uint64_t churn = cfg_.churn ? cfg_.churn : n;
    total_ops_ = n + 3 * m + churn;
    interval_ = std::max<std::uint64_t>(1, total_ops_ / 1000);
    ids_.resize(n);
    objs_.resize(n);
    perm_.resize(n);
    alive_.assign(n, 0);
    rss0_ = rss_bytes();
    sample(kFill);
    timed(kFill, n, [&](std::uint64_t i) { put(i); });
    verify("fill");
    r_.at_fill = point();
    read_passes();
    shuffle();
    timed(kFree, m, [&](std::uint64_t i) { drop(perm_[i]); });
    r_.after_free = point();
    compact(kCompact);
    verify("compact");
    r_.after_compact = point();
    KernelLayout survivors;
    for (std::uint64_t i = 0; i < n; i++) {
      if (alive_[i]) survivors.add(objs_[i].size);
    }
    r_.survivors = survivors.totals();
    timed(kRefill, m, [&](std::uint64_t i) { put(perm_[i]); });
    timed(kChurn, churn, [&](std::uint64_t) {
      const std::uint64_t s = ops_.uniform(n);
      drop(s);
      put(s);
    });
    shuffle();
    timed(kFree2, m, [&](std::uint64_t i) { drop(perm_[i]); });
    r_.after_churn_free = point();
    compact(kCompact2);
    verify("churn_compact");
    r_.after_churn_compact = point();
    for (std::uint64_t i = m; i < n; i++) drop(perm_[i]);
    if (cfg_.progress) std::fprintf(stderr, "\r%-60s\r", "");
    return r_;
  }

 private:
  using Clock = std::chrono::steady_clock;
  using Id = decltype(std::declval<Backend&>().alloc_write(Object{}));

  void put(std::uint64_t slot) {
    objs_[slot] = src_.draw(sizes_);
    ids_[slot] = b_.alloc_write(objs_[slot]);
    alive_[slot] = 1;
    live_++;
    payload_ += objs_[slot].size;
  }
  void drop(std::uint64_t slot) {
    b_.free(ids_[slot], objs_[slot].size);
    alive_[slot] = 0;
    live_--;
    payload_ -= objs_[slot].size;
  }
  void shuffle() {
    for (std::uint64_t i = 0; i < perm_.size(); i++) perm_[i] = i;
    for (std::uint64_t i = perm_.size(); i > 1; i--)
      std::swap(perm_[i - 1], perm_[ops_.uniform(i)]);
  }

  // Runs fn(0..count-1) in stretches of `interval_` operations, timing only the stretches.
  template <class Fn>
  void timed(Phase p, std::uint64_t count, Fn fn) {
    PhaseTime& t = r_.time[p];
    if (p != kFill) sample(p);  // the phase starts here (fill's first sample is taken in run())
    for (std::uint64_t i = 0; i < count;) {
      const std::uint64_t end = std::min(count, i + (interval_ - op_ % interval_));
      const auto t0 = Clock::now();
      for (std::uint64_t j = i; j < end; j++) fn(j);
      t.ns += static_cast<double>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
      t.ops += end - i;
      op_ += end - i;
      i = end;
      if (op_ % interval_ == 0 || i == count) sample(p);
    }
  }

  void compact(Phase p) {
    sample(p);
    const auto t0 = Clock::now();
    b_.compact();
    r_.time[p].ns = static_cast<double>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
    r_.time[p].ops = 1;
    sample(p);
  }

  void read_passes() {
    shuffle();
    alignas(64) static unsigned char dst[4096];
    double best = 0;
    for (int pass = 0; pass < 3; pass++) {
      std::uint64_t copied = 0;
      const auto t0 = Clock::now();
      for (std::uint64_t i = 0; i < perm_.size(); i++) {
        const std::uint64_t s = perm_[i];
        copied += b_.read(ids_[s], objs_[s].size, dst);
        asm volatile("" : : "r"(dst) : "memory");  // the copy must happen
      }
      const double ns = static_cast<double>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
      if (pass == 0 || ns < best) best = ns;
      r_.reads_copied = copied;
      if (cfg_.progress) progress(kRead, static_cast<std::uint64_t>(pass + 1), 3);
    }
    r_.time[kRead] = {perm_.size(), best};
    r_.reads = perm_.size();
  }

  void verify(const char* when) {
    std::uint64_t bad = 0;
    for (std::uint64_t s = 0; s < ids_.size(); s++) {
      if (alive_[s] && !b_.verify(ids_[s], objs_[s])) bad++;
    }
    if (bad) {
      std::fprintf(stderr, "uzram-bench: %s: %llu objects read back wrong after %s\n", b_.name(),
                   static_cast<unsigned long long>(bad), when);
      std::exit(3);
    }
  }

  MemPoint point() {
    MemPoint m;
    m.live = live_;
    m.payload = payload_;
    m.rss = rss_delta();
    b_.measure(&m);
    return m;
  }
  std::uint64_t rss_delta() {
    const std::uint64_t r = rss_bytes();
    return r > rss0_ ? r - rss0_ : 0;
  }
  void sample(Phase p) {
    const MemPoint m = point();
    r_.timeline.push_back({op_, p, m.payload, m.used, m.rss});
    if (cfg_.progress) progress(p, op_, 0);
  }
  void progress(Phase p, std::uint64_t done, std::uint64_t total) {
    const auto now = Clock::now();
    if (now - last_progress_ < std::chrono::milliseconds(100)) return;
    last_progress_ = now;
    if (total) {
      std::fprintf(stderr, "\r  %-16s %-14s %3llu/%llu      ", b_.name(), kPhaseNames[p],
                   static_cast<unsigned long long>(done), static_cast<unsigned long long>(total));
    } else {
      std::fprintf(stderr, "\r  %-16s %-14s %3.0f %% of %.1f M ops   ", b_.name(), kPhaseNames[p],
                   100.0 * static_cast<double>(done) / static_cast<double>(total_ops_),
                   static_cast<double>(total_ops_) / 1e6);
    }
  }

  Backend& b_;
  const ObjectSource& src_;
  const WorkloadConfig cfg_;
  Random sizes_, ops_;
  std::vector<Id> ids_;
  std::vector<Object> objs_;
  std::vector<std::uint64_t> perm_;
  std::vector<std::uint8_t> alive_;
  std::uint64_t total_ops_ = 1, interval_ = 1, op_ = 0, live_ = 0, payload_ = 0, rss0_ = 0;
  Clock::time_point last_progress_{};
  WorkloadResult r_;
};

}  // namespace uzram::bench

#endif  // UZRAM_BENCH_MACRO_WORKLOAD_H_

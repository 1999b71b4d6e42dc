// bench/micro/read_scaling.cc - uzram-read-scaling: read throughput and latency of
// Pool::read_begin/read_end as reader threads are added, with and without a concurrent
// compactor and migrator, in both translation modes, against a bare-memcpy ceiling.
//
//   uzram-read-scaling [--threads 1,2,4,8,16] [--seconds 2] [--objects 65536] [--size 1536]
//                      [--sample-every 16] [--seed 42] [--churn 0.25] [--bg compact,migrate]
//                      [--frame-cache 64] [--modes LIST]
//                      [--json[=FILE]]
// Modes: memcpy, validated, validated+bg, kernel_rwlock, kernel_rwlock+bg. "+bg" adds two
// threads that are never measured: a compactor (frees and reallocates a fraction of the
// objects the readers are NOT reading, then compact(), in a loop) and a migrator
// (migrate_frame() on random frames below stats().arena_frames, in a loop).
//
// The pool holds two interleaved halves, A and B, of --objects objects each. Readers read
// random objects of the active half; the compactor churns the other half (so compaction
// moves the readers' objects, which share zspages with the churned ones), then flips the
// active half and waits until every reader has seen the flip (each reader publishes the
// epoch it uses in its own cache line) before it touches the half it left. Each object's
// first 8 bytes are its handle; every read checks them (errors are counted, exit code 1).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "pool/pool_internal.h"
#include "read_scaling.h"
#include "util/random.h"
#include "uzram/pool.h"

namespace uzram::bench {
namespace {

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}
// Keeps the copy: the compiler must assume *p is read.
inline void escape(const void* p) noexcept { asm volatile("" : : "g"(p) : "memory"); }

struct alignas(64) Reader {
  std::atomic<std::uint64_t> epoch{0};  // the epoch whose half this reader now reads
  std::uint64_t ops = 0, errors = 0, seen = 0;
  std::vector<std::uint32_t> samples;  // reservoir of sampled latencies (ns)
};

struct Shared {
  const Options* o = nullptr;
  Pool* pool = nullptr;                  // null: memcpy mode
  const unsigned char* plain = nullptr;  // memcpy mode's buffer
  std::vector<Handle> half[2];           // the pool's two halves
  std::atomic<std::uint64_t> epoch{0};   // readers read half[epoch & 1]
  std::atomic<bool> go{false}, stop{false};
  std::atomic<unsigned> ready{0};
  std::vector<std::unique_ptr<Reader>> readers;
  std::uint64_t churn_cycles = 0;
};

void wait_go(Shared& s) {
  s.ready.fetch_add(1, std::memory_order_acq_rel);
  while (!s.go.load(std::memory_order_acquire)) std::this_thread::yield();
}

void reader_main(Shared& s, Reader& me, std::uint64_t seed) {
  Random rng(seed);
  const std::size_t n = s.o->objects, size = s.o->size;
  const std::uint64_t mask = s.o->sample_every - 1;
  alignas(64) unsigned char dst[kMaxObjectSize];
  std::uint64_t my_epoch = s.epoch.load(std::memory_order_acquire);
  me.epoch.store(my_epoch, std::memory_order_release);
  wait_go(s);
  std::uint64_t ops = 0, errors = 0;
  while (!s.stop.load(std::memory_order_relaxed)) {
    const std::uint64_t e = s.epoch.load(std::memory_order_acquire);
    if (e != my_epoch) {  // release: our reads of the old half happen before the flip ack
      my_epoch = e;
      me.epoch.store(e, std::memory_order_release);
    }
    const std::uint64_t r = rng.next();
    const std::size_t i = static_cast<std::size_t>(((r >> 32) * n) >> 32);
    const bool timed = (++ops & mask) == 0;
    const std::uint64_t t0 = timed ? now_ns() : 0;
    std::uint64_t tag, want;
    if (s.pool) {
      const Handle h = s.half[e & 1][i];
      const void* p = s.pool->read_begin(h, dst);
      if (p != dst) std::memcpy(dst, p, size);  // a spanning object was copied by read_begin
      escape(dst);
      s.pool->read_end(h, p);
      want = static_cast<std::uint64_t>(h);
    } else {
      std::memcpy(dst, s.plain + i * size, size);
      escape(dst);
      want = i;
    }
    std::memcpy(&tag, dst, sizeof tag);
    errors += tag != want;
    if (timed) {
      const std::uint64_t ns = now_ns() - t0;
      const auto v = static_cast<std::uint32_t>(std::min<std::uint64_t>(ns, UINT32_MAX));
      if (me.seen < me.samples.size()) {
        me.samples[me.seen] = v;
      } else if (const std::uint64_t j = rng.uniform(me.seen + 1); j < me.samples.size()) {
        me.samples[j] = v;  // reservoir: a uniform sample of all timed reads
      }
      me.seen++;
    }
  }
  me.ops = ops;
  me.errors = errors;
}

void fill_object(Pool& pool, Handle h, unsigned char* buf, std::size_t size, Random& rng) {
  for (std::size_t k = 0; k + 8 <= size; k += 8) {
    const std::uint64_t x = rng.next();
    std::memcpy(buf + k, &x, 8);
  }
  const auto tag = static_cast<std::uint64_t>(h);
  std::memcpy(buf, &tag, sizeof tag);
  pool.write(h, buf, size);
}

Handle must_alloc(Pool& pool, std::size_t size) {
  auto h = pool.alloc(size);
  if (!h) {
    std::fprintf(stderr, "uzram-read-scaling: alloc(%zu) failed: %s\n", size,
                 h.error().message().c_str());
    std::exit(2);
  }
  return *h;
}

// The compactor: churn the inactive half, compact, flip, wait for every reader to follow.
void compactor_main(Shared& s, std::uint64_t seed) {
  Random rng(seed);
  Pool& pool = *s.pool;
  const std::size_t n = s.o->objects;
  const auto k = static_cast<std::size_t>(static_cast<double>(n) * s.o->churn_fraction);
  std::vector<std::size_t> perm(n);
  for (std::size_t i = 0; i < n; i++) perm[i] = i;
  std::vector<unsigned char> buf(s.o->size);
  wait_go(s);
  while (!s.stop.load(std::memory_order_relaxed)) {
    const std::uint64_t e = s.epoch.load(std::memory_order_relaxed);  // only we write it
    std::vector<Handle>& idle = s.half[(e + 1) & 1];
    for (std::size_t j = 0; j < k; j++) std::swap(perm[j], perm[j + rng.uniform(n - j)]);
    for (std::size_t j = 0; j < k; j++) pool.free(idle[perm[j]]);
    pool.compact();
    for (std::size_t j = 0; j < k; j++) {
      idle[perm[j]] = must_alloc(pool, s.o->size);
      fill_object(pool, idle[perm[j]], buf.data(), s.o->size, rng);
    }
    pool.compact();
    s.churn_cycles++;
    s.epoch.store(e + 1, std::memory_order_release);  // publishes the new handles
    for (auto& r : s.readers) {  // grace period: acquire pairs with the readers' release
      while (r->epoch.load(std::memory_order_acquire) != e + 1 &&
             !s.stop.load(std::memory_order_relaxed)) {
        std::this_thread::yield();
      }
    }
  }
}

void migrator_main(Shared& s, std::uint64_t seed) {
  Random rng(seed);
  Pool& pool = *s.pool;
  wait_go(s);
  std::uint64_t frames = pool.stats().arena_frames;
  for (unsigned it = 1; !s.stop.load(std::memory_order_relaxed); it++) {
    if ((it & 255) == 0) frames = pool.stats().arena_frames;
    if (frames) (void)migrate_frame(pool, static_cast<std::uint32_t>(rng.uniform(frames)));
  }
}

RunResult run_once(Shared& s, const ModeSpec& m, unsigned threads) {
  const Options& o = *s.o;
  RunResult r;
  r.mode = m.name;
  r.threads = threads;
  const PoolStats before = s.pool ? s.pool->stats() : PoolStats{};
  const CompactHoldHistogram hold0 =
      s.pool ? compact_hold_histogram(*s.pool) : CompactHoldHistogram{};
  const std::uint64_t cycles0 = s.churn_cycles;
  const std::size_t cap = std::clamp<std::size_t>(
      static_cast<std::size_t>(o.seconds * 8e6 / o.sample_every), 1u << 16, 1u << 22);
  s.readers.clear();
  for (unsigned t = 0; t < threads; t++) {
    s.readers.push_back(std::make_unique<Reader>());
    s.readers.back()->samples.assign(cap, 0);  // touched now, not while measuring
  }
  s.go = false;
  s.stop = false;
  s.ready = 0;
  std::vector<std::thread> pool_threads;
  for (unsigned t = 0; t < threads; t++) {
    pool_threads.emplace_back(reader_main, std::ref(s), std::ref(*s.readers[t]),
                              o.seed * 1000003 + t);
  }
  unsigned extra = 0;
  if (m.background && o.bg_compact) {
    pool_threads.emplace_back(compactor_main, std::ref(s), o.seed ^ 0xc0ffee);
    extra++;
  }
  if (m.background && o.bg_migrate) {
    pool_threads.emplace_back(migrator_main, std::ref(s), o.seed ^ 0xbeef);
    extra++;
  }
  while (s.ready.load(std::memory_order_acquire) != threads + extra) std::this_thread::yield();
  const std::uint64_t t0 = now_ns();
  s.go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  s.stop.store(true, std::memory_order_relaxed);
  const std::uint64_t t1 = now_ns();
  for (auto& th : pool_threads) th.join();
  r.seconds = static_cast<double>(t1 - t0) * 1e-9;
  std::vector<std::uint32_t> all;
  for (auto& rd : s.readers) {
    r.ops += rd->ops;
    r.errors += rd->errors;
    all.insert(all.end(), rd->samples.begin(),
               rd->samples.begin() + static_cast<std::ptrdiff_t>(
                                         std::min<std::uint64_t>(rd->seen, rd->samples.size())));
  }
  r.mops = static_cast<double>(r.ops) / r.seconds * 1e-6;
  latency_percentiles(all, r);
  if (s.pool) {
    const PoolStats after = s.pool->stats();
    const CompactHoldHistogram hold = compact_hold_histogram(*s.pool);
    for (int b = 0; b < 32; b++) r.hold[b] = hold.ns_log2[b] - hold0.ns_log2[b];
    r.compactions = after.compactions - before.compactions;
    r.pages_compacted = after.pages_compacted - before.pages_compacted;
    r.compact_busy = after.compact_busy - before.compact_busy;
    r.migrations = after.migrations - before.migrations;
    r.migrate_busy = after.migrate_busy - before.migrate_busy;
  }
  r.churn_cycles = s.churn_cycles - cycles0;
  return r;
}

void run_mode(const Options& o, const ModeSpec& m, std::vector<RunResult>& out) {
  Shared s;
  s.o = &o;
  std::unique_ptr<Pool> pool;
  std::vector<unsigned char> plain;
  Random rng(o.seed);
  if (m.pool) {
    PoolOptions po;
    po.name = "read-scaling";
    po.frame_cache = o.frame_cache;
    auto p =
        create_pool(po, m.kernel ? TranslationMode::kernel_rwlock : TranslationMode::validated);
    if (!p) {
      std::fprintf(stderr, "uzram-read-scaling: Pool::create: %s\n", p.error().message().c_str());
      std::exit(2);
    }
    pool = std::move(*p);
    s.pool = pool.get();
    std::vector<unsigned char> buf(o.size);
    for (auto& h : s.half) h.resize(o.objects);
    for (std::size_t i = 0; i < o.objects; i++) {  // interleaved: A and B share zspages
      for (auto& h : s.half) {
        h[i] = must_alloc(*pool, o.size);
        fill_object(*pool, h[i], buf.data(), o.size, rng);
      }
    }
  } else {
    plain.resize(o.objects * o.size);
    for (auto& b : plain) b = static_cast<unsigned char>(rng.next());
    for (std::size_t i = 0; i < o.objects; i++) std::memcpy(&plain[i * o.size], &i, sizeof i);
    s.plain = plain.data();
  }
  double base = 0;
  for (unsigned t : o.threads) {
    RunResult r = run_once(s, m, t);
    if (t == 1) base = r.mops;
    r.speedup = base > 0 ? r.mops / base : 0;
    std::fprintf(stderr, "  %-18s T=%-3u %8.2f Mops/s  p99 %6llu ns%s\n", m.name.c_str(), t, r.mops,
                 static_cast<unsigned long long>(r.p99), r.errors ? "  DATA ERRORS" : "");
    out.push_back(r);
  }
  if (pool) {
    for (auto& h : s.half) {
      for (Handle x : h) pool->free(x);
    }
  }
}

}  // namespace
}  // namespace uzram::bench

int main(int argc, char** argv) {
  using namespace uzram::bench;
  const Options o = parse_options(argc, argv);
  const std::vector<ModeSpec> modes = mode_specs(o);
  std::vector<RunResult> runs;
  for (const auto& m : modes) run_mode(o, m, runs);
  std::FILE* table = o.json && o.json_path.empty() ? stderr : stdout;
  print_table(table, modes, runs);
  print_targets(table, runs);
  if (o.json) {
    std::FILE* f = o.json_path.empty() ? stdout : std::fopen(o.json_path.c_str(), "w");
    if (!f) {
      std::perror(o.json_path.c_str());
      return 2;
    }
    write_json(f, o, runs);
    if (f != stdout) std::fclose(f);
  }
  std::uint64_t errors = 0;
  for (const auto& r : runs) errors += r.errors;
  return errors ? 1 : 0;
}

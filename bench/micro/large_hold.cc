// bench/micro/large_hold.cc - uzram-large-hold: how long zspage locks are held for large
// objects (docs/locking.md#large-objects). For objects of --size bytes (default 65536; a
// pool with max_object_size = size): fills --objects of them (random bytes), then times
//   write      Pool::write of the whole object: the run's zspage read lock is held for
//              the run's copy, then the tail's for the tail's (an upper bound on each);
//              the first write of each object (fresh frames: page faults) and a rewrite;
//   read       read_begin + read_end (the gather copy, locks as for write);
//   migrate    migrate_frame of every run frame: the zspage *write* lock is held for one
//              4 KiB copy inside it (the call, frame allocation included, bounds it);
//   compact    frees every other object, compacts, and prints the compaction step hold
//              histogram (the class lock and, inside, one tail zspage's write lock).
// Percentiles (p50, p99, max) in ns per call.
//   uzram-large-hold [--size N] [--objects N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "pool/pool_internal.h"
#include "uzram/pool.h"

namespace {

using Clock = std::chrono::steady_clock;

void report(const char* what, std::vector<double>& ns) {
  if (ns.empty()) return;
  std::sort(ns.begin(), ns.end());
  std::printf("%-8s n=%-6zu p50 %8.0f ns  p99 %8.0f ns  max %8.0f ns\n", what, ns.size(),
              ns[ns.size() / 2], ns[ns.size() * 99 / 100], ns.back());
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t size = 65536, objects = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--size") {
      size = std::strtoull(argv[i + 1], nullptr, 0);
    } else if (a == "--objects") {
      objects = std::strtoull(argv[i + 1], nullptr, 0);
    } else {
      std::fprintf(stderr, "usage: uzram-large-hold [--size N] [--objects N]\n");
      return 2;
    }
  }
  uzram::PoolOptions o;
  o.max_object_size = std::max<std::size_t>(size, 4096);
  auto created = uzram::Pool::create(o);
  if (!created) {
    std::fprintf(stderr, "uzram-large-hold: %s\n", created.error().message().c_str());
    return 1;
  }
  uzram::Pool& pool = **created;
  std::vector<unsigned char> buf(size), copy(size);
  for (std::size_t i = 0; i < size; i++) buf[i] = static_cast<unsigned char>(std::rand());
  std::vector<uzram::Handle> hs;
  for (std::size_t i = 0; i < objects; i++) {
    // Sizes just under `size` so tails exist (a multiple of 4096 has none).
    auto h = pool.alloc(size - (i % 3) * 1000);
    if (!h) {
      std::fprintf(stderr, "uzram-large-hold: alloc: %s\n", h.error().message().c_str());
      return 1;
    }
    hs.push_back(*h);
  }
  std::vector<double> w, w2, r, m;
  for (int pass = 0; pass < 2; pass++) {
    for (uzram::Handle h : hs) {
      const std::size_t n = pool.object_size(h);
      const auto t0 = Clock::now();
      pool.write(h, buf.data(), n);
      const auto t1 = Clock::now();
      (pass ? w2 : w).push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
      if (!pass) continue;
      const void* p = pool.read_begin(h, copy.data());
      pool.read_end(h, p);
      const auto t2 = Clock::now();
      r.push_back(std::chrono::duration<double, std::nano>(t2 - t1).count());
    }
  }
  const auto frames = static_cast<std::uint32_t>(pool.stats().arena_frames);
  for (std::uint32_t f = 0; f < frames; f += 3) {
    const auto t0 = Clock::now();
    const bool ok = static_cast<bool>(uzram::migrate_frame(pool, f));
    const auto t1 = Clock::now();
    if (ok) m.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  std::printf("uzram-large-hold: %zu objects of up to %zu bytes\n", objects, size);
  report("write", w);
  report("rewrite", w2);
  report("read", r);
  report("migrate", m);
  for (std::size_t i = 0; i < hs.size(); i += 2) pool.free(hs[i]);
  const std::size_t freed = pool.compact();
  const uzram::CompactHoldHistogram hist = uzram::compact_hold_histogram(pool);
  std::printf("compact  freed %zu frames; step holds (ns, log2 buckets):", freed);
  for (unsigned b = 0; b < 32; b++) {
    if (hist.ns_log2[b])
      std::printf(" [%llu,%llu):%llu", 1ull << b, 2ull << b,
                  static_cast<unsigned long long>(hist.ns_log2[b]));
  }
  std::printf("\n");
  for (std::size_t i = 1; i < hs.size(); i += 2) pool.free(hs[i]);
  return 0;
}

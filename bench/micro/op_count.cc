// bench/micro/op_count.cc - uzram-op-count: a fixed number of each hot pool call, for
// counting instructions under callgrind where timings are too noisy to compare (a shared
// 2-vCPU machine). Run:
//   valgrind --tool=callgrind --callgrind-out-file=cg.out uzram-op-count [--kernel-rwlock]
//   callgrind_annotate --inclusive=yes cg.out | grep 'uzram::Pool::'
// and divide each Pool:: function's inclusive Ir by its call count, printed here.
// Objects stay hot in cache (the point is the code path, not the misses).
#include <cstdio>
#include <cstring>
#include <vector>

#include "pool/pool_internal.h"
#include "uzram/pool.h"

int main(int argc, char** argv) {
  bool kernel = false;
  for (int i = 1; i < argc; i++) {
    if (std::strcmp(argv[i], "--kernel-rwlock") == 0) {
      kernel = true;
    } else {
      std::fprintf(stderr, "usage: uzram-op-count [--kernel-rwlock]\n");
      return 2;
    }
  }
  uzram::PoolOptions o;
  o.name = "op-count";
  o.max_bytes = std::size_t{256} << 20;  // small: valgrind refuses the default reservation
  const auto mode =
      kernel ? uzram::TranslationMode::kernel_rwlock : uzram::TranslationMode::validated;
  auto created = uzram::create_pool(o, mode);
  if (!created) {
    std::fprintf(stderr, "uzram-op-count: %s\n", created.error().message().c_str());
    return 1;
  }
  auto pool = std::move(created).value();
  constexpr unsigned kLive = 4096, kRounds = 100, kSize = 128;
  static unsigned char buf[uzram::kPageSize], local[uzram::kPageSize];
  std::vector<uzram::Handle> hs;
  for (unsigned i = 0; i < kLive; i++) {
    hs.push_back(pool->alloc(kSize).value());
    pool->write(hs.back(), buf, kSize);
  }
  unsigned long long sink = 0;
  for (unsigned r = 0; r < kRounds; r++) {
    for (unsigned i = 0; i < kLive; i++) {
      const void* p = pool->read_begin(hs[i], local);
      sink += *static_cast<const unsigned char*>(p);
      pool->read_end(hs[i], p);
    }
  }
  for (unsigned r = 0; r < kRounds; r++) {
    for (unsigned i = 0; i < kLive; i++) pool->write(hs[i], buf, kSize);
  }
  for (unsigned r = 0; r < kRounds; r++) {
    for (unsigned i = 0; i < kLive; i++) {
      pool->free(hs[i]);
      hs[i] = pool->alloc(kSize).value();
    }
  }
  for (uzram::Handle h : hs) pool->free(h);
  // Fill and free everything, in many size classes: frees that empty zspages (the frame
  // release path), as in zs-cycle-bench.
  constexpr unsigned kCycles = 20;
  for (unsigned r = 0; r < kCycles; r++) {
    for (unsigned i = 0; i < kLive; i++) hs[i] = pool->alloc(32 + (i * 97) % 4000).value();
    for (uzram::Handle h : hs) pool->free(h);
  }
  const unsigned long n = static_cast<unsigned long>(kLive) * kRounds;
  const unsigned long all = n + kLive + static_cast<unsigned long>(kLive) * kCycles;
  std::printf(
      "uzram-op-count: %s, %u-byte objects; calls: read_begin %lu, read_end %lu, "
      "write %lu, alloc %lu, free %lu (checksum %llu)\n",
      kernel ? "kernel_rwlock" : "validated", kSize, n, n, n + kLive, all, all, sink);
  return 0;
}

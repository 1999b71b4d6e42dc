// bench/micro/debug_cost.cc - "debug checks cost nothing in release": single-thread cost
// of the hottest pool paths, built against the library at whatever UZRAM_DEBUG_LEVEL the
// build uses. bench/CMakeLists.txt builds it twice:
//   uzram-debug-cost          linked with `uzram` (release preset: level 0)
//   uzram-debug-cost-lockdep  linked with a level-2 copy of the library (lock-order checker
//                             + might_sleep compiled in, same flags), EXCLUDE_FROM_ALL
// and the release-dbg preset builds uzram-debug-cost itself at level 2. Compare ns/op of the
// same benchmark between the two binaries; `nm -C uzram-debug-cost | grep uzram::lockdep::`
// must print nothing in a release build.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "uzram/pool.h"

namespace {

constexpr std::size_t kLive = 4096;  // objects kept live (hot in cache)

std::unique_ptr<uzram::Pool> make_pool() {
  auto p = uzram::Pool::create();
  if (!p) {
    std::fprintf(stderr, "Pool::create: %s\n", p.error().message().c_str());
    std::abort();
  }
  return std::move(*p);
}

std::vector<uzram::Handle> fill(uzram::Pool& pool, std::size_t n, std::size_t size) {
  std::vector<uzram::Handle> hs;
  std::vector<unsigned char> buf(size, 0x5a);
  for (std::size_t i = 0; i < n; i++) {
    hs.push_back(*pool.alloc(size));
    pool.write(hs.back(), buf.data(), size);
  }
  return hs;
}

void free_all(uzram::Pool& pool, const std::vector<uzram::Handle>& hs) {
  for (auto h : hs) pool.free(h);
}

// read_begin + read_end on a random live object of range(0) bytes (the bytes themselves
// are not copied unless the object spans two frames, as the API does).
void BM_ReadBeginEnd(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto pool = make_pool();
  const auto hs = fill(*pool, kLive, size);
  alignas(64) unsigned char local[uzram::kMaxObjectSize];
  std::uint64_t x = 88172645463325252ULL;
  for (auto _ : state) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const uzram::Handle h = hs[x & (kLive - 1)];
    const void* p = pool->read_begin(h, local);
    benchmark::DoNotOptimize(p);
    pool->read_end(h, p);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  free_all(*pool, hs);
}

// free of a live object + alloc of a new one of range(0) bytes (the class keeps its
// zspages: the population stays at kLive).
void BM_AllocFree(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto pool = make_pool();
  auto hs = fill(*pool, kLive, size);
  std::size_t i = 0;
  for (auto _ : state) {
    pool->free(hs[i]);
    hs[i] = *pool->alloc(size);
    benchmark::DoNotOptimize(hs[i]);
    i = (i + 1) & (kLive - 1);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  free_all(*pool, hs);
}

// write() of range(0) bytes: translation + zspage read lock + copy in.
void BM_Write(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto pool = make_pool();
  const auto hs = fill(*pool, kLive, size);
  std::vector<unsigned char> buf(size, 0xa5);
  std::size_t i = 0;
  for (auto _ : state) {
    pool->write(hs[i], buf.data(), size);
    i = (i + 1) & (kLive - 1);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  free_all(*pool, hs);
}

BENCHMARK(BM_ReadBeginEnd)->Arg(128)->Arg(1536);
BENCHMARK(BM_AllocFree)->Arg(128)->Arg(1536);
BENCHMARK(BM_Write)->Arg(1536);

}  // namespace

int main(int argc, char** argv) {
  benchmark::AddCustomContext("uzram_debug_level", std::to_string(UZRAM_DEBUG_LEVEL));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

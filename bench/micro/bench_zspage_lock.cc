// bench/micro/bench_zspage_lock.cc - the zspage lock (src/sync/zspage_lock.h) against
// std::shared_mutex and pthread_rwlock_t, one lock per "zspage", in one harness.
//
// Layout mimics the pool: a dense array of 4096 locks (as the zspage descriptor table packs
// them, so neighbouring locks share cache lines) and a separate 6 MiB data area of 1.5 KiB
// objects, one per lock. Benchmarks (each templated on the lock):
//   ReadCopy/<hot>        threads pick random zspages among the first <hot>: read-lock,
//                         copy 1.5 KiB out, unlock. ThreadRange(1, 16), real time.
//   ReadCopyNoLock        the same copy without any lock: the ceiling.
//   Uncontended           one thread, one lock: read acquire + release, nothing else.
//   ReadOneLock           every thread read-locks the same lock (no copy): the cost of a
//                         read lock whose word is shared by all CPUs (the kernel pool rwlock).
//   TryWrite/<hot>        thread 0 is a writer (compaction/migration): try_lock_write on a
//                         random zspage, copy 1.5 KiB in, unlock; the other threads are
//                         readers as in ReadCopy. Counters: write_fail_pct, writes/s;
//                         items_per_second counts reader operations only.
#include <benchmark/benchmark.h>
#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <shared_mutex>

#include "sync/zspage_lock.h"

namespace {

constexpr std::size_t kZspages = 4096;  // power of two
constexpr std::size_t kObjBytes = 1536;
constexpr int kMaxThreads = 16;

// ---- Lock adapters: the same five operations over each lock type --------------------

struct ZsLock {
  using Lock = uzram::ZsPageLock;
  static void rlock(Lock& l) noexcept ZS_ACQUIRE_SHARED(l) { l.lock_read(); }
  static void runlock(Lock& l) noexcept ZS_RELEASE_SHARED(l) { l.unlock_read(); }
  static bool try_wlock(Lock& l) noexcept ZS_TRY_ACQUIRE(true, l) { return l.try_lock_write(); }
  static void wunlock(Lock& l) noexcept ZS_RELEASE(l) { l.unlock_write(); }
};

struct SharedMutex {
  using Lock = std::shared_mutex;
  static void rlock(Lock& l) noexcept { l.lock_shared(); }
  static void runlock(Lock& l) noexcept { l.unlock_shared(); }
  static bool try_wlock(Lock& l) noexcept { return l.try_lock(); }
  static void wunlock(Lock& l) noexcept { l.unlock(); }
};

struct PthreadRw {
  struct Lock {
    pthread_rwlock_t rw;
    Lock() noexcept { pthread_rwlock_init(&rw, nullptr); }
    ~Lock() { pthread_rwlock_destroy(&rw); }
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;
  };
  static void rlock(Lock& l) noexcept { pthread_rwlock_rdlock(&l.rw); }
  static void runlock(Lock& l) noexcept { pthread_rwlock_unlock(&l.rw); }
  static bool try_wlock(Lock& l) noexcept { return pthread_rwlock_trywrlock(&l.rw) == 0; }
  static void wunlock(Lock& l) noexcept { pthread_rwlock_unlock(&l.rw); }
};

// ---- Shared state: one "pool" of locks + objects per lock type ----------------------

template <typename Ops>
struct World {
  std::unique_ptr<typename Ops::Lock[]> locks{new typename Ops::Lock[kZspages]};
  std::unique_ptr<unsigned char[]> data{new unsigned char[kZspages * kObjBytes]};
  typename Ops::Lock single;  // for Uncontended / ReadOneLock
  World() noexcept {
    for (std::size_t i = 0; i < kZspages * kObjBytes; i++)
      data[i] = static_cast<unsigned char>(i * 131);
  }
};

// Function-local static: thread-safe one-time construction, before any thread's first
// iteration (every benchmark thread calls it before its timed loop).
template <typename Ops>
World<Ops>& world() noexcept {
  static World<Ops> w;
  return w;
}

// Per-thread xorshift64*: cheap and good enough to spread accesses.
struct Rng {
  std::uint64_t s;
  explicit Rng(int thread) noexcept
      : s(0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(thread + 1)) {}
  std::uint64_t next() noexcept {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dULL;
  }
};

template <typename Ops>
inline void read_copy(World<Ops>& w, std::size_t i, unsigned char* dst) noexcept {
  Ops::rlock(w.locks[i]);
  std::memcpy(dst, &w.data[i * kObjBytes], kObjBytes);
  Ops::runlock(w.locks[i]);
  benchmark::DoNotOptimize(dst);
  benchmark::ClobberMemory();
}

// ---- Benchmarks -----------------------------------------------------------------------

template <typename Ops>
void BM_ReadCopy(benchmark::State& state) {
  World<Ops>& w = world<Ops>();
  const std::size_t mask = static_cast<std::size_t>(state.range(0)) - 1;
  alignas(64) unsigned char dst[kObjBytes];
  Rng rng(state.thread_index());
  for (auto _ : state) read_copy(w, rng.next() & mask, dst);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kObjBytes));
}

void BM_ReadCopyNoLock(benchmark::State& state) {
  World<ZsLock>& w = world<ZsLock>();
  alignas(64) unsigned char dst[kObjBytes];
  Rng rng(state.thread_index());
  for (auto _ : state) {
    std::memcpy(dst, &w.data[(rng.next() & (kZspages - 1)) * kObjBytes], kObjBytes);
    benchmark::DoNotOptimize(dst);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kObjBytes));
}

template <typename Ops>
void BM_Uncontended(benchmark::State& state) {
  typename Ops::Lock& l = world<Ops>().single;
  for (auto _ : state) {
    Ops::rlock(l);
    benchmark::ClobberMemory();
    Ops::runlock(l);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

template <typename Ops>
void BM_ReadOneLock(benchmark::State& state) {
  typename Ops::Lock& l = world<Ops>().single;
  for (auto _ : state) {
    Ops::rlock(l);
    benchmark::ClobberMemory();
    Ops::runlock(l);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

template <typename Ops>
void BM_TryWrite(benchmark::State& state) {
  World<Ops>& w = world<Ops>();
  const std::size_t mask = static_cast<std::size_t>(state.range(0)) - 1;
  alignas(64) unsigned char buf[kObjBytes];
  std::memset(buf, 0x5a, sizeof buf);
  Rng rng(state.thread_index());
  if (state.thread_index() != 0) {  // readers
    for (auto _ : state) read_copy(w, rng.next() & mask, buf);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
    return;
  }
  std::int64_t ok = 0, failed = 0;
  for (auto _ : state) {
    const std::size_t i = rng.next() & mask;
    if (Ops::try_wlock(w.locks[i])) {
      std::memcpy(&w.data[i * kObjBytes], buf, kObjBytes);  // the "object move"
      Ops::wunlock(w.locks[i]);
      ok++;
    } else {
      failed++;
    }
    benchmark::ClobberMemory();
  }
  const double attempts = static_cast<double>(ok + failed);
  state.counters["write_fail_pct"] =
      attempts > 0 ? 100.0 * static_cast<double>(failed) / attempts : 0.0;
  state.counters["writes"] =
      benchmark::Counter(static_cast<double>(ok), benchmark::Counter::kIsRate);
}

// ---- Registration -----------------------------------------------------------------------

#define UZRAM_LOCK_BENCHES(Ops)                                                                    \
  BENCHMARK_TEMPLATE(BM_Uncontended, Ops);                                                         \
  BENCHMARK_TEMPLATE(BM_ReadCopy, Ops)->Arg(kZspages)->ThreadRange(1, kMaxThreads)->UseRealTime(); \
  BENCHMARK_TEMPLATE(BM_ReadCopy, Ops)->Arg(8)->ThreadRange(1, kMaxThreads)->UseRealTime();        \
  BENCHMARK_TEMPLATE(BM_ReadOneLock, Ops)->ThreadRange(1, kMaxThreads)->UseRealTime();             \
  BENCHMARK_TEMPLATE(BM_TryWrite, Ops)->Arg(kZspages)->ThreadRange(2, kMaxThreads)->UseRealTime(); \
  BENCHMARK_TEMPLATE(BM_TryWrite, Ops)->Arg(8)->ThreadRange(2, kMaxThreads)->UseRealTime()

UZRAM_LOCK_BENCHES(ZsLock);
UZRAM_LOCK_BENCHES(SharedMutex);
UZRAM_LOCK_BENCHES(PthreadRw);
BENCHMARK(BM_ReadCopyNoLock)->ThreadRange(1, kMaxThreads)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

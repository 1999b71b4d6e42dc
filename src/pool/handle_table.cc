// pool/handle_table.cc - handle index allocation and the chunked entry table.
#include "pool/handle_table.h"

#include <sys/mman.h>

#include "util/check.h"

namespace uzram {
namespace {

constexpr std::size_t kChunkEntries = std::size_t{1} << HandleTable::kChunkShift;

std::atomic<unsigned> g_next_shard{0};

}  // namespace

HandleTable::~HandleTable() {
  if (!chunks_) return;
  for (std::size_t i = 0; i < max_chunks_; i++) {
    std::atomic<std::uint64_t>* c = chunks_[i].load(std::memory_order_relaxed);
    if (c) munmap(c, kChunkEntries * 8);
  }
  munmap(chunks_, max_chunks_ * sizeof(*chunks_));
}

Result<void> HandleTable::init(std::size_t max_handles) noexcept {
  if (max_handles > (std::size_t{1} << 32) - kChunkEntries) max_handles = (std::size_t{1} << 32) - kChunkEntries;
  max_chunks_ = (max_handles + kChunkEntries - 1) / kChunkEntries;
  void* p = mmap(nullptr, max_chunks_ * sizeof(*chunks_), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Errc::no_memory;
  chunks_ = static_cast<std::atomic<std::atomic<std::uint64_t>*>*>(p);
  return {};
}

unsigned HandleTable::my_shard() noexcept {
  thread_local unsigned shard = g_next_shard.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shard;
}

bool HandleTable::pop(Shard& s, std::uint32_t* index) noexcept {
  SpinGuard g(s.lock);
  if (s.head == 0) return false;
  const std::uint32_t i = s.head;
  const std::uint64_t e = entry(i)->load(std::memory_order_relaxed);  // relaxed: free entry, ours under s.lock
  s.head = static_cast<std::uint32_t>((e >> 1) & ((std::uint64_t{1} << 51) - 1));
  s.count.store(s.count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  *index = i;
  return true;
}

bool HandleTable::grow() noexcept {
  might_sleep();
  std::lock_guard<std::mutex> g(grow_lock_);
  const std::uint32_t limit = limit_.load(std::memory_order_relaxed);
  if (next_.load(std::memory_order_relaxed) < limit) return true;  // someone else grew it
  const std::size_t chunk = limit / kChunkEntries;
  if (chunk >= max_chunks_) return false;
  void* p = mmap(nullptr, kChunkEntries * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  // release: pairs with the acquire in entry().
  chunks_[chunk].store(static_cast<std::atomic<std::uint64_t>*>(p), std::memory_order_release);
  limit_.store(static_cast<std::uint32_t>(limit + kChunkEntries), std::memory_order_release);
  return true;
}

Result<std::uint64_t> HandleTable::alloc() noexcept {
  const unsigned mine = my_shard();
  std::uint32_t index = 0;
  bool found = pop(shards_[mine], &index);
  for (unsigned k = 1; !found && k < kShards; k++) {
    Shard& s = shards_[(mine + k) % kShards];
    // relaxed: a hint; pop() re-checks under the shard lock.
    if (s.count.load(std::memory_order_relaxed) != 0) found = pop(s, &index);
  }
  while (!found) {
    std::uint32_t n = next_.load(std::memory_order_relaxed);
    if (n >= limit_.load(std::memory_order_acquire)) {
      if (!grow()) return Errc::no_memory;
      continue;
    }
    if (next_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) {
      index = n;
      found = true;
    }
  }
  const std::uint64_t e = entry(index)->load(std::memory_order_relaxed);
  return (HandleTable::gen_of(e) << 32) | index;
}

void HandleTable::release(std::uint32_t index) noexcept {
  Shard& s = shards_[my_shard()];
  SpinGuard g(s.lock);
  std::atomic<std::uint64_t>* e = entry(index);
  const std::uint64_t gen = gen_of(e->load(std::memory_order_relaxed));
  // relaxed: a free entry is only read by the shard owner under s.lock and by translators
  // that then find it not allocated (a caller bug they report).
  e->store((gen << kGenShift) | (std::uint64_t{s.head} << 1), std::memory_order_relaxed);
  s.head = index;
  s.count.store(s.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

}  // namespace uzram

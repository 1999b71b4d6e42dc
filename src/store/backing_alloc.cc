// store/backing_alloc.cc - BackingAlloc: blocks, live bytes, pins, trims and lost blocks of
// the backing tier (store/backing_alloc.h).
#include "store/backing_alloc.h"

#include <algorithm>
#include <cstdlib>

#include "util/check.h"

namespace uzram {
namespace {

constexpr std::uint64_t kAll = ~std::uint64_t{0};

unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

}  // namespace

BackingAlloc::~BackingAlloc() { free_maps(); }

void BackingAlloc::free_maps() noexcept {
  std::free(inuse_);
  std::free(live_);
  std::free(trim_);
  std::free(lost_);
  inuse_ = trim_ = lost_ = nullptr;
  live_ = nullptr;
}

Result<void> BackingAlloc::init(std::uint64_t nblocks, bool trims, bool lost) noexcept {
  ZS_CHECK(nblocks >= 2 && nblocks <= kWbMaxBlocks, "backing tier of %llu blocks", ull(nblocks));
  ZS_CHECK(
      used_.load(std::memory_order_relaxed) == 0 && trimming_.load(std::memory_order_relaxed) == 0,
      "backing allocator initialised twice while in use");
  free_maps();  // a failed init before
  next_ = 1;
  nblocks_ = nblocks;
  words_ = (nblocks + 63) / 64;
  // calloc: large arrays come zeroed from fresh mappings, so untouched parts cost nothing.
  inuse_ = static_cast<std::uint64_t*>(std::calloc(words_, 8));
  live_ = static_cast<std::uint32_t*>(std::calloc(nblocks, 4));
  if (trims) trim_ = static_cast<std::uint64_t*>(std::calloc(words_, 8));
  if (lost) lost_ = static_cast<std::uint64_t*>(std::calloc(words_, 8));
  if (!inuse_ || !live_ || (trims && !trim_) || (lost && !lost_)) {
    free_maps();
    nblocks_ = 0;
    return Errc::no_memory;
  }
  inuse_[0] |= 1;  // block 0 is never used
  if (nblocks % 64) inuse_[words_ - 1] |= kAll << (nblocks % 64);
  return {};
}

bool BackingAlloc::alloc(std::uint64_t* block) noexcept {
  MutexLock l(mu_);
  if (used_.load(std::memory_order_relaxed) + trimming_.load(std::memory_order_relaxed) + 1 >=
      nblocks_) {
    return false;
  }
  // First free block at or after next_, wrapping around once.
  std::uint64_t w = next_ / 64;
  std::uint64_t word = inuse_[w] | ~(kAll << (next_ % 64));  // bits below next_ count as used
  for (std::uint64_t i = 0; i <= words_; i++) {
    if (word != kAll) {
      const std::uint64_t b = w * 64 + static_cast<unsigned>(__builtin_ctzll(~word));
      set(inuse_, b);
      live_[b] = kPin;
      used_.fetch_add(1, std::memory_order_relaxed);
      next_ = b + 1 < nblocks_ ? b + 1 : 1;
      *block = b;
      return true;
    }
    w = w + 1 < words_ ? w + 1 : 0;
    word = inuse_[w];
  }
  ZS_FATAL("backing allocator: %llu of %llu blocks in use but no free bit",
           ull(used_.load(std::memory_order_relaxed)), ull(nblocks_));
}

void BackingAlloc::release_locked(std::uint64_t b) noexcept {
  used_.fetch_sub(1, std::memory_order_relaxed);
  if (lost_ && test(lost_, b)) {
    clear(lost_, b);
    lost_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (trim_) {  // stays reserved until trimmed
    set(trim_, b);
    const bool empty = waiting_.load(std::memory_order_relaxed) == 0;
    trim_lo_ = empty ? b / 64 : std::min(trim_lo_, b / 64);
    trim_hi_ = empty ? b / 64 + 1 : std::max(trim_hi_, b / 64 + 1);
    trimming_.fetch_add(1, std::memory_order_relaxed);
    waiting_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  clear(inuse_, b);
}

void BackingAlloc::unpin(std::uint64_t b, bool written, std::uint64_t gen) noexcept {
  MutexLock l(mu_);
  ZS_CHECK(b >= 1 && b < nblocks_ && live_[b] >= kPin, "backing block %llu unpinned but not pinned",
           ull(b));
  live_[b] -= kPin;
  if (written && lost_ && test(lost_, b) && gen == gen_.load(std::memory_order_relaxed)) {
    clear(lost_, b);
    lost_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (live_[b] == 0) release_locked(b);
}

void BackingAlloc::add_locked(std::uint64_t b, std::uint32_t bytes) noexcept {
  ZS_CHECK(b >= 1 && b < nblocks_ && test(inuse_, b) && live_[b] + bytes <= kPin + kBlockSize,
           "backing block %llu: %u live bytes + %u", ull(b), live_[b], bytes);
  live_[b] += bytes;
}

void BackingAlloc::sub_locked(std::uint64_t b, std::uint32_t bytes) noexcept {
  ZS_CHECK(b >= 1 && b < nblocks_ && (live_[b] & (kPin - 1)) >= bytes,
           "backing block %llu: %u live bytes, %u freed", ull(b), live_[b], bytes);
  live_[b] -= bytes;
  if (live_[b] == 0) release_locked(b);
}

void BackingAlloc::add_live(const WbAddr& a) noexcept {
  MutexLock l(mu_);
  add_locked(a.block, a.head_bytes());
  if (a.nblocks() == 2) add_locked(a.block + 1, a.bytes() - a.head_bytes());
  live_bytes_.fetch_add(a.bytes(), std::memory_order_relaxed);
}

void BackingAlloc::sub_live(const WbAddr& a) noexcept {
  MutexLock l(mu_);
  sub_locked(a.block, a.head_bytes());
  if (a.nblocks() == 2) sub_locked(a.block + 1, a.bytes() - a.head_bytes());
  live_bytes_.fetch_sub(a.bytes(), std::memory_order_relaxed);
}

bool BackingAlloc::readable(const WbAddr& a, std::uint64_t* gen) const noexcept {
  MutexLock l(mu_);
  *gen = gen_.load(std::memory_order_relaxed);
  if (!lost_) return true;
  return !test(lost_, a.block) && (a.nblocks() == 1 || !test(lost_, a.block + 1));
}

void BackingAlloc::mark_lost() noexcept {
  MutexLock l(mu_);
  if (!lost_) return;
  std::uint64_t n = 0;
  for (std::uint64_t w = 0; w < words_; w++) {
    std::uint64_t bits = inuse_[w] & ~(trim_ ? trim_[w] : 0);
    if (w == 0) bits &= ~std::uint64_t{1};
    if (w == words_ - 1 && nblocks_ % 64) bits &= ~(kAll << (nblocks_ % 64));
    lost_[w] = bits;
    n += static_cast<unsigned>(__builtin_popcountll(bits));
  }
  lost_count_.store(n, std::memory_order_relaxed);
  gen_.fetch_add(1, std::memory_order_release);  // pairs with gen()'s acquire
}

std::size_t BackingAlloc::take_trims(std::uint64_t* first, std::uint32_t* count,
                                     std::size_t max) noexcept {
  MutexLock l(mu_);
  std::size_t runs = 0;
  if (!trim_ || waiting_.load(std::memory_order_relaxed) == 0) return 0;
  std::uint64_t w = trim_lo_;
  while (w < trim_hi_ && runs < max) {
    if (!trim_[w]) {
      w++;
      continue;
    }
    std::uint64_t b = w * 64 + static_cast<unsigned>(__builtin_ctzll(trim_[w]));
    first[runs] = b;
    std::uint32_t n = 0;
    while (b < nblocks_ && test(trim_, b) && n < (1u << 18)) {  // at most 1 GiB per run
      clear(trim_, b);
      b++;
      n++;
    }
    count[runs++] = n;
    waiting_.fetch_sub(n, std::memory_order_relaxed);
    w = b / 64;
  }
  trim_lo_ = w;
  if (waiting_.load(std::memory_order_relaxed) == 0) trim_lo_ = trim_hi_ = 0;
  return runs;
}

void BackingAlloc::trim_done(std::uint64_t first, std::uint32_t count) noexcept {
  MutexLock l(mu_);
  for (std::uint64_t b = first; b < first + count; b++) {
    ZS_CHECK(test(inuse_, b) && live_[b] == 0 && !test(trim_, b),
             "backing block %llu trimmed "
             "but not trimming",
             ull(b));
    clear(inuse_, b);
  }
  trimming_.fetch_sub(count, std::memory_order_relaxed);
}

bool BackingAlloc::sparse(std::uint64_t b, unsigned pct) const noexcept {
  MutexLock l(mu_);
  const std::uint32_t v = live_[b];
  return v > 0 && v < kPin && v * 100 < pct * kBlockSize;
}

void BackingAlloc::check(const std::uint32_t* expected) const noexcept {
  MutexLock l(mu_);
  std::uint64_t used = 0, trimming = 0, waiting = 0, bytes = 0, lost = 0;
  for (std::uint64_t b = 1; b < nblocks_; b++) {
    ZS_CHECK(live_[b] == expected[b], "backing block %llu: %u live bytes, the slots say %u", ull(b),
             live_[b], expected[b]);
    const bool t = trim_ && test(trim_, b);
    // In use with live bytes; or with none while trimming (in the set, or taken: in flight).
    ZS_CHECK(test(inuse_, b) || (live_[b] == 0 && !t),
             "backing block %llu: %u live bytes, "
             "trimming %d, but free",
             ull(b), live_[b], static_cast<int>(t));
    ZS_CHECK(trim_ || live_[b] > 0 || !test(inuse_, b),
             "backing block %llu: in use, no live "
             "bytes, no trim",
             ull(b));
    used += live_[b] > 0;
    waiting += t;
    bytes += live_[b];
    lost += lost_ && test(lost_, b);
    ZS_CHECK(!(lost_ && test(lost_, b)) || live_[b] > 0, "backing block %llu lost but free",
             ull(b));
  }
  // Runs taken for trimming and not done yet hold in-use bits without being in the set.
  for (std::uint64_t b = 1; b < nblocks_; b++) trimming += test(inuse_, b) && live_[b] == 0;
  ZS_CHECK(used == used_.load(std::memory_order_relaxed),
           "backing allocator: %llu blocks in "
           "use, the live counts say %llu",
           ull(used_.load(std::memory_order_relaxed)), ull(used));
  ZS_CHECK(trimming == trimming_.load(std::memory_order_relaxed) &&
               waiting == waiting_.load(std::memory_order_relaxed),
           "backing allocator: trim counts disagree");
  ZS_CHECK(bytes == live_bytes_.load(std::memory_order_relaxed) &&
               lost == lost_count_.load(std::memory_order_relaxed),
           "backing allocator: live bytes or lost count disagree");
}

}  // namespace uzram

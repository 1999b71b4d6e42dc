// pool/frame_arena.cc - frame allocation from the mmap'ed arena.
#include "pool/frame_arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "sync/lock_order.h"
#include "util/check.h"

namespace uzram {
namespace {

constexpr std::size_t kGrowFrames = 512;  // map 2 MiB of the reservation at a time
// Fresh frames are prefaulted 1 MiB at a time (MADV_POPULATE_WRITE, outside the lock):
// one system call instead of 256 page faults, which made 1- and 2-thread store fills
// 2.5-4 % faster (docs/benchmarks.md#store-throughput-against-the-bare-codec). Costs at
// most 1 MiB of resident, not yet allocated frames above the high water mark.
constexpr std::size_t kPopulateFrames = 256;

void* map_noreserve(std::size_t bytes, int prot) {
  void* p = mmap(nullptr, bytes, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

FrameArena::~FrameArena() {
  if (base_) munmap(base_, max_frames_ << kFrameShift);
  if (info_) munmap(info_, max_frames_ * sizeof(*info_));
  if (free_bits_) munmap(free_bits_, (max_frames_ + 63) / 64 * 8);
  if (cache_) munmap(cache_, cache_capacity_ * sizeof(FrameId));
}

Result<void> FrameArena::init(std::size_t max_bytes, std::size_t cache_frames) noexcept {
  max_frames_ = max_bytes >> kFrameShift;
  // Frame ids are 32-bit; only zspage ids (the 28-bit owner field) are narrower, and the
  // pool caps those (PoolImpl::init). 2^28 frames = the documented 1 TiB maximum.
  if (max_frames_ == 0 || max_frames_ > std::size_t{kFrameOwnerMask} + 1) return Errc::invalid_argument;
  cache_limit_ = cache_frames;
  cache_capacity_ = max_frames_ / 8 + cache_limit_ + kCacheSlack;
  base_ = static_cast<std::byte*>(map_noreserve(max_frames_ << kFrameShift, PROT_NONE));
  info_ = static_cast<std::atomic<std::uint32_t>*>(
      map_noreserve(max_frames_ * sizeof(*info_), PROT_READ | PROT_WRITE));
  free_bits_ = static_cast<std::uint64_t*>(
      map_noreserve((max_frames_ + 63) / 64 * 8, PROT_READ | PROT_WRITE));
  cache_ = static_cast<FrameId*>(
      map_noreserve(cache_capacity_ * sizeof(FrameId), PROT_READ | PROT_WRITE));
  if (!base_ || !info_ || !free_bits_ || !cache_) return Errc::no_memory;
  return {};
}

// Makes frames [mapped_frames_, want) usable. Caller holds lock_.
bool FrameArena::grow_locked(FrameId want) noexcept {
  if (want <= mapped_frames_) return true;
  if (want > max_frames_) return false;
  std::size_t to = (want + kGrowFrames - 1) / kGrowFrames * kGrowFrames;
  if (to > max_frames_) to = max_frames_;
  if (mprotect(base_ + (mapped_frames_ << kFrameShift), (to - mapped_frames_) << kFrameShift,
               PROT_READ | PROT_WRITE) != 0) {
    return false;
  }
  mapped_frames_ = to;
  return true;
}

Result<void> FrameArena::alloc(FrameId* out, unsigned n) noexcept {
  might_sleep();
  std::unique_lock<std::mutex> guard(lock_);
  lockdep::acquire(LockLevel::frame_arena, LockKind::sleepable, &lock_, "frame_arena", false,
                   false, SiteLoc::current());
  std::size_t pop_lo = 0, pop_hi = 0;
  unsigned got = 0;
  while (got < n && cache_count_ > 0) out[got++] = cache_[--cache_count_];
  const FrameId hw = high_water();
  const std::size_t words = (hw + 63) / 64;
  for (std::size_t w = lowest_free_ / 64; got < n && w < words; w++) {
    while (got < n && free_bits_[w] != 0) {
      const unsigned b = static_cast<unsigned>(std::countr_zero(free_bits_[w]));
      free_bits_[w] &= free_bits_[w] - 1;
      out[got++] = static_cast<FrameId>(w * 64 + b);
    }
    if (free_bits_[w] == 0) lowest_free_ = static_cast<FrameId>((w + 1) * 64);
  }
  if (got < n) {
    const FrameId want = hw + (n - got);
    if (!grow_locked(want)) {
      for (unsigned i = 0; i < got; i++) release_locked(out[i]);
      lockdep::release(&lock_, SiteLoc::current());
      return Errc::no_memory;
    }
    for (FrameId id = hw; id < want; id++) out[got++] = id;
    high_water_.store(want, std::memory_order_relaxed);
    if (want > populated_) {
      pop_lo = std::max<std::size_t>(populated_, hw);
      pop_hi = std::min<std::size_t>(mapped_frames_, (want + kPopulateFrames - 1) / kPopulateFrames * kPopulateFrames);
      populated_ = pop_hi;
    }
  }
  for (unsigned i = 0; i < n; i++) {
    // relaxed: the owner is published later under the class lock (release there).
    info_[out[i]].store(kFrameAllocated, std::memory_order_relaxed);
  }
  in_use_ += n;
  lockdep::release(&lock_, SiteLoc::current());
  if (pop_hi > pop_lo) {
    // Outside the lock, so that threads growing the arena do not wait for each other's
    // zeroing. A frame of the window another thread allocates meanwhile just faults in.
    guard.unlock();
    madvise(address(static_cast<FrameId>(pop_lo)), (pop_hi - pop_lo) << kFrameShift, MADV_POPULATE_WRITE);
  }
  return {};
}

Result<FrameId> FrameArena::alloc_below(FrameId below) noexcept {
  might_sleep();
  std::lock_guard<std::mutex> guard(lock_);
  for (std::size_t w = lowest_free_ / 64; w * 64 < below; w++) {
    if (free_bits_[w] == 0) continue;
    const unsigned b = static_cast<unsigned>(std::countr_zero(free_bits_[w]));
    const FrameId id = static_cast<FrameId>(w * 64 + b);
    if (id >= below) break;
    free_bits_[w] &= ~(std::uint64_t{1} << b);
    info_[id].store(kFrameAllocated, std::memory_order_relaxed);
    in_use_++;
    return id;
  }
  return Errc::no_memory;
}

// Returns a frame to the free bitmap and its memory to the OS. Caller holds lock_.
void FrameArena::release_locked(FrameId id) noexcept {
  madvise(address(id), kFrameSize, MADV_DONTNEED);
  free_bits_[id / 64] |= std::uint64_t{1} << (id % 64);
  if (id < lowest_free_) lowest_free_ = id;
}

// Frees frames. Up to cache_target_locked() of them stay resident for quick reuse; beyond that the
// excess (down to half the limit), and every frame freed with cache == false, goes back to
// the OS in one batch: sorted, contiguous runs coalesced, madvise'd with the lock dropped
// (each madvise costs a TLB shootdown on every CPU running this process, so one call per
// run, not per frame). A frame reaches the free bitmap only after its madvise, so nobody
// can allocate it and write to it while it is being zapped.
void FrameArena::free(const FrameId* ids, unsigned n, bool cache) noexcept {
  might_sleep();
  constexpr unsigned kBatch = 512;
  FrameId batch[kBatch];
  unsigned nb = 0;
  unsigned i = 0;
  while (i < n || nb) {
    {
      std::lock_guard<std::mutex> guard(lock_);
      for (; i < n && nb < kBatch; i++) {
        const FrameId id = ids[i];
        ZS_DCHECK(id < high_water(), "frame %u beyond the arena", id);
        info_[id].store(0, std::memory_order_relaxed);  // relaxed: nobody owns it any more
        in_use_--;
        if (cache && cache_count_ < cache_capacity_) {
          cache_[cache_count_++] = id;
        } else {
          batch[nb++] = id;
        }
      }
      const std::size_t target = cache_target_locked();
      if (cache_count_ > target) {
        const std::size_t keep = target / 2;
        while (cache_count_ > keep && nb < kBatch) batch[nb++] = cache_[--cache_count_];
      }
    }
    if (!nb) break;
    std::sort(batch, batch + nb);
    for (unsigned a = 0; a < nb;) {
      unsigned b = a + 1;
      while (b < nb && batch[b] == batch[b - 1] + 1) b++;
      madvise(address(batch[a]), static_cast<std::size_t>(b - a) << kFrameShift, MADV_DONTNEED);
      a = b;
    }
    std::lock_guard<std::mutex> guard(lock_);
    for (unsigned k = 0; k < nb; k++) {
      const FrameId id = batch[k];
      free_bits_[id / 64] |= std::uint64_t{1} << (id % 64);
      if (id < lowest_free_) lowest_free_ = id;
    }
    nb = 0;
    trim_locked();
  }
}

// Lowers the high-water mark over free frames at the top of the arena (pack() relies on
// it). Caller holds lock_.
void FrameArena::trim_locked() noexcept {
  FrameId hw = high_water();
  while (hw > 0 && (free_bits_[(hw - 1) / 64] >> ((hw - 1) % 64) & 1)) {
    free_bits_[(hw - 1) / 64] &= ~(std::uint64_t{1} << ((hw - 1) % 64));
    hw--;
  }
  high_water_.store(hw, std::memory_order_relaxed);
  if (lowest_free_ > hw) lowest_free_ = hw;
}

}  // namespace uzram

// pool/frame_arena.cc - frame allocation from the mmap'ed arena.
#include "pool/frame_arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>

#include "sync/lock_order.h"
#include "util/check.h"
#include "util/resident.h"

namespace uzram {
namespace {

constexpr std::size_t kGrowFrames = 512;  // map 2 MiB of the reservation at a time
// Fresh frames are prefaulted 256 KiB at a time (MADV_POPULATE_WRITE, outside the lock):
// one system call instead of 64 page faults. 1 MiB at a time made 1- and 2-thread store
// fills 2.5-4 % faster than faulting (docs/benchmarks.md#store-throughput-against-the-bare-codec)
// but left up to 1 MiB of resident, not yet allocated frames above the high water mark
// (0.5-1.0 MiB of `pool_idle_frames` after a fill); 256 KiB leaves at most a quarter of
// that (docs/benchmarks.md#nbd-the-servers-fixed-memory).
constexpr std::size_t kPopulateFrames = 64;

std::uint64_t steady_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

void* map_noreserve(std::size_t bytes, int prot) {
  void* p = mmap(nullptr, bytes, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

FrameArena::FrameArena() noexcept : decay_worker_([this] { decay_job(); }) {}

void FrameArena::resident(std::uint64_t* in_use, std::uint64_t* idle) const noexcept {
  std::size_t mapped = 0;
  {
    MutexLock g(lock_);
    mapped = mapped_frames_;  // only grows: frames below it stay mapped
  }
  std::uint64_t used = 0, other = 0;
  for_each_resident_page(base_, mapped << kFrameShift, [&](std::size_t id) {
    // relaxed: a snapshot; the allocated bit says whether a zspage owns the frame.
    const bool allocated = info_[id].word().load(std::memory_order_relaxed) & kFrameAllocated;
    (allocated ? used : other)++;
  });
  *in_use = used << kFrameShift;
  *idle = other << kFrameShift;
}

std::size_t FrameArena::resident_metadata() const noexcept {
  if (!info_) return 0;
  return resident_bytes_of(info_, max_frames_ * sizeof(*info_)) +
         resident_bytes_of(free_bits_, (max_frames_ + 63) / 64 * 8) +
         resident_bytes_of(idle_, max_frames_ * sizeof(FrameId));
}

FrameArena::~FrameArena() {
  decay_worker_.stop();
  if (base_) munmap(base_, max_frames_ << kFrameShift);
  if (info_) munmap(info_, max_frames_ * sizeof(*info_));
  if (free_bits_) munmap(free_bits_, (max_frames_ + 63) / 64 * 8);
  if (idle_) munmap(idle_, max_frames_ * sizeof(FrameId));
}

Result<void> FrameArena::init(std::size_t max_bytes, std::size_t keep_frames,
                              std::uint32_t decay_ms, bool prefault) noexcept {
  max_frames_ = max_bytes >> kFrameShift;
  // Frame ids are 32-bit; only zspage ids (the 28-bit owner field) are narrower, and the
  // pool caps those (PoolImpl::init). 2^28 frames = the documented 1 TiB maximum.
  if (max_frames_ == 0 || max_frames_ > std::size_t{kFrameOwnerMask} + 1)
    return Errc::invalid_argument;
  keep_ = std::min(keep_frames, max_frames_);
  decay_ms_ = decay_ms;
  epoch0_ns_ = steady_ns();
  base_ = static_cast<std::byte*>(map_noreserve(max_frames_ << kFrameShift, PROT_NONE));
  // Zero-filled: every frame unowned, unlocked, not allocated.
  info_ =
      static_cast<FrameInfo*>(map_noreserve(max_frames_ * sizeof(*info_), PROT_READ | PROT_WRITE));
  free_bits_ = static_cast<std::uint64_t*>(
      map_noreserve((max_frames_ + 63) / 64 * 8, PROT_READ | PROT_WRITE));
  idle_ =
      static_cast<FrameId*>(map_noreserve(max_frames_ * sizeof(FrameId), PROT_READ | PROT_WRITE));
  if (!base_ || !info_ || !free_bits_ || !idle_) return Errc::no_memory;
  if (prefault) {
    const std::size_t bytes = max_frames_ << kFrameShift;
    if (mprotect(base_, bytes, PROT_READ | PROT_WRITE) != 0 ||
        madvise(base_, bytes, MADV_POPULATE_WRITE) != 0) {
      return Errc::no_memory;
    }
    MutexLock l(lock_);  // nobody else has the arena yet: for the analysis
    mapped_frames_ = populated_ = max_frames_;
  }
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
  MutexLock guard(lock_);
  std::size_t pop_lo = 0, pop_hi = 0;
  unsigned got = 0;
  while (got < n && idle_hi_ > idle_lo_) out[got++] = idle_[--idle_hi_];
  const unsigned from_idle = got;
  // A zspage's frames are freed (pushed) in chain order; popping reverses them, so turn
  // them back: a zspage made of a freed one's frames gets them in the same order.
  std::reverse(out, out + got);
  if (got) {
    reused_.fetch_add(got, std::memory_order_relaxed);
    if (idle_hi_ == idle_lo_) idle_lo_ = idle_hi_ = 0;
    publish_idle_locked();
  }
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
      // Put back what we took: idle frames as idle (still resident), the rest as free.
      for (unsigned i = from_idle; i < got; i++) {
        free_bits_[out[i] / 64] |= std::uint64_t{1} << (out[i] % 64);
        if (out[i] < lowest_free_) lowest_free_ = out[i];
      }
      for (unsigned i = from_idle; i > 0; i--) idle_[idle_hi_++] = out[i - 1];
      reused_.fetch_sub(from_idle, std::memory_order_relaxed);
      publish_idle_locked();
      return Errc::no_memory;
    }
    for (FrameId id = hw; id < want; id++) out[got++] = id;
    high_water_.store(want, std::memory_order_relaxed);
    if (want > populated_) {
      pop_lo = std::max<std::size_t>(populated_, hw);
      pop_hi = std::min<std::size_t>(
          mapped_frames_, (want + kPopulateFrames - 1) / kPopulateFrames * kPopulateFrames);
      populated_ = pop_hi;
    }
  }
  for (unsigned i = 0; i < n; i++) {
    // relaxed: the owner is published later under the class lock (release there).
    info_[out[i]].word().store(kFrameAllocated, std::memory_order_relaxed);
  }
  if (pop_hi > pop_lo) {
    // Outside the lock, so that threads growing the arena do not wait for each other's
    // zeroing. A frame of the window another thread allocates meanwhile just faults in.
    guard.unlock();
    madvise(address(static_cast<FrameId>(pop_lo)), (pop_hi - pop_lo) << kFrameShift,
            MADV_POPULATE_WRITE);
  }
  return {};
}

Result<FrameId> FrameArena::alloc_below(FrameId below) noexcept {
  MutexLock guard(lock_);
  for (std::size_t w = lowest_free_ / 64; w * 64 < below; w++) {
    if (free_bits_[w] == 0) continue;
    const unsigned b = static_cast<unsigned>(std::countr_zero(free_bits_[w]));
    const FrameId id = static_cast<FrameId>(w * 64 + b);
    if (id >= below) break;
    free_bits_[w] &= ~(std::uint64_t{1} << b);
    info_[id].word().store(kFrameAllocated, std::memory_order_relaxed);
    return id;
  }
  return Errc::no_memory;
}

unsigned FrameArena::decay_weight(unsigned age) noexcept {
  if (age >= kDecayEpochs) return 0;
  // 1 - smoothstep(x): flat near "just freed", steepest half way, flat near the end.
  const double x = static_cast<double>(age) / kDecayEpochs;
  return static_cast<unsigned>(std::lround(1024.0 * (1.0 - x * x * (3.0 - 2.0 * x))));
}

void FrameArena::advance_locked(std::uint64_t now_ns) noexcept {
  if (decay_ms_ == 0 || now_ns < epoch0_ns_) return;
  const std::uint64_t e = (now_ns - epoch0_ns_) / epoch_ns();
  if (e <= epoch_) return;
  const std::uint64_t steps = std::min<std::uint64_t>(e - epoch_, kDecayEpochs);
  for (std::uint64_t k = 1; k <= steps; k++) freed_[(epoch_ + k) % kDecayEpochs] = 0;
  epoch_ = e;
}

std::size_t FrameArena::allowed_idle_locked() const noexcept {
  std::uint64_t sum = 0;
  if (decay_ms_ != 0) {
    // epoch_ - age wraps for the first epochs: those buckets are still zero.
    for (unsigned age = 0; age < kDecayEpochs; age++) {
      sum += freed_[(epoch_ - age) % kDecayEpochs] * decay_weight(age);
    }
  }
  return std::max<std::size_t>(static_cast<std::size_t>(sum / 1024), keep_);
}

void FrameArena::return_frames(FrameId* batch, unsigned n) noexcept {
  if (n == 0) return;
  lock_.unlock();
  std::sort(batch, batch + n);
  for (unsigned a = 0; a < n;) {
    unsigned b = a + 1;
    while (b < n && batch[b] == batch[b - 1] + 1) b++;
    madvise(address(batch[a]), static_cast<std::size_t>(b - a) << kFrameShift, MADV_DONTNEED);
    a = b;
  }
  lock_.lock();
  returning_ -= n;  // zapped: no longer resident
  publish_idle_locked();
  for (unsigned k = 0; k < n; k++) {
    const FrameId id = batch[k];
    free_bits_[id / 64] |= std::uint64_t{1} << (id % 64);
    if (id < lowest_free_) lowest_free_ = id;
  }
  trim_locked();
  returned_.fetch_add(n, std::memory_order_relaxed);
}

// Frees frames. With cache, they become idle (pushed on top of the idle list) and count
// in the current epoch's bucket; with decay_ms == 0 everything beyond keep_frames goes
// back at once. A frame reaches the free bitmap only after its madvise, so nobody can
// allocate it and write to it while it is being zapped.
void FrameArena::free(const FrameId* ids, unsigned n, bool cache) noexcept {
  constexpr unsigned kBatch = 512;
  FrameId batch[kBatch];
  bool arm = false;
  MutexLock g(lock_);
  if (cache && decay_ms_ != 0) advance_locked(steady_ns());
  for (unsigned i = 0; i < n;) {
    unsigned nb = 0;
    unsigned cached = 0;
    for (; i < n && nb < kBatch; i++) {
      const FrameId id = ids[i];
      ZS_DCHECK(id < high_water(), "frame %u beyond the arena", id);
      info_[id].word().store(0, std::memory_order_relaxed);  // relaxed: nobody owns it any more
      if (!cache && keep_ < max_frames_) {  // an arena that keeps every frame keeps these
        batch[nb++] = id;
        continue;
      }
      if (idle_hi_ == max_frames_) {  // room at the top: slide the list down
        ZS_CHECK(idle_lo_ > 0, "idle frame list overflow (frame %u freed twice?)", id);
        std::memmove(idle_, idle_ + idle_lo_, (idle_hi_ - idle_lo_) * sizeof(FrameId));
        idle_hi_ -= idle_lo_;
        idle_lo_ = 0;
      }
      idle_[idle_hi_++] = id;
      cached++;
    }
    if (cached) {
      freed_[epoch_ % kDecayEpochs] += cached;
      if (idle_hi_ > idle_touched_) {
        idle_touched_ = idle_hi_;
        idle_touched_bytes_.store(
            (idle_touched_ * sizeof(FrameId) + kFrameSize - 1) & ~(kFrameSize - 1),
            std::memory_order_relaxed);
      }
      if (decay_ms_ == 0) {
        while (idle_hi_ - idle_lo_ > keep_ && nb < kBatch) batch[nb++] = idle_[idle_lo_++];
      } else if (!timer_armed_ && idle_hi_ - idle_lo_ > keep_) {
        timer_armed_ = arm = true;
      }
    }
    returning_ += nb;  // resident until return_frames has zapped them
    publish_idle_locked();
    return_frames(batch, nb);
  }
  g.unlock();
  if (arm) decay_worker_.kick_after(std::chrono::milliseconds(epoch_ns() / 1000000 + 1));
}

std::size_t FrameArena::release_idle() noexcept {
  FrameId batch[kReleaseBatch];
  std::size_t total = 0;
  MutexLock g(lock_);
  while (idle_hi_ > idle_lo_) {
    unsigned nb = 0;
    while (idle_hi_ > idle_lo_ && nb < kReleaseBatch) batch[nb++] = idle_[idle_lo_++];
    returning_ += nb;
    shrink_idle_locked();
    return_frames(batch, nb);
    total += nb;
  }
  return total;
}

// Resets an emptied idle list, returning its pages; slides a list whose dead bottom has
// grown larger than its live part down to index 0 (amortised: each slide moves at most
// as many entries as were removed since the last). Caller holds lock_.
void FrameArena::shrink_idle_locked() noexcept {
  if (idle_lo_ == idle_hi_) {
    idle_lo_ = idle_hi_ = 0;
    if (idle_touched_ * sizeof(FrameId) >= 16 * kFrameSize) {
      madvise(idle_, (idle_touched_ * sizeof(FrameId) + kFrameSize - 1) & ~(kFrameSize - 1),
              MADV_DONTNEED);
      idle_touched_ = 0;
      idle_touched_bytes_.store(0, std::memory_order_relaxed);
    }
  } else if (idle_lo_ >= 1024 && idle_lo_ >= idle_hi_ - idle_lo_) {
    std::memmove(idle_, idle_ + idle_lo_, (idle_hi_ - idle_lo_) * sizeof(FrameId));
    idle_hi_ -= idle_lo_;
    idle_lo_ = 0;
  }
  publish_idle_locked();
}

// The decay worker: returns the oldest idle frames beyond what the curve allows, then
// looks again at the next epoch boundary while any idle frame (beyond keep_) remains.
void FrameArena::decay_job() noexcept {
  FrameId batch[kReleaseBatch];
  MutexLock g(lock_);
  for (;;) {
    const std::uint64_t now = steady_ns();
    advance_locked(now);
    const std::size_t idle = idle_hi_ - idle_lo_;
    const std::size_t allowed = allowed_idle_locked();
    if (idle <= allowed) break;
    unsigned nb = 0;
    while (idle_hi_ - idle_lo_ > allowed && nb < kReleaseBatch) batch[nb++] = idle_[idle_lo_++];
    returning_ += nb;
    shrink_idle_locked();
    return_frames(batch, nb);
  }
  const bool rearm = idle_hi_ - idle_lo_ > keep_;
  timer_armed_ = rearm;
  std::uint64_t delay_ns = 0;
  if (rearm) {
    const std::uint64_t now = steady_ns();
    const std::uint64_t e = epoch_ns();
    delay_ns = e - (now - epoch0_ns_) % e;
  }
  g.unlock();
  if (rearm) decay_worker_.kick_after(std::chrono::milliseconds(delay_ns / 1000000 + 1));
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

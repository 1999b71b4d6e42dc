// pool/frame_arena.cc - frame allocation from the mmap'ed arena.
#include "pool/frame_arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

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
constexpr std::size_t kRegionBytes = std::size_t{FrameRegions::kFrames} << kFrameShift;
constexpr FrameId kNoFrame = ~FrameId{0};
constexpr std::size_t kRegionMask = FrameRegions::kFrames - 1;

// Whether transparent huge pages can be had with MADV_HUGEPAGE: THP is built in and its
// mode is not "never" (/sys/kernel/mm/transparent_hugepage/enabled: "always [madvise]
// never", the bracket marks the mode).
bool thp_available() noexcept {
  std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
  if (f == nullptr) return false;
  char buf[128] = {};
  const std::size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = 0;
  return std::strstr(buf, "[never]") == nullptr && std::strchr(buf, '[') != nullptr;
}

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
  MutexLock g(lock_);  // for the analysis: the table pointer never changes after init
  return resident_bytes_of(info_, max_frames_ * sizeof(*info_)) +
         resident_bytes_of(free_bits_, (max_frames_ + 63) / 64 * 8) +
         resident_bytes_of(regions_.table(), regions_.table_capacity_bytes());
}

void FrameArena::region_counts(FrameId id, unsigned* used, unsigned* idle) const noexcept {
  MutexLock g(lock_);
  *used = regions_.used(id >> FrameRegions::kShift);
  *idle = regions_.idle(id >> FrameRegions::kShift);
}

FrameArena::~FrameArena() {
  decay_worker_.stop();
  if (base_) munmap(base_, max_frames_ << kFrameShift);
  if (info_) munmap(info_, max_frames_ * sizeof(*info_));
  if (free_bits_) munmap(free_bits_, (max_frames_ + 63) / 64 * 8);
}

Result<void> FrameArena::init(std::size_t max_bytes, std::size_t keep_frames,
                              std::uint32_t decay_ms, bool prefault, bool huge_pages) noexcept {
  max_frames_ = max_bytes >> kFrameShift;
  // Frame ids are 32-bit; only zspage ids (the 28-bit owner field) are narrower, and the
  // pool caps those (PoolImpl::init). 2^28 frames = the documented 1 TiB maximum.
  if (max_frames_ == 0 || max_frames_ > std::size_t{kFrameOwnerMask} + 1)
    return Errc::invalid_argument;
  keep_ = std::min(keep_frames, max_frames_);
  decay_ms_ = decay_ms;
  epoch0_ns_ = steady_ns();
  // 2 MiB-aligned, so that every region can be one huge page: reserve a region more, cut
  // the slack off both ends.
  const std::size_t bytes = max_frames_ << kFrameShift;
  auto* raw = static_cast<std::byte*>(map_noreserve(bytes + kRegionBytes, PROT_NONE));
  if (raw) {
    const auto addr = reinterpret_cast<std::uintptr_t>(raw);
    const std::size_t head = (kRegionBytes - addr % kRegionBytes) % kRegionBytes;
    if (head) munmap(raw, head);
    munmap(raw + head + bytes, kRegionBytes - head);
    base_ = raw + head;
  }
  // Zero-filled: every frame unowned, unlocked, not allocated.
  info_ =
      static_cast<FrameInfo*>(map_noreserve(max_frames_ * sizeof(*info_), PROT_READ | PROT_WRITE));
  free_bits_ = static_cast<std::uint64_t*>(
      map_noreserve((max_frames_ + 63) / 64 * 8, PROT_READ | PROT_WRITE));
  if (!base_ || !info_ || !free_bits_) return Errc::no_memory;
  MutexLock l(lock_);  // nobody else has the arena yet: for the analysis
  if (auto r = regions_.init(max_frames_); !r) return r;
  if (prefault) {
    // As before regions existed: the THP mode decides the pages (an arena that keeps every
    // frame returns none, so nothing for khugepaged to refill). MADV_HUGEPAGE here would
    // make create wait for every fresh huge page: on a VM up to ~20 ms per 2 MiB
    // (docs/design.md#huge-pages).
    if (mprotect(base_, bytes, PROT_READ | PROT_WRITE) != 0 ||
        madvise(base_, bytes, MADV_POPULATE_WRITE) != 0) {
      return Errc::no_memory;
    }
    mapped_frames_ = populated_ = max_frames_;
    return {};
  }
  // Never collapsed by khugepaged (THP "always", or "madvise" for a region while it is
  // populated): a returned frame must stay returned. Fails harmlessly without THP.
  madvise(base_, bytes, MADV_NOHUGEPAGE);
  // With decay_ms == 0 every freed frame goes back at once: whole regions would be
  // populated only to be split again.
  huge_ = huge_pages && decay_ms_ != 0 && thp_available();
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

FrameId FrameArena::lowest_free_locked() noexcept {
  const std::size_t words = (std::size_t{top_} + 63) / 64;
  for (std::size_t w = lowest_free_ / 64; w < words; w++) {
    if (free_bits_[w] != 0) {
      return static_cast<FrameId>(w * 64 + static_cast<unsigned>(std::countr_zero(free_bits_[w])));
    }
    lowest_free_ = static_cast<FrameId>((w + 1) * 64);
  }
  return kNoFrame;
}

bool FrameArena::region_free_locked(std::uint32_t r) const noexcept {
  constexpr unsigned kWords = FrameRegions::kWords;
  if ((std::size_t{r} + 1) * FrameRegions::kFrames > top_) return false;
  for (unsigned w = 0; w < kWords; w++) {
    if (free_bits_[std::size_t{r} * kWords + w] != ~std::uint64_t{0}) return false;
  }
  return true;
}

bool FrameArena::populate_region_locked(std::uint32_t r) noexcept {
  for (unsigned w = 0; w < FrameRegions::kWords; w++) free_bits_[r * FrameRegions::kWords + w] = 0;
  populating_ += FrameRegions::kFrames;
  publish_idle_locked();
  // Outside the lock (zeroing 2 MiB, and with THP defrag "madvise" maybe a compaction):
  // the region's frames are in no list now, so nobody else takes or returns them.
  lock_.unlock();
  std::byte* p = address(r << FrameRegions::kShift);
  madvise(p, kRegionBytes, MADV_HUGEPAGE);
  madvise(p, kRegionBytes, MADV_POPULATE_WRITE);  // on failure its frames fault in later
  madvise(p, kRegionBytes, MADV_NOHUGEPAGE);      // the huge page stays; no collapse later
  lock_.lock();
  populating_ -= FrameRegions::kFrames;
  regions_populated_.fetch_add(1, std::memory_order_relaxed);
  // The region's frames decay like frames freed now: an active pool takes them within
  // moments, one that stops before using them gets them returned within decay_ms.
  advance_locked(steady_ns());
  freed_[epoch_ % kDecayEpochs] += FrameRegions::kFrames;
  regions_.add_whole_idle(r);
  publish_idle_locked();
  if (timer_armed_ || regions_.idle_total() <= keep_) return false;
  timer_armed_ = true;
  return true;
}

void FrameArena::undo_alloc_locked(const FrameId* out, unsigned n,
                                   std::uint64_t resident) noexcept {
  for (unsigned i = 0; i < n; i++) {
    if (resident >> i & 1) {
      regions_.add_idle(out[i]);
      reused_.fetch_sub(1, std::memory_order_relaxed);
    } else {
      regions_.add_used(out[i], -1);
      free_bits_[out[i] / 64] |= std::uint64_t{1} << (out[i] % 64);
      if (out[i] < lowest_free_) lowest_free_ = out[i];
    }
  }
  publish_idle_locked();
}

Result<void> FrameArena::alloc(FrameId* out, unsigned n) noexcept {
  ZS_CHECK(n <= 64, "frame alloc of %u frames (at most 64)", n);
  MutexLock guard(lock_);
  std::size_t pop_lo = 0, pop_hi = 0;
  bool arm = false;
  unsigned got = 0;
  std::uint64_t resident = 0;  // bit i: out[i] was idle
  while (got < n) {
    // 1. Idle frames, from the fullest region that has some.
    if (const unsigned k = regions_.take_idle(out + got, n - got)) {
      resident |= (k == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << k) - 1) << got;
      got += k;
      reused_.fetch_add(k, std::memory_order_relaxed);
      publish_idle_locked();
      continue;
    }
    // 2. Free frames below the high-water mark, lowest first: a wholly free region is
    // populated whole (then 1. takes from it), a frame of a partly used one faults in.
    if (const FrameId f = lowest_free_locked(); f != kNoFrame) {
      const std::uint32_t r = f >> FrameRegions::kShift;
      if (huge_ && region_free_locked(r)) {
        arm |= populate_region_locked(r);
        continue;
      }
      free_bits_[f / 64] &= ~(std::uint64_t{1} << (f % 64));
      regions_.add_used(f, +1);
      out[got++] = f;
      continue;
    }
    // 3. Fresh frames above the tracked span. With huge regions the span grows to the end
    // of the next region, whose frames become free (2. populates it).
    const FrameId hw = top_;
    if (huge_) {
      const std::size_t end = std::min<std::size_t>(
          max_frames_, (std::size_t{hw} + FrameRegions::kFrames) & ~std::size_t{kRegionMask});
      if (hw >= max_frames_ || !grow_locked(static_cast<FrameId>(end))) {
        if (populating_ > 0) {  // another alloc is populating a region: its frames come
          lock_.unlock();
          std::this_thread::yield();
          lock_.lock();
          continue;
        }
        undo_alloc_locked(out, got, resident);
        return Errc::no_memory;
      }
      for (std::size_t id = hw; id < end; id++) {
        free_bits_[id / 64] |= std::uint64_t{1} << (id % 64);
      }
      if (hw < lowest_free_) lowest_free_ = hw;  // it may have run ahead to a word's end
      top_ = static_cast<FrameId>(end);
      continue;
    }
    const FrameId want = hw + (n - got);
    if (!grow_locked(want)) {
      undo_alloc_locked(out, got, resident);
      return Errc::no_memory;
    }
    for (FrameId id = hw; id < want; id++) {
      regions_.add_used(id, +1);
      out[got++] = id;
    }
    top_ = want;
    if (want > populated_) {
      pop_lo = std::max<std::size_t>(populated_, hw);
      pop_hi = std::min<std::size_t>(
          mapped_frames_, (want + kPopulateFrames - 1) / kPopulateFrames * kPopulateFrames);
      populated_ = pop_hi;
    }
  }
  FrameId top = high_water();
  for (unsigned i = 0; i < n; i++) {
    // relaxed: the owner is published later under the class lock (release there).
    info_[out[i]].word().store(kFrameAllocated, std::memory_order_relaxed);
    top = std::max(top, out[i] + 1);
  }
  high_water_.store(top, std::memory_order_relaxed);
  guard.unlock();
  if (arm) decay_worker_.kick_after(std::chrono::milliseconds(epoch_ns() / 1000000 + 1));
  if (pop_hi > pop_lo) {
    // Outside the lock, so that threads growing the arena do not wait for each other's
    // zeroing. A frame of the window another thread allocates meanwhile just faults in.
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
    regions_.add_used(id, +1);
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
  // Counted before idle_count_ falls (its release store): a reader that sees the idle
  // frames gone sees them returned.
  returned_.fetch_add(n, std::memory_order_relaxed);
  publish_idle_locked();
  for (unsigned k = 0; k < n; k++) {
    const FrameId id = batch[k];
    free_bits_[id / 64] |= std::uint64_t{1} << (id % 64);
    if (id < lowest_free_) lowest_free_ = id;
  }
  trim_locked();
}

// Frees frames. With cache, they become idle (in their region) and count in the current
// epoch's bucket; with decay_ms == 0 every idle frame beyond keep_frames goes back at once.
// A frame reaches the free bitmap only after its madvise, so nobody can allocate it and
// write to it while it is being zapped.
void FrameArena::free(const FrameId* ids, unsigned n, bool cache) noexcept {
  constexpr unsigned kBatch = FrameRegions::kFrames;  // take_for_return: a region at least
  FrameId batch[kBatch];
  bool arm = false;
  MutexLock g(lock_);
  if (cache && decay_ms_ != 0) advance_locked(steady_ns());
  unsigned nb = 0, cached = 0;
  for (unsigned i = 0; i < n; i++) {
    const FrameId id = ids[i];
    ZS_DCHECK(id < high_water(), "frame %u beyond the arena", id);
    info_[id].word().store(0, std::memory_order_relaxed);  // relaxed: nobody owns it any more
    if (!cache && keep_ < max_frames_) {  // an arena that keeps every frame keeps these
      regions_.add_used(id, -1);
      batch[nb++] = id;
      returning_++;  // resident until return_frames has zapped them
      if (nb == kBatch) {
        publish_idle_locked();
        return_frames(batch, nb);
        nb = 0;
      }
      continue;
    }
    regions_.add_idle(id);
    cached++;
  }
  if (cached) freed_[epoch_ % kDecayEpochs] += cached;
  publish_idle_locked();
  return_frames(batch, nb);
  if (cached && decay_ms_ == 0) {
    while ((nb = regions_.take_for_return(batch, kBatch, keep_, keep_)) != 0) {
      returning_ += nb;
      publish_idle_locked();
      return_frames(batch, nb);
    }
  } else if (cached && !timer_armed_ && regions_.idle_total() > keep_) {
    timer_armed_ = arm = true;
  }
  g.unlock();
  if (arm) decay_worker_.kick_after(std::chrono::milliseconds(epoch_ns() / 1000000 + 1));
}

std::size_t FrameArena::release_idle() noexcept {
  FrameId batch[kReleaseBatch];
  std::size_t total = 0;
  MutexLock g(lock_);
  unsigned nb;
  while ((nb = regions_.take_for_return(batch, kReleaseBatch, 0, 0)) != 0) {
    returning_ += nb;
    publish_idle_locked();
    return_frames(batch, nb);
    total += nb;
  }
  return total;
}

// The decay worker: returns the idle frames beyond what the curve allows (whole idle
// regions first), then looks again at the next epoch boundary while any idle frame
// (beyond keep_) remains.
void FrameArena::decay_job() noexcept {
  FrameId batch[kReleaseBatch];
  MutexLock g(lock_);
  for (;;) {
    advance_locked(steady_ns());
    const unsigned nb =
        regions_.take_for_return(batch, kReleaseBatch, allowed_idle_locked(), keep_);
    if (nb == 0) break;
    returning_ += nb;
    publish_idle_locked();
    return_frames(batch, nb);
  }
  const bool rearm = regions_.idle_total() > keep_;
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
  const std::uint64_t* bits = free_bits_;
  const auto is_free = [bits](FrameId id) { return bits[id / 64] >> (id % 64) & 1; };
  // Free frames at the top of the span leave it (fresh again)...
  while (top_ > 0 && is_free(top_ - 1)) {
    free_bits_[(top_ - 1) / 64] &= ~(std::uint64_t{1} << ((top_ - 1) % 64));
    top_--;
  }
  // ...and the high-water mark falls over free frames (idle ones above it stay idle).
  FrameId hw = std::min(high_water(), top_);
  while (hw > 0 && is_free(hw - 1)) hw--;
  high_water_.store(hw, std::memory_order_relaxed);
  if (lowest_free_ > top_) lowest_free_ = top_;
}

}  // namespace uzram

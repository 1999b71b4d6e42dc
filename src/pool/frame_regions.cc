// pool/frame_regions.cc - the arena's idle frames per 2 MiB region (frame_regions.h).
#include "pool/frame_regions.h"

#include <sys/mman.h>

#include <algorithm>

namespace uzram {

FrameRegions::~FrameRegions() {
  if (regions_) munmap(regions_, nregions_ * sizeof(Region));
}

Result<void> FrameRegions::init(std::size_t max_frames) noexcept {
  nregions_ = (max_frames + kFrames - 1) >> kShift;
  void* p = mmap(nullptr, nregions_ * sizeof(Region), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Errc::no_memory;
  regions_ = static_cast<Region*>(p);  // zero-filled: no idle frame, none used, not listed
  for (unsigned b = 0; b < kBuckets; b++) head_[b] = tail_[b] = kNone;
  return {};
}

void FrameRegions::unlink(std::uint32_t r) noexcept {
  Region& g = regions_[r];
  const unsigned b = g.list - 1u;
  if (g.prev != kNone) {
    regions_[g.prev].next = g.next;
  } else {
    head_[b] = g.next;
  }
  if (g.next != kNone) {
    regions_[g.next].prev = g.prev;
  } else {
    tail_[b] = g.prev;
  }
  if (head_[b] == kNone) nonempty_ &= ~(1u << b);
  g.list = 0;
}

void FrameRegions::move(std::uint32_t r) noexcept {
  Region& g = regions_[r];
  if (g.list != 0) unlink(r);
  const unsigned want = list_of(g);
  if (want == 0) return;
  const unsigned b = want - 1;
  g.list = static_cast<std::uint8_t>(want);
  g.prev = kNone;
  g.next = head_[b];
  if (head_[b] != kNone) {
    regions_[head_[b]].prev = r;
  } else {
    tail_[b] = r;
  }
  head_[b] = r;
  nonempty_ |= 1u << b;
}

void FrameRegions::add_whole_idle(std::uint32_t r) noexcept {
  Region& g = regions_[r];
  ZS_DCHECK(g.used == 0 && g.idle_n == 0, "region %u is not empty", r);
  for (unsigned w = 0; w < kWords; w++) g.idle[w] = ~std::uint64_t{0};
  g.idle_n = kFrames;
  idle_total_ += kFrames;
  relist(r);
}

unsigned FrameRegions::take_idle(std::uint32_t* out, unsigned n) noexcept {
  if (nonempty_ == 0 || n == 0) return 0;
  const unsigned b = 31 - static_cast<unsigned>(std::countl_zero(nonempty_));
  const std::uint32_t r = head_[b];
  Region& g = regions_[r];
  unsigned got = 0;
  for (unsigned w = 0; w < kWords && got < n; w++) {
    while (got < n && g.idle[w] != 0) {
      const auto k = static_cast<unsigned>(std::countr_zero(g.idle[w]));
      g.idle[w] &= g.idle[w] - 1;
      out[got++] = (r << kShift) + w * 64 + k;
    }
  }
  g.idle_n = static_cast<std::uint16_t>(g.idle_n - got);
  g.used = static_cast<std::uint16_t>(g.used + got);
  idle_total_ -= got;
  relist(r);
  return got;
}

unsigned FrameRegions::take_top(std::uint32_t r, std::uint32_t* out, unsigned k) noexcept {
  Region& g = regions_[r];
  unsigned got = 0;
  for (unsigned w = kWords; w-- > 0 && got < k;) {
    while (got < k && g.idle[w] != 0) {
      const unsigned bit = 63 - static_cast<unsigned>(std::countl_zero(g.idle[w]));
      g.idle[w] &= ~(std::uint64_t{1} << bit);
      out[got++] = (r << kShift) + w * 64 + bit;
    }
  }
  g.idle_n = static_cast<std::uint16_t>(g.idle_n - got);
  idle_total_ -= got;
  relist(r);
  return got;
}

unsigned FrameRegions::take_for_return(std::uint32_t* out, unsigned max, std::size_t allowed,
                                       std::size_t floor) noexcept {
  ZS_DCHECK(max >= kFrames, "a return batch must hold a whole region");
  unsigned nb = 0;
  while (idle_total_ > allowed && nb < max && nonempty_ != 0) {
    const std::size_t excess = idle_total_ - allowed;
    if (nonempty_ & 1u) {  // a wholly idle region: whole, if the floor allows
      const std::uint32_t r = tail_[0];
      const unsigned i = regions_[r].idle_n;
      if (i > max - nb) break;  // next round: keep a region in one madvise
      const unsigned k =
          excess >= i || idle_total_ - i >= floor ? i : static_cast<unsigned>(excess);
      nb += take_top(r, out + nb, k);
      continue;
    }
    const unsigned b = static_cast<unsigned>(std::countr_zero(nonempty_));  // emptiest
    const std::uint32_t r = tail_[b];
    const auto k =
        static_cast<unsigned>(std::min<std::size_t>({excess, regions_[r].idle_n, max - nb}));
    nb += take_top(r, out + nb, k);
  }
  return nb;
}

}  // namespace uzram

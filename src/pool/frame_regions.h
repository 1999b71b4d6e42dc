// pool/frame_regions.h - FrameRegions: the arena's idle frames, kept per 2 MiB region
// (512 frames: one transparent huge page of the arena; docs/design.md#frames) (layer 2).
//
// A region counts its frames in use (`used`: out of the arena, in a zspage) and marks its
// idle frames (resident, free) in a bitmap. Regions with idle frames are listed by how
// full they are: bucket 0 holds wholly idle regions (used == 0), buckets 1..16 the partly
// used ones by used / 32. Allocation takes idle frames from the fullest listed region,
// lowest frame first, so a pool that frees everything and refills rebuilds the same huge
// pages with adjacent frames, and partial frees concentrate in few regions. The decay
// returns wholly idle regions first (one madvise of 2 MiB: the huge page goes back
// whole), oldest listed first; only then the idle frames of partly used regions, emptiest
// first (which splits their huge pages).
//
// Not thread-safe: the arena's lock_ guards every call (FrameArena holds it ZS_GUARDED_BY).
// Memory: a table of 80-byte entries, one per region of the reservation (mmap'ed
// MAP_NORESERVE; only the entries of regions below the high-water mark are touched).
#ifndef UZRAM_POOL_FRAME_REGIONS_H_
#define UZRAM_POOL_FRAME_REGIONS_H_

#include <bit>
#include <cstddef>
#include <cstdint>

#include "util/check.h"
#include "uzram/result.h"

namespace uzram {

class FrameRegions {
 public:
  static constexpr unsigned kShift = 9;  // 512 frames of 4 KiB: 2 MiB
  static constexpr unsigned kFrames = 1u << kShift;
  static constexpr unsigned kWords = kFrames / 64;
  static constexpr unsigned kBuckets = 17;
  static constexpr std::uint32_t kNone = ~std::uint32_t{0};

  FrameRegions() noexcept = default;
  ~FrameRegions();
  FrameRegions(const FrameRegions&) = delete;
  FrameRegions& operator=(const FrameRegions&) = delete;

  // Reserves the table for the regions of max_frames frames. Errors: no_memory.
  [[nodiscard]] Result<void> init(std::size_t max_frames) noexcept;

  // A frame left (+1) or came back to (-1) the arena's accounting of "in use".
  void add_used(std::uint32_t frame, int delta) noexcept {
    Region& g = regions_[frame >> kShift];
    ZS_DCHECK(delta > 0 ? g.used < kFrames : g.used > 0, "frame %u: region count", frame);
    g.used = static_cast<std::uint16_t>(g.used + delta);
    if (g.idle_n) relist(frame >> kShift);
  }
  // A freed frame becomes idle (its region's used count falls by one).
  void add_idle(std::uint32_t frame) noexcept {
    Region& g = regions_[frame >> kShift];
    const unsigned b = frame & (kFrames - 1);
    ZS_CHECK(!(g.idle[b / 64] >> (b % 64) & 1) && g.used != 0,
             "frame %u freed twice (it is idle already)", frame);
    g.idle[b / 64] |= std::uint64_t{1} << (b % 64);
    g.used--;
    g.idle_n++;
    idle_total_++;
    relist(frame >> kShift);
  }
  // Every frame of region r becomes idle (a region populated whole; none was in use).
  void add_whole_idle(std::uint32_t r) noexcept;
  // Takes up to n idle frames for allocation from the fullest listed region (lowest first)
  // into out[]; they count as used. Returns how many (0: no idle frame).
  unsigned take_idle(std::uint32_t* out, unsigned n) noexcept;
  // Takes idle frames to return to the OS into out[] (at most max), until the idle frames
  // left are at most `allowed`: wholly idle regions first, oldest first, whole (below
  // `allowed` by up to a region's frames, but never below `floor`); then partly used
  // regions, emptiest first. Returns how many.
  unsigned take_for_return(std::uint32_t* out, unsigned max, std::size_t allowed,
                           std::size_t floor) noexcept;

  std::size_t idle_total() const noexcept { return idle_total_; }
  // Bytes of the table that may be resident: the entries of regions below `frames`.
  static std::size_t table_bytes(std::size_t frames) noexcept {
    return ((frames + kFrames - 1) >> kShift) * sizeof(Region);
  }
  const void* table() const noexcept { return regions_; }
  std::size_t table_capacity_bytes() const noexcept { return nregions_ * sizeof(Region); }

  // For tests and validation: the counts of region r.
  unsigned used(std::uint32_t r) const noexcept { return regions_[r].used; }
  unsigned idle(std::uint32_t r) const noexcept { return regions_[r].idle_n; }

 private:
  struct Region {
    std::uint64_t idle[kWords];  // bit k: frame r * 512 + k is idle
    std::uint32_t prev, next;    // in the list of its bucket (list - 1)
    std::uint16_t used;          // frames in use
    std::uint16_t idle_n;        // idle frames (bits set in idle[])
    std::uint8_t list;           // 0: not listed (no idle frame), else bucket + 1
  };
  static_assert(sizeof(Region) == 80);

  // The list a region belongs on: 0 if it has no idle frame, else its bucket + 1.
  static unsigned list_of(const Region& g) noexcept {
    if (g.idle_n == 0) return 0;
    return g.used == 0 ? 1 : 2 + (g.used - 1u) / 32;
  }
  void relist(std::uint32_t r) noexcept {
    if (list_of(regions_[r]) != regions_[r].list) move(r);
  }
  void move(std::uint32_t r) noexcept;
  void unlink(std::uint32_t r) noexcept;
  // Takes the k highest idle frames of region r (k <= its idle count) into out[].
  unsigned take_top(std::uint32_t r, std::uint32_t* out, unsigned k) noexcept;

  Region* regions_ = nullptr;
  std::size_t nregions_ = 0;
  // Per bucket: the newest listed region (head) and the oldest (tail), kNone when empty.
  std::uint32_t head_[kBuckets];
  std::uint32_t tail_[kBuckets];
  std::uint32_t nonempty_ = 0;  // bit b: bucket b is not empty
  std::size_t idle_total_ = 0;
};

}  // namespace uzram

#endif  // UZRAM_POOL_FRAME_REGIONS_H_

// pool/geometry.h - the size-class table (layer 2), built exactly as Linux 6.18 zsmalloc
// builds it (docs/design.md#geometry):
//   slot i (0..254) has size 32 + 16 i (clipped to 4096); its chain is 1 frame for powers
//   of two, else the k in 1..chain_size with the least (k*4096) mod size (first wins);
//   objs = k*4096/size. Walking from slot 254 down, a slot whose (pages, objs) equals the
//   last created class's is merged into it. The largest class with pages != 1 and
//   objs != 1 is the largest normal class; huge_class_size = its size - 7.
// Invariants: 1. slot_class(i) >= i and class(slot_class(i)).size >= size(i).
//   2. a huge class has pages == 1 and objs == 1.
//
// Large objects (more than 4096 bytes, PoolOptions::max_object_size up to 64 KiB;
// docs/units.md#pool-objects-larger-than-a-frame): an object is a *run* of whole frames,
// in a run class of that many frames (one object per zspage, no tail waste), plus a
// *tail* - the bytes past the last whole frame - stored as an ordinary object of the small
// classes above. A tail larger than the largest normal class (max_tail(): 3632 bytes at
// chain 8) would take a frame of its own in the huge class anyway, so the run takes one
// more frame instead and the object has no tail. split_large() is that rule; the
// functions below it are pure.
#ifndef UZRAM_POOL_GEOMETRY_H_
#define UZRAM_POOL_GEOMETRY_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace uzram {

inline constexpr unsigned kMinAllocSize = 32;
inline constexpr unsigned kClassDelta = 16;
inline constexpr unsigned kSlots = 255;
// The kernel's in-object header (handle | tag). uzram objects have none; the size only
// defines huge_class_size() = largest normal class - (kKernelHeaderSize - 1), the
// kernel's value, which zram uses as its huge-page threshold.
inline constexpr unsigned kKernelHeaderSize = 8;
inline constexpr unsigned kMinChain = 4;
inline constexpr unsigned kMaxChain = 16;
inline constexpr unsigned kFrameSize = 4096;
inline constexpr unsigned kFrameShift = 12;
// Large objects: at most 64 KiB, so a run has at most 16 frames (kMaxChain: run zspages
// use the descriptor tables of 1..16 frames that chains use).
inline constexpr std::size_t kMaxLargeObjectSize = 65536;
inline constexpr unsigned kMaxRunFrames = kMaxLargeObjectSize / kFrameSize;
static_assert(kMaxRunFrames <= kMaxChain);

// How a large object is laid out: `frames` whole frames hold bytes [0, frames * 4096),
// a tail object of the small classes holds the other `tail` bytes (0 = no tail).
struct LargeSplit {
  unsigned frames = 0;
  unsigned tail = 0;
};

// The layout of an object of `size` bytes (4097..kMaxLargeObjectSize) when tails of at
// most `tail_max` bytes go to the small classes (Geometry::max_tail()).
constexpr LargeSplit split_large(std::size_t size, std::size_t tail_max) noexcept {
  const auto frames = static_cast<unsigned>(size / kFrameSize);
  const auto tail = static_cast<unsigned>(size % kFrameSize);
  if (tail > tail_max) return {frames + 1, 0};
  return {frames, tail};
}

// Tail spill (docs/units.md#tails-in-a-larger-class): a tail of `tail` bytes (1..tail_max)
// that would open a new zspage in its own class may instead take a free slot of a larger
// normal class of at most tail_spill_limit() bytes, while its own class has placed fewer
// than kTailSpillZspages zspages' worth of its tails elsewhere. A store holds few tails
// per class (128 MiB at 32 KiB units: 3348 tails over 120 classes), so each class's last
// zspage is partly empty; spilled tails fill those instead of opening more. The cap keeps
// the rounding it costs (up to kTailSpillSlack bytes a tail) off a class that has enough
// tails for zspages of its own (measured: docs/benchmarks.md#pool-tails-in-a-larger-class).
inline constexpr std::size_t kTailSpillSlack = 128;
inline constexpr unsigned kTailSpillZspages = 2;
constexpr std::size_t tail_spill_limit(std::size_t tail, std::size_t tail_max) noexcept {
  return std::min(tail + kTailSpillSlack, tail_max);
}

// The raw-storage threshold for objects of up to `max_size` bytes (a multiple of 4096):
// the small classes' huge_class_size scaled to max_size. A caller that stores data of
// max_size bytes compressed (zram's pages, the store's units) keeps it raw from this
// compressed size on, as zram does for a 4 KiB page at huge_class_size: the memory it
// would save is at most (4096 - huge_class_size) / 4096 of max_size (11.5 % at chain 8),
// not worth a decompression on every read. Equals huge_class_size for max_size 4096.
constexpr std::size_t huge_object_size(std::size_t max_size, std::size_t huge_class_size) noexcept {
  return max_size / kFrameSize * huge_class_size;
}

// Run classes: one per run length 2..max_frames, each of one object per zspage, listed
// after the small classes (index kSlots + frames - 2). The 1-frame run is the small
// family's huge class (4096 bytes, 1 frame, 1 object), shared.
constexpr unsigned num_run_classes(std::size_t max_object_size) noexcept {
  return max_object_size > kFrameSize
             ? static_cast<unsigned>((max_object_size + kFrameSize - 1) / kFrameSize) - 1
             : 0;
}
constexpr unsigned run_class_index(unsigned frames) noexcept { return kSlots + frames - 2; }

struct ClassInfo {
  std::uint16_t size = 0;
  std::uint16_t objs_per_zspage = 0;
  std::uint8_t pages_per_zspage = 0;
  bool huge = false;
};

class Geometry {
 public:
  explicit Geometry(unsigned chain_size) noexcept;

  // Slot for an object of `size` bytes (objects have no header: the slot holds just `size`).
  static unsigned slot_for(std::size_t size) noexcept {
    if (size <= kMinAllocSize) return 0;
    const std::size_t s = (size - kMinAllocSize + kClassDelta - 1) / kClassDelta;
    return s < kSlots ? static_cast<unsigned>(s) : kSlots - 1;
  }
  // Index of the real class serving slot i (the largest slot merged with it).
  unsigned class_of_slot(unsigned slot) const noexcept { return slot_class_[slot]; }
  // Geometry of a real class index (only meaningful where class_of_slot(i) == i).
  const ClassInfo& info(unsigned index) const noexcept { return info_[index]; }
  bool is_real(unsigned index) const noexcept { return slot_class_[index] == index; }
  std::size_t huge_class_size() const noexcept { return huge_class_size_; }
  // The largest object a normal class (more than one object per zspage) serves: a large
  // object's tail is at most this long (split_large). 3632 at chain 8.
  std::size_t max_tail() const noexcept { return huge_class_size_ + (kKernelHeaderSize - 1); }
  unsigned chain_size() const noexcept { return chain_; }
  unsigned num_classes() const noexcept { return num_classes_; }

 private:
  unsigned chain_;
  unsigned num_classes_ = 0;
  std::size_t huge_class_size_ = 0;
  std::uint16_t slot_class_[kSlots];
  ClassInfo info_[kSlots];
};

}  // namespace uzram

#endif  // UZRAM_POOL_GEOMETRY_H_

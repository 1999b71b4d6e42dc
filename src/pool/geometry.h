// pool/geometry.h - the size-class table (layer 2), built exactly as Linux 6.18 zsmalloc
// builds it (docs/design.md#geometry):
//   slot i (0..254) has size 32 + 16 i (clipped to 4096); its chain is 1 frame for powers
//   of two, else the k in 1..chain_size with the least (k*4096) mod size (first wins);
//   objs = k*4096/size. Walking from slot 254 down, a slot whose (pages, objs) equals the
//   last created class's is merged into it. The largest class with pages != 1 and
//   objs != 1 is the largest normal class; huge_class_size = its size - 7.
// Invariants: 1. slot_class(i) >= i and class(slot_class(i)).size >= size(i).
//   2. a huge class has pages == 1 and objs == 1.
#ifndef UZRAM_POOL_GEOMETRY_H_
#define UZRAM_POOL_GEOMETRY_H_

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

// pool/geometry.cc - builds the class table (see geometry.h for the rules).
#include "pool/geometry.h"

#include "util/check.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

unsigned chain_for(unsigned size, unsigned chain) {
  if ((size & (size - 1)) == 0) return 1;  // powers of two fit one frame exactly
  unsigned best = 1, best_waste = kFrameSize;
  for (unsigned k = 1; k <= chain; k++) {
    const unsigned waste = (k * kFrameSize) % size;
    if (waste < best_waste) {
      best_waste = waste;
      best = k;
    }
  }
  return best;
}

}  // namespace

Geometry::Geometry(unsigned chain_size) noexcept : chain_(chain_size) {
  ZS_CHECK(chain_size >= kMinChain && chain_size <= kMaxChain, "chain size %u not in 4..16",
           chain_size);
  bool have_prev = false;
  ClassInfo prev{};
  unsigned prev_index = 0;
  for (int i = kSlots - 1; i >= 0; i--) {
    unsigned size = kMinAllocSize + static_cast<unsigned>(i) * kClassDelta;
    if (size > kFrameSize) size = kFrameSize;
    const unsigned pages = chain_for(size, chain_size);
    const unsigned objs = pages * kFrameSize / size;
    if (huge_class_size_ == 0 && pages != 1 && objs != 1)
      huge_class_size_ = size - (kKernelHeaderSize - 1);
    if (have_prev && prev.pages_per_zspage == pages && prev.objs_per_zspage == objs) {
      slot_class_[i] = static_cast<std::uint16_t>(prev_index);
      info_[i] = prev;
      continue;
    }
    prev = ClassInfo{static_cast<std::uint16_t>(size), static_cast<std::uint16_t>(objs),
                     static_cast<std::uint8_t>(pages), pages == 1 && objs == 1};
    prev_index = static_cast<unsigned>(i);
    have_prev = true;
    slot_class_[i] = static_cast<std::uint16_t>(i);
    info_[i] = prev;
    num_classes_++;
  }
}

std::vector<ClassGeometry> class_table(unsigned chain_size) noexcept {
  std::vector<ClassGeometry> out;
  if (chain_size < kMinChain || chain_size > kMaxChain) return out;
  const Geometry g(chain_size);
  for (int i = kSlots - 1; i >= 0; i--) {
    if (!g.is_real(static_cast<unsigned>(i))) continue;
    const ClassInfo& c = g.info(static_cast<unsigned>(i));
    out.push_back(
        {static_cast<unsigned>(i), c.size, c.pages_per_zspage, c.objs_per_zspage, c.huge});
  }
  return out;
}

}  // namespace uzram

// testing/ref_geometry.h - an independent statement of the kernel's size-class rules, used
// to check the library's table (it shares no code with src/pool/geometry.cc):
//   slot i = 32 + 16 i (at most 4096); pages = 1 for a power of two, else the k in
//   1..chain with the least (k * 4096) % size (first wins); objs = pages * 4096 / size;
//   from slot 254 down, a slot with the same (pages, objs) as the last new class joins it;
//   huge_class_size = (largest class with pages != 1 and objs != 1) - 7.
#ifndef UZRAM_TESTS_TESTING_REF_GEOMETRY_H_
#define UZRAM_TESTS_TESTING_REF_GEOMETRY_H_

#include <array>
#include <cstddef>

namespace uzram::testing {

struct RefClass {
  unsigned index;  // the slot that created the class
  unsigned size;
  unsigned pages;
  unsigned objs;
  bool huge;
};

struct RefGeometry {
  std::array<unsigned, 255> slot_class{};  // slot -> index of the class serving it
  std::array<RefClass, 255> cls{};         // valid at real indexes
  std::size_t num_classes = 0;
  std::size_t huge_class_size = 0;

  explicit RefGeometry(unsigned chain) {
    bool have = false;
    RefClass last{};
    for (int i = 254; i >= 0; --i) {
      unsigned size = 32 + 16 * static_cast<unsigned>(i);
      if (size > 4096) size = 4096;
      unsigned pages = 1;
      if ((size & (size - 1)) != 0) {
        unsigned least = 4096;
        for (unsigned k = 1; k <= chain; ++k) {
          if ((k * 4096) % size < least) {
            least = (k * 4096) % size;
            pages = k;
          }
        }
      }
      const unsigned objs = pages * 4096 / size;
      if (huge_class_size == 0 && pages != 1 && objs != 1) huge_class_size = size - 7;
      if (!have || last.pages != pages || last.objs != objs) {
        last = {static_cast<unsigned>(i), size, pages, objs, pages == 1 && objs == 1};
        have = true;
        ++num_classes;
      }
      slot_class[static_cast<unsigned>(i)] = last.index;
      cls[static_cast<unsigned>(i)] = last;
    }
  }

  static unsigned slot_of(std::size_t size) {
    if (size <= 32) return 0;
    const std::size_t s = (size - 32 + 15) / 16;
    return s > 254 ? 254 : static_cast<unsigned>(s);
  }
  // The class an allocation of `size` bytes lands in (uzram objects have no header).
  const RefClass& class_for_alloc(std::size_t size) const { return cls[slot_class[slot_of(size)]]; }
};

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_TESTING_REF_GEOMETRY_H_

// expect: writing variable 'f' requires holding bit lock 'bit' exclusively
#include "sync/bit_lock.h"

namespace uzram {
struct BitTraits {
  using Word = unsigned;
  static constexpr Word kBit = 1;
  static constexpr LockLevel kLevel = LockLevel::frame;
  static constexpr const char* kName = "bit";
};
struct S {
  BitLock<BitTraits> bit;
  int f ZS_GUARDED_BY(bit) = 0;
  void g() {
    if (!bit.try_lock()) f++;
  }
};
}  // namespace uzram

// expect: mutex 'sl' is still held at the end of function
#include "sync/spin_lock.h"

namespace uzram {
struct S {
  SpinLock sl{LockLevel::size_class, "sl"};
  void f() { sl.lock(); }
};
}  // namespace uzram

// expect: writing variable 'e' requires holding zspage lock 'z' exclusively
#include "sync/zspage_lock.h"

namespace uzram {
struct S {
  ZsPageLock z;
  int e ZS_GUARDED_BY(z) = 0;
  void f() {
    (void)z.try_lock_write();  // the result ignored: the write may run unlocked
    e++;
  }
};
}  // namespace uzram

// expect: mutex 'z' is still held at the end of function
#include "sync/zspage_lock.h"

namespace uzram {
struct S {
  ZsPageLock z;
  void f() { z.lock_read(); }  // a read_begin without leave_read_held()
};
}  // namespace uzram
